// What the CLI says (issue 19): results on stdout and logs on stderr, one JSON object a line off
// a terminal; usage errors before anything is printed or created; --out that cannot be used
// fails at once; each failed user named once, control characters escaped, and the first word
// agrees with the exit code; a heartbeat during rate-limit waits; --version.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createLogger } from '../lib/log.js';
import { createHeartbeat, main, type CliIo } from '../pipelines/cli.js';
import { failureLine, type RunSummary } from '../pipelines/run.js';
import { fixtureEnv, fixtureUsers, startFixtureApi } from '../fixtures/server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pipe = { stdoutIsTTY: false, stderrIsTTY: false, columns: 0 };

function capture(env: Record<string, string>, cwd: string): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env, cwd, terminal: pipe }, out, err };
}

const lines = (chunks: string[]): string[] => chunks.join('').split('\n').filter((l) => l.length > 0);

test('--version prints the package version (the wearable-etl command)', async (t) => {
  const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(root, 'pipelines', 'bin.ts'), '--version'], { cwd: root });
  t.is(r.stdout, version + '\n');
  t.is(r.stderr, '');
});

test('a usage error prints one line and creates nothing: bad state file, bad --log-level, unusable --out', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ops-msg-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const users = path.join(dir, 'users.json');
  await fs.writeFile(users, JSON.stringify([{ userId: 'U1', humanId: 'h-1', accessToken: 'a'.repeat(20), refreshToken: 'r'.repeat(20) }]));
  const badState = path.join(dir, 'state.json');
  await fs.writeFile(badState, '{"version": 1, "pipeline": "fitbit-activities", "users": {}}');
  const file = path.join(dir, 'a-file');
  await fs.writeFile(file, 'x');
  const out = path.join(dir, 'out');
  const cases: Array<[string[], RegExp]> = [
    [['run', 'fitbit-intraday', '--users', users, '--out', out, '--state', badState], /^wearable-etl: state file .* belongs to pipeline fitbit-activities/],
    [['run', 'fitbit-intraday', '--users', users, '--out', out, '--log-level', 'loud'], /^wearable-etl: --log-level takes debug, info, warn, error, not "loud"$/],
    [['run', 'fitbit-intraday', '--users', users, '--out', '/proc/x'], /^wearable-etl: --out \/proc\/x cannot be used: \/proc is on proc/],
    [['run', 'fitbit-intraday', '--users', users, '--out', path.join(file, 'out')], /cannot be used: .*a-file is a file, not a folder$/],
    [['demo', '--out', '/proc/x'], /^wearable-etl: --out \/proc\/x cannot be used/],
  ];
  for (const [args, expected] of cases) {
    const c = capture({}, dir);
    t.is(await main(args, c.io), 2, args.join(' '));
    t.deepEqual(c.out, [], 'nothing on stdout');
    t.is(lines(c.err).length, 1, c.err.join(''));
    t.regex(lines(c.err)[0] ?? '', expected);
  }
  t.false(existsSync(out), 'the output folder was not created');
});

test('off a terminal: results on stdout, logs on stderr, every line one JSON object; --log-level warn hides info', async (t) => {
  t.timeout(120_000);
  const api = await startFixtureApi({ fitbit: { users: ['1503960366'], sampleUser: false } });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ops-msg-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const users = path.join(dir, 'users.json');
  await fs.writeFile(users, JSON.stringify(fixtureUsers(api)));
  const args = ['run', 'fitbit-intraday', '--users', users, '--since', '2016-04-13', '--until', '2016-04-14', '--resources', 'steps'];
  const info = capture(fixtureEnv(api), dir);
  t.is(await main([...args, '--out', path.join(dir, 'a')], info.io), 0);
  const out = lines(info.out).map((l) => JSON.parse(l) as { msg: string; level: string; status?: string });
  const err = lines(info.err).map((l) => JSON.parse(l) as { msg: string; level: string });
  t.deepEqual(out.map((l) => l.msg), ['run summary']);
  t.is(out[0]?.status, 'complete');
  t.true(err.some((l) => l.msg === 'pipeline started'));
  t.false(err.some((l) => l.msg === 'run summary'));

  const warn = capture(fixtureEnv(api), dir);
  t.is(await main(['--log-level', 'warn', ...args, '--out', path.join(dir, 'b')], warn.io), 0);
  t.deepEqual(warn.err, [], 'no info lines at warn');
  t.is(lines(warn.out).length, 1);
});

