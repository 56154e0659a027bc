// Issue 19, what the operator sees, for the lines not tested elsewhere: a user whose every row
// went to the dead letters is named in the result line; the command does not outlive a parent
// killed with -9; a heartbeat line keeps coming off a terminal during a rate-limit wait; on a
// terminal the progress bar's total never shrinks and no log line lands on the bar's line;
// `--out /proc/x` fails in one line within a second; a usage error prints nothing else and
// creates nothing.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTakeoutFixtures } from '../fixtures/takeout.js';
import { fixtureEnv, startFixtureApi, writeUsersFile } from '../fixtures/server.js';
import { HEARTBEAT_MS, main, type CliIo } from '../pipelines/cli.js';
import { until } from './fitbit-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'pipelines', 'bin.ts');
const pipe = { stdoutIsTTY: false, stderrIsTTY: false, columns: 0 };

function capture(env: Record<string, string>, cwd: string, extra: Partial<CliIo> = {}): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env, cwd, terminal: pipe, ...extra }, out, err };
}

const lines = (chunks: string[]): string[] => chunks.join('').split('\n').filter((l) => l.length > 0);

async function tmp(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ops-cli-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a user whose every row went to the dead letters is named in the result line (exit 3)', async (t) => {
  t.timeout(120_000);
  const dir = await tmp(t);
  const set = buildTakeoutFixtures(path.join(dir, 'archives'), { days: 2 });
  // The unpacked-folder user: every minute value made unreadable, so each row is a dead letter.
  const folder = set.archives.find((a) => a.layout === 'folder')!;
  const spoil = async (p: string): Promise<void> => {
    for (const e of await fs.readdir(p, { withFileTypes: true })) {
      const f = path.join(p, e.name);
      if (e.isDirectory()) await spoil(f);
      else if (e.name.endsWith('.json')) await fs.writeFile(f, (await fs.readFile(f, 'utf8')).replace(/"value" : "[^"]*"/g, '"value" : "n/a"'));
      else if (e.name.endsWith('.csv')) await fs.rm(f);
    }
  };
  await spoil(folder.paths[0]!);
  const c = capture({}, dir);
  const code = await main(['run', 'takeout', '--users', set.usersFile, '--out', path.join(dir, 'out')], c.io);
  const final = lines(c.err).filter((l) => l.startsWith('wearable-etl:'));
  t.is(code, 3, c.err.join(''));
  t.is(final.length, 1);
  t.regex(final[0] ?? '', new RegExp(`^wearable-etl: partial: 1 user\\(s\\) failed, the others are done — user ${folder.humanId} \\(takeout: all \\d+ record\\(s\\) went to the dead letters \\(_dead_letter/intraday/`));
  for (const other of set.archives.filter((a) => a !== folder)) t.false((final[0] ?? '').includes(other.humanId), `${other.humanId} is not named`);
});

test('the wearable-etl command stops when its parent is killed with -9 (no orphan), and leaves no lock', async (t) => {
  t.timeout(180_000);
  // One request an hour: the run soon waits for the rate limit, for an hour.
  const api = await startFixtureApi({ fitbit: { users: ['1503960366'], sampleUser: false, rateLimit: 3 } });
  t.teardown(() => api.close());
  const dir = await tmp(t);
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));
  const out = path.join(dir, 'out');
  const args = ['--import', 'tsx', bin, 'run', 'fitbit-intraday', '--users', users, '--out', out, '--since', '2016-04-13', '--until', '2016-04-20', '--resources', 'steps'];
  // A wrapper shell (as npx is) that starts the command and waits for it; its pid comes first.
  const quoted = [process.execPath, ...args].map((a) => `'${a}'`).join(' ');
  const wrapper = spawn('sh', ['-c', `${quoted} 2>/dev/null & echo $!; wait`], { cwd: root, env: { ...process.env, ...fixtureEnv(api) }, stdio: ['ignore', 'pipe', 'ignore'] });
  let printed = '';
  wrapper.stdout.on('data', (b: Buffer) => (printed += b.toString()));
  t.true(await until(() => /^\d+\n/.test(printed), 60_000));
  const pid = Number(printed.split('\n')[0]);
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.teardown(() => {
    if (alive()) process.kill(pid, 'SIGKILL');
  });
  // Three requests (the profile, two days) spend the budget: the run now waits.
  t.true(await until(() => api.log.length >= 3, 120_000), 'the run reached the rate limit');
  t.true(alive(), 'still running while its parent lives');
  wrapper.kill('SIGKILL');
  t.true(await until(() => !alive(), 60_000), 'the command exited after its parent was killed');
  t.false(existsSync(path.join(out, '_state', '.run.lock')), 'no lock left');
  t.deepEqual(existsSync(path.join(out, '_tmp')) ? readdirSync(path.join(out, '_tmp')) : [], []);
});

