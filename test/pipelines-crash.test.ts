// Resumability: the CLI killed with SIGKILL at chosen points (mid-fetch, while files are being
// written, right after the data is committed), then run again, leaves the same output as a run
// that was never interrupted: no loss, no duplicates, no partial files.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { query } from './duckdb.js';
import { fixtureEnv, startFixtureApi, writeUsersFile, type FixtureApi } from '../fixtures/server.js';
import { until } from './fitbit-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'pipelines', 'bin.ts'); // what the wearable-etl command runs
const WINDOW = ['--since', '2016-04-20', '--until', '2016-04-27', '--resources', 'steps,calories', '--concurrency', '6'];

function startCli(api: FixtureApi, users: string, out: string): { child: ChildProcess; done: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'run', 'fitbit-intraday', '--users', users, '--out', out, ...WINDOW], {
    cwd: root,
    env: { ...process.env, ...fixtureEnv(api) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  void done.then(() => {
    if (err) process.stderr.write(err);
  });
  return { child, done };
}

function hasFiles(dir: string): boolean {
  if (!existsSync(dir)) return false;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop() as string;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isFile()) return true;
      if (e.isDirectory()) stack.push(path.join(d, e.name));
    }
  }
  return false;
}

function hasParquet(dir: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).some((f) => f.endsWith('.parquet'));
}

/** Every column but the run-time stamps, per partition: rows and an order-independent checksum. */
async function fingerprint(out: string): Promise<Record<string, unknown>[]> {
  const glob = path.join(out, 'intraday', '**', '*.parquet');
  return query(
    `SELECT "user", CAST("date" AS VARCHAR) AS d, count(*) AS n, count(DISTINCT id) AS ids,
            sum(hash(id, humanId, userId, source, type, "timestamp", tzOffset, timeZone, value, unit, "interval", level, mets, estimated)) AS h
     FROM read_parquet('${glob}', hive_partitioning=true) GROUP BY ALL ORDER BY ALL`,
  );
}

/** A kill point: an event at the fixture server to wait for, or a state of the output folder to poll for. */
type KillPoint = { name: string; request: number } | { name: string; when: (out: string) => boolean };

const points: KillPoint[] = [
  { name: 'mid-fetch (at the 60th request)', request: 60 },
  { name: 'while files are written', when: (out) => hasFiles(path.join(out, '_tmp')) },
  { name: 'right after the data is committed', when: (out) => existsSync(path.join(out, 'intraday', '_manifest.json')) },
];

test('kill -9 at several points, then rerun: output identical to an uninterrupted run', async (t) => {
  t.timeout(240_000);
  // 12 users × 8 days × 2 resources: long enough to stop at every point, short enough for CI.
  const users12 = ['1503960366', '1624580081', '1644430081', '1844505072', '1927972279', '2022484408', '2026352035', '2320127002', '2347167796', '2873212765', '3372868164', '3977333714'];
  const api = await startFixtureApi({ fitbit: { users: users12, sampleUser: false } });
  api.faults.latencyMs = 3;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-crash-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));

  const clean = path.join(dir, 'clean');
  t.is(await startCli(api, users, clean).done, 0);
  const expected = await fingerprint(clean);
  t.true(expected.length > 80);

  for (const point of points) {
    const out = path.join(dir, point.name.replace(/\W+/g, '-'));
    const before = api.log.length;
    const run = startCli(api, users, out);
    const hit = 'request' in point
      ? await Promise.race([api.whenRequests(before + point.request).then(() => true), run.done.then(() => false)])
      : await until(() => point.when(out), 60_000);
    run.child.kill('SIGKILL');
    const code = await run.done;
    t.true(hit, `reached the kill point: ${point.name}`);
    t.is(code, null, `${point.name}: the run was killed, not finished`);
    // What readers see after the crash is whole: DuckDB reads every visible file without error.
    // (A run killed before its first rename has folders but no file yet: nothing to read.)
    if (hasParquet(path.join(out, 'intraday'))) await t.notThrowsAsync(fingerprint(out), point.name);
    t.is(await startCli(api, users, out).done, 0, `${point.name}: the rerun succeeds`);
    t.deepEqual(await fingerprint(out), expected, point.name);
    t.false(hasFiles(path.join(out, '_tmp')), `${point.name}: no leftovers in _tmp`);
  }
});