test('every user failed: exit 1 and "failed:", each user named once, a NUL in an id escaped', async (t) => {
  t.timeout(120_000);
  const api = await startFixtureApi({ fitbit: { users: ['1503960366', '1624580081'], sampleUser: false } });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ops-msg-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  // Tokens the API never issued: every user stops with invalid_token.
  const entries = fixtureUsers(api).map((u, i) => ({ ...u, humanId: i === 0 ? 'h\u0000one' : 'h-two', accessToken: `at_never_issued_${i}_0123456789abcdef` }));
  const users = path.join(dir, 'users.json');
  await fs.writeFile(users, JSON.stringify(entries));
  const c = capture(fixtureEnv(api), dir);
  const code = await main(['run', 'fitbit-intraday', '--users', users, '--out', path.join(dir, 'out'), '--since', '2016-04-13', '--until', '2016-04-13'], c.io);
  t.is(code, 1);
  const stderr = c.err.join('');
  t.false(stderr.includes('\u0000'), 'no raw NUL');
  const final = lines(c.err).filter((l) => l.startsWith('wearable-etl:'));
  t.is(final.length, 1);
  const line = final[0] ?? '';
  t.regex(line, /^wearable-etl: failed: every user failed — /);
  t.regex(line, /user h\\u0000one \(fitbit-intraday: /);
  t.is(line.split('h\\u0000one').length - 1, 1, 'named once');
  t.is(line.split('h-two').length - 1, 1, 'named once');
  t.notRegex(line, /user h-two: user h-two/);
});

test('the failure line: one entry per user across pipelines, no repeated prefix, partial for exit 3', (t) => {
  const base: RunSummary = {
    runId: 'r1', status: 'partial', startedAt: '', finishedAt: '', durationMs: 0, outDir: '/o', format: 'parquet', datasets: [], files: {}, adopted: [],
    http: { requests: 0, retries: 0, rateLimited: 0, tokenRefreshes: 0, bytes: 0, rateLimitWaitMs: 0 }, exitCode: 3,
    pipelines: [
      { pipeline: 'fitbit-intraday', failedUsers: [{ user: 'h5', reason: 'user h5: token revoked' }, { user: 'h-1', reason: 'gave up' }], deadLetterFiles: [] },
      { pipeline: 'fitbit-activities', failedUsers: [{ user: 'h-1', reason: 'user h-1: gave up' }], deadLetterFiles: [] },
    ],
  };
  const line = failureLine(base) ?? '';
  t.is(line, 'wearable-etl: partial: 2 user(s) failed, the others are done — user h5 (fitbit-intraday: token revoked), user h-1 (fitbit-intraday: gave up; fitbit-activities: gave up)');
  t.regex(failureLine({ ...base, exitCode: 1, status: 'failed' }) ?? '', /^wearable-etl: failed: every user failed — /);
});

test('a heartbeat line keeps coming while a rate-limit wait goes on, and stops with it', async (t) => {
  const logged: Array<{ msg: string; user?: string; seconds?: number }> = [];
  const log = createLogger({ json: true, write: (l) => logged.push(JSON.parse(l) as { msg: string }) });
  const heartbeat = createHeartbeat(log, 10);
  heartbeat.progress({ pipeline: 'fitbit-intraday', kind: 'waiting', user: 'h-1', waitMs: 3_600_000 });
  t.like(logged[0], { msg: 'waiting for the rate limit', user: 'h-1', seconds: 3600 });
  const beats = (): number => logged.filter((l) => l.msg === 'still waiting for rate limits').length;
  while (beats() < 3) await new Promise((r) => setTimeout(r, 5));
  heartbeat.stop();
  const after = logged.length;
  await new Promise((r) => setTimeout(r, 50));
  t.is(logged.length, after, 'quiet once stopped');
  // A wait that is over ends the heartbeat by itself.
  const short = createHeartbeat(log, 10);
  short.progress({ pipeline: 'fitbit-intraday', kind: 'waiting', user: 'h-2', waitMs: 1 });
  await new Promise((r) => setTimeout(r, 60));
  const settled = logged.length;
  await new Promise((r) => setTimeout(r, 60));
  t.is(logged.length, settled);
});