test('off a terminal, a heartbeat line keeps coming during a rate-limit wait (every HEARTBEAT_MS ≤ 30 s; here 40 ms)', async (t) => {
  t.timeout(120_000);
  t.true(HEARTBEAT_MS <= 30_000, 'the default interval is within 30 s');
  const api = await startFixtureApi({ fitbit: { users: ['1503960366', '1624580081'], sampleUser: false, rateLimit: 3 } });
  t.teardown(() => api.close());
  const dir = await tmp(t);
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));
  const stop = new AbortController();
  const c = capture(fixtureEnv(api), dir, { heartbeatMs: 40, stop: stop.signal });
  const parsed = (): Array<{ msg: string; time: string }> => lines(c.err).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; time: string });
  const beats = (): number => parsed().filter((l) => l.msg === 'still waiting for rate limits').length;
  const running = main(['run', 'fitbit-intraday', '--users', users, '--out', path.join(dir, 'out'), '--since', '2016-04-13', '--until', '2016-04-20', '--resources', 'steps'], c.io);
  t.true(await until(() => beats() >= 4, 60_000), 'heartbeats while waiting');
  const log = parsed();
  const firstWait = log.findIndex((l) => l.msg === 'waiting for the rate limit');
  t.true(firstWait >= 0, 'the wait itself is logged');
  t.true(log.slice(firstWait).filter((l) => l.msg === 'still waiting for rate limits').length >= 4, 'the heartbeats follow the wait');
  stop.abort('SIGTERM');
  t.is(await running, 143);
  const after = beats();
  await new Promise((r) => setTimeout(r, 200));
  t.is(beats(), after, 'no heartbeat once the run has stopped');
});

/** A terminal as far as a line is concerned: \r goes to column 0, ESC[K clears to the end, \n starts a new line. */
function screen(text: string): string[] {
  const out: string[] = [];
  let line = '';
  let col = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\n') {
      out.push(line);
      line = '';
      col = 0;
    } else if (ch === '\r') col = 0;
    else if (ch === '\x1b' && text.startsWith('\x1b[K', i)) {
      line = line.slice(0, col);
      i += 2;
    } else {
      line = line.slice(0, col) + ch + line.slice(col + 1);
      col++;
    }
  }
  if (line) out.push(line);
  return out;
}

