// What the CLI prints: JSON lines when stdout is not a terminal (CI, schedulers), a progress bar
// and readable lines in a terminal (a pseudo-terminal made by `script`), --help everywhere, and
// no secret anywhere.
import test from 'ava';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fixtureEnv, startFixtureApi, writeUsersFile } from '../fixtures/server.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'pipelines', 'bin.ts'); // what the wearable-etl command runs
const node = process.execPath;

async function cliRun(args: string[], env: Record<string, string>): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await run(node, ['--import', 'tsx', cli, ...args], { cwd: root, env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

test('--help works for every command and exits 0', async (t) => {
  for (const args of [['--help'], ['run', '--help'], ['demo', '--help'], ['run', 'fitbit-intraday', '-h']]) {
    const r = await cliRun(args, {});
    t.is(r.code, 0, args.join(' '));
    t.regex(r.stdout, /Usage:/);
  }
  const none = await cliRun([], {});
  t.is(none.code, 2);
});

test('a run that outgrows the heap of the CLI thread fails in one line that says how to allow more', async (t) => {
  t.timeout(120_000);
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-heap-'));
  t.teardown(() => fs.rm(out, { recursive: true, force: true }));
  const r = await cliRun(['demo', '--out', path.join(out, 'out')], { WEARABLE_ETL_HEAP_MB: '16' });
  t.is(r.code, 1);
  t.regex(r.stderr, /^wearable-etl: failed — out of memory: the run's heap is capped at 16 MB; set WEARABLE_ETL_HEAP_MB/m);
  t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
});

test('in CI every line parses as JSON; in a terminal a progress bar shows; secrets never appear', async (t) => {
  t.timeout(120_000);
  const api = await startFixtureApi({ fitbit: { users: ['1503960366', '1624580081'], sampleUser: false } });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-out-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));
  const env = fixtureEnv(api);
  const args = ['run', 'fitbit-intraday', '--users', users, '--since', '2016-04-13', '--until', '2016-04-16', '--resources', 'steps'];

  const ci = await cliRun([...args, '--out', path.join(dir, 'ci')], env);
  t.is(ci.code, 0, ci.stderr);
  // Results on stdout, logs on stderr: every line of both is one JSON object.
  const lines = ci.stdout.split('\n').filter((l) => l.length > 0);
  const logs = ci.stderr.split('\n').filter((l) => l.length > 0);
  t.true(lines.length >= 1 && logs.length >= 2);
  for (const line of [...lines, ...logs]) t.notThrows(() => JSON.parse(line), line);
  const summary = lines.map((l) => JSON.parse(l) as { msg: string; datasets?: Array<{ rowsIn: number }> }).find((l) => l.msg === 'run summary');
  t.truthy(summary);
  t.true((summary?.datasets?.[0]?.rowsIn ?? 0) > 0);

  // `script` runs the command in a pseudo-terminal; the bar is drawn with carriage returns.
  const cmd = [node, '--import', 'tsx', cli, ...args, '--out', path.join(dir, 'tty')].map((a) => `'${a}'`).join(' ');
  const tty = await run('script', ['-qec', cmd, '/dev/null'], { cwd: root, env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  t.regex(tty.stdout, /fitbit-intraday \[#+\.*\] \d+\/8/);
  t.regex(tty.stdout, /run \S+ finished in/);
  t.notRegex(tty.stdout, /^\{"time"/m);

  // No token, client secret or app key in anything printed or written.
  const secrets = [env.FITBIT_CLIENT_SECRET, env.HUMANAPI_APP_KEY, ...JSON.parse(await fs.readFile(users, 'utf8')).flatMap((u: { accessToken: string; refreshToken: string }) => [u.accessToken, u.refreshToken])];
  const printed = ci.stdout + ci.stderr + tty.stdout;
  const written: string[] = [];
  for (const f of await fs.readdir(dir, { recursive: true })) {
    const p = path.join(dir, f);
    if (p === users) continue;
    if ((await fs.stat(p)).isFile()) written.push((await fs.readFile(p)).toString('latin1'));
  }
  for (const s of secrets) {
    t.true(typeof s === 'string' && s.length >= 8);
    t.false(printed.includes(s), 'secret printed');
    t.false(written.some((w) => w.includes(s)), 'secret written to the output');
  }
});