test('on a terminal: the progress bar total never shrinks, and log lines never land on the bar line', async (t) => {
  t.timeout(120_000);
  const api = await startFixtureApi({ fitbit: { users: ['1503960366', '1624580081', '1644430081'], sampleUser: false } });
  t.teardown(() => api.close());
  api.faults.latencyMs = 20;
  const dir = await tmp(t);
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));
  const c = capture(fixtureEnv(api), dir, { terminal: { stdoutIsTTY: true, stderrIsTTY: true, columns: 120 } });
  const code = await main(['run', 'fitbit-intraday', '--users', users, '--out', path.join(dir, 'out'), '--since', '2016-04-13', '--until', '2016-04-22', '--resources', 'steps,calories', '--concurrency', '1'], c.io);
  t.is(code, 0, c.err.join(''));
  const raw = c.err.join('');
  // Every frame the bar drew, in order: the total (and the fill) never go back.
  const frames = [...raw.matchAll(/fitbit-intraday \[(#*)\.*\] (\d+)\/(\d+)/g)].map((m) => ({ filled: m[1]!.length, done: Number(m[2]), total: Number(m[3]) }));
  t.true(frames.length >= 5, `${frames.length} frames`);
  for (let i = 1; i < frames.length; i++) {
    t.true(frames[i]!.total >= frames[i - 1]!.total, `total went back at frame ${i}: ${frames[i - 1]!.total} → ${frames[i]!.total}`);
    t.true(frames[i]!.filled >= frames[i - 1]!.filled, `fill went back at frame ${i}`);
  }
  t.is(frames[frames.length - 1]!.done, frames[frames.length - 1]!.total, 'ends full');
  // What the terminal shows: each line is the bar or a log line, never both.
  const shown = screen(raw);
  const bars = shown.filter((l) => /\[[#.]+\] \d+\/\d+/.test(l));
  t.true(bars.length >= 1);
  for (const l of bars) t.regex(l, /^fitbit-intraday \[[#.]+\] \d+\/\d+( {2}.*)?$/, 'a bar line holds the bar only');
  t.true(shown.some((l) => l.includes('pipeline started')), 'log lines are shown');
  for (const l of shown) if (l.includes('pipeline started') || l.includes('dataset committed')) t.notRegex(l, /\[[#.]+\] \d+\/\d+/);
});

test.serial('--out /proc/x fails in one line within a second', async (t) => {
  const dir = await tmp(t);
  const users = path.join(dir, 'users.json');
  await fs.writeFile(users, JSON.stringify([{ userId: 'U1', humanId: 'h-1', accessToken: 'a'.repeat(20), refreshToken: 'r'.repeat(20) }]));
  // Once the run's code is loaded (a first call: module loading is not what is measured).
  await main(['run', 'fitbit-intraday', '--users', users, '--out', '/proc/y'], capture({}, dir).io);
  const c = capture({}, dir);
  const started = Date.now();
  const code = await Promise.race([main(['run', 'fitbit-intraday', '--users', users, '--out', '/proc/x'], c.io), new Promise<'hung'>((r) => setTimeout(() => r('hung'), 1_000).unref())]);
  t.is(code, 2, `ended after ${Date.now() - started} ms`);
  t.deepEqual(c.out, []);
  t.is(lines(c.err).length, 1);
  t.regex(lines(c.err)[0] ?? '', /^wearable-etl: --out \/proc\/x cannot be used: \/proc is on proc/);
});

test('the wearable-etl command: a usage error prints its one line and nothing else, and creates nothing', async (t) => {
  t.timeout(60_000);
  const dir = await tmp(t);
  const users = path.join(dir, 'users.json');
  await fs.writeFile(users, JSON.stringify([{ userId: 'U1', humanId: 'h-1', accessToken: 'a'.repeat(20), refreshToken: 'r'.repeat(20) }]));
  const out = path.join(dir, 'out');
  const cases = [
    ['run', 'fitbit-intraday', '--users', users, '--out', out, '--frobnicate'],
    ['run', 'no-such-pipeline', '--users', users, '--out', out],
    ['run', 'fitbit-intraday', '--users', users, '--out', out, '--since', '2016-13-45'],
    ['run', 'fitbit-intraday', '--users', path.join(dir, 'missing.json'), '--out', out],
  ];
  for (const args of cases) {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', bin, ...args], { cwd: root, env: { ...process.env, FITBIT_CLIENT_ID: 'c', FITBIT_CLIENT_SECRET: 's' } }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      );
    });
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.is(r.stdout, '', 'nothing on stdout');
    t.is(r.stderr.split('\n').filter((l) => l.length > 0).length, 1, r.stderr);
    t.regex(r.stderr, /^wearable-etl: /);
    t.notRegex(r.stderr, /pipeline started/);
    t.false(existsSync(out), `${args.join(' ')}: created ${out}`);
  }
});
