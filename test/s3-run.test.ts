// `wearable-etl run --out s3://bucket/prefix` end to end (issue #17): the real pipelines against
// the fixture API on loopback, writing to s3rver behind test/s3.ts's proxy, compared with the
// same runs to a folder. DuckDB reads both: the bucket through a copy of its objects fetched
// with the store (key = relative path), so the layout and names are compared as they are.
//
// What relies on S3's guarantees that s3rver lacks: "no partial object is visible" relies on the
// proxy forwarding a PUT only once its body is whole (test/s3.ts), as S3 shows a PUT only once
// it is complete. The faults here (403 on one partition's PUT, 503 on a manifest PUT) are
// answered by the proxy before s3rver sees the request.
import test from 'ava';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtureEnv, googleHealthEnv, googleHealthUsers, startFixtureApi, writeUsersFile, type FixtureApi } from '../fixtures/server.js';
import { createLogger } from '../lib/log.js';
import type { Dataset, IntradayRecord } from '../lib/schema.js';
import type { RunConfig } from '../pipelines/config.js';
import { parseRunArgs } from '../pipelines/registry.js';
import { main } from '../pipelines/cli.js';
import { failureLine, runPipelines, type RunSummary } from '../pipelines/run.js';
import { createSink, type Manifest } from '../sinks/index.js';
import { S3Store, s3ClientFromEnv } from '../sinks/object-store/s3.js';
import { query } from './duckdb.js';
import { fixtureSecrets, leakedSecrets } from './fitbit-helpers.js';
import { on, startTestS3, type TestS3 } from './s3.js';

const WINDOW = ['--since', '2016-04-20', '--until', '2016-04-22'];
const FITBIT_USERS = ['1503960366', '1624580081', '1644430081'];
const TUNING = { retry: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 10_000 } };

let s3: TestS3;
let api: FixtureApi;
let work: string;
let usersPath: string;

test.before(async () => {
  s3 = await startTestS3();
  // The run opens its S3 client from this process's AWS variables, as the CLI does from its own.
  Object.assign(process.env, s3.env, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
  api = await startFixtureApi({ fitbit: { users: FITBIT_USERS, sampleUser: false } });
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-s3run-'));
  usersPath = await writeUsersFile(api, path.join(work, 'users.json'));
});

test.after.always(async () => {
  await api?.close();
  await s3?.close();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

function bucketStore(): S3Store {
  return new S3Store({ client: s3ClientFromEnv(s3.env), bucket: s3.bucket, prefix: '' });
}

async function run(args: string[], env: Record<string, string>, lines: string[]): Promise<RunSummary> {
  const config = parseRunArgs([...args, '--compression', 'none'], env, work) as RunConfig;
  return runPipelines(config, { log: createLogger({ json: true, write: (line) => lines.push(line) }), tuning: TUNING });
}

/** Every object under `prefix`, written to `to` at its key's path; returns the keys (relative to the prefix). */
async function download(prefix: string, to: string): Promise<string[]> {
  const store = bucketStore();
  const keys: string[] = [];
  for await (const { key } of store.list(prefix + '/')) {
    const rel = key.slice(prefix.length + 1);
    const bytes = await store.get(key);
    if (bytes === null) throw new Error(`${key} was listed but cannot be read`);
    await fs.mkdir(path.dirname(path.join(to, rel)), { recursive: true });
    await fs.writeFile(path.join(to, rel), bytes);
    keys.push(rel);
  }
  return keys.sort();
}

/** Files below a folder, relative and `/`-separated. */
async function filesOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
  }
  return out.sort();
}

/** Per partition file (relative to the root), as DuckDB reads it: rows, distinct ids, a digest of the ids, and a sum. */
async function partitions(root: string, dataset: Dataset, sumColumn: string): Promise<Record<string, unknown>> {
  const rows = await query(
    `SELECT filename AS f, count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS ids, md5(string_agg(id, ',' ORDER BY id)) AS digest, sum(${sumColumn})::DOUBLE AS total
     FROM read_parquet('${root}/${dataset}/**/*.parquet', filename=true) GROUP BY filename`,
  );
  const out: Record<string, unknown> = {};
  for (const r of rows) out[path.relative(root, String(r['f']))] = { n: r['n'], ids: r['ids'], digest: r['digest'], total: r['total'] };
  return out;
}

async function manifestOf(root: string, dataset: Dataset): Promise<Manifest> {
  return JSON.parse(await fs.readFile(path.join(root, dataset, '_manifest.json'), 'utf8')) as Manifest;
}

const DATA = /\.(parquet|arrow)$|_manifest\.json$|^_dead_letter\//;

test.serial('fitbit-intraday to s3:// writes what the same run writes to a folder; a second run merges by id', async (t) => {
  t.timeout(180_000);
  const env = fixtureEnv(api) as Record<string, string>;
  const folder = path.join(work, 'fitbit-folder');
  const copy = path.join(work, 'fitbit-copy');
  const lines: string[] = [];
  const base = ['fitbit-intraday', '--users', usersPath, ...WINDOW, '--resources', 'steps,calories'];
  const local = await run([...base, '--out', folder], env, lines);
  t.is(local.exitCode, 0, failureLine(local) ?? '');
  const remote = await run([...base, '--out', `s3://${s3.bucket}/fitbit/`, '--state', path.join(work, 'fitbit-s3.state.json')], env, lines);
  t.is(remote.exitCode, 0, failureLine(remote) ?? '');
  t.is(remote.outDir, `s3://${s3.bucket}/fitbit`);
  t.deepEqual(remote.files, local.files);
  t.deepEqual(remote.datasets, local.datasets);

  const keys = await download('fitbit', copy);
  // Same layout and names; the bucket holds no temporary, state or lock object.
  t.deepEqual(keys.filter((k) => DATA.test(k)), (await filesOf(folder)).filter((k) => DATA.test(k)));
  t.deepEqual(keys.filter((k) => !DATA.test(k)), [`_runs/${remote.runId}.json`]);
  const record = JSON.parse(await fs.readFile(path.join(copy, '_runs', `${remote.runId}.json`), 'utf8')) as RunSummary;
  t.is(record.status, 'complete');
  t.deepEqual(record.files, remote.files);

  const intraday = await partitions(copy, 'intraday', 'value');
  t.is(Object.keys(intraday).length, FITBIT_USERS.length * 3);
  t.deepEqual(intraday, await partitions(folder, 'intraday', 'value'));
  t.deepEqual(await partitions(copy, 'daily_summaries', 'steps'), await partitions(folder, 'daily_summaries', 'steps'));
  const strip = (m: Manifest) => m.files.map((f) => ({ path: f.path, rows: f.rows, bytes: f.bytes }));
  for (const dataset of ['intraday', 'daily_summaries'] as const) t.deepEqual(strip(await manifestOf(copy, dataset)), strip(await manifestOf(folder, dataset)));

  // A second run from a fresh state fetches every day again: the bucket's partitions are read,
  // merged by id and replaced whole — the same rows, none twice.
  const again = await run([...base, '--out', `s3://${s3.bucket}/fitbit`, '--state', path.join(work, 'fitbit-s3.second.state.json')], env, lines);
  t.is(again.exitCode, 0, failureLine(again) ?? '');
  const copy2 = path.join(work, 'fitbit-copy2');
  await download('fitbit', copy2);
  const merged = await partitions(copy2, 'intraday', 'value');
  t.deepEqual(merged, intraday);
  for (const p of Object.values(merged) as Array<{ n: number; ids: number }>) t.is(p.n, p.ids);
  t.deepEqual(await partitions(copy2, 'daily_summaries', 'steps'), await partitions(folder, 'daily_summaries', 'steps'));

  // No secret of the API or of the bucket in the logs, the run summaries or any object.
  t.deepEqual(await leakedSecrets([...fixtureSecrets(api), s3.env.AWS_SECRET_ACCESS_KEY!], [...lines, JSON.stringify(remote), JSON.stringify(again)], [copy, copy2]), []);
});

test.serial('a failed upload leaves no object and no manifest naming it; the rerun completes the bucket as a clean run', async (t) => {
  t.timeout(180_000);
  const env = fixtureEnv(api) as Record<string, string>;
  const lines: string[] = [];
  const base = ['fitbit-intraday', '--users', usersPath, ...WINDOW, '--resources', 'steps'];
  const folder = path.join(work, 'fault-folder');
  const clean = await run([...base, '--out', folder], env, lines);
  t.is(clean.exitCode, 0, failureLine(clean) ?? '');

  const victim = api.fitbit.user(FITBIT_USERS[1]!).humanId;
  const failedKey = `faulty/intraday/date=2016-04-21/user=${victim}/data.parquet`;
  s3.fail(on(s3.bucket, failedKey, 'PUT'), 403, 'AccessDenied', Infinity);
  s3.fail(on(s3.bucket, 'faulty/intraday/_manifest.json', 'PUT'), 503, 'SlowDown', 1); // retried
  const statePath = path.join(work, 'faulty.state.json');
  const out = `s3://${s3.bucket}/faulty`;
  const failed = await run([...base, '--out', out, '--state', statePath], env, lines);
  s3.clearFaults();
  // A write that fails fails the pipeline (as a full disk does with a folder): one line naming the object.
  t.is(failed.exitCode, 1);
  t.regex(failureLine(failed) ?? '', new RegExp(`^wearable-etl: failed: fitbit-intraday: .*could not write s3://${s3.bucket}/${failedKey}: AccessDenied`));
  t.true(s3.seen.some((r) => decodeURIComponent(r.path).endsWith('/faulty/intraday/_manifest.json') && r.status === 503), 'the manifest PUT met a 503');

  const copy = path.join(work, 'fault-copy');
  const keys = await download('faulty', copy);
  t.false(keys.includes('intraday/date=2016-04-21/user=' + victim + '/data.parquet'), 'no object where the upload failed');
  t.false(keys.some((k) => k.endsWith('.tmp') || k.startsWith('_tmp/')));
  const manifest = await manifestOf(copy, 'intraday');
  t.true(manifest.files.length > 0);
  for (const f of manifest.files) t.true(keys.includes(`intraday/${f.path}`), `the manifest names ${f.path}, which is there`);
  // Every object in the bucket is a whole Parquet file (DuckDB reads them all).
  const objects = keys.filter((k) => k.endsWith('.parquet'));
  t.is((await query(`SELECT count(DISTINCT filename)::INTEGER AS n FROM read_parquet('${copy}/**/*.parquet', filename=true)`))[0]!['n'], objects.length);

  // The same command again: the failed user's days are fetched and written; the bucket equals the clean folder.
  const rerun = await run([...base, '--out', out, '--state', statePath], env, lines);
  t.is(rerun.exitCode, 0, failureLine(rerun) ?? '');
  const copy2 = path.join(work, 'fault-copy2');
  await download('faulty', copy2);
  t.deepEqual(await partitions(copy2, 'intraday', 'value'), await partitions(folder, 'intraday', 'value'));
  t.deepEqual(await partitions(copy2, 'daily_summaries', 'steps'), await partitions(folder, 'daily_summaries', 'steps'));
  t.deepEqual(await leakedSecrets([...fixtureSecrets(api), s3.env.AWS_SECRET_ACCESS_KEY!], lines, [copy, copy2]), []);
});

test.serial('google-health-intraday to s3:// writes what the same run writes to a folder', async (t) => {
  t.timeout(180_000);
  const gh = await startFixtureApi({ fitbit: { users: FITBIT_USERS.slice(0, 2), sampleUser: false } });
  t.teardown(() => gh.close());
  const users = path.join(work, 'gh-users.json');
  await fs.writeFile(users, JSON.stringify(googleHealthUsers(gh, FITBIT_USERS.slice(0, 2)), null, 2), { mode: 0o600 });
  const env = googleHealthEnv(gh);
  const lines: string[] = [];
  const base = ['google-health-intraday', '--users', users, ...WINDOW, '--resources', 'steps,distance'];
  const folder = path.join(work, 'gh-folder');
  const local = await run([...base, '--out', folder], env, lines);
  t.is(local.exitCode, 0, failureLine(local) ?? '');
  const remote = await run([...base, '--out', `s3://${s3.bucket}/gh`, '--state', path.join(work, 'gh.state.json')], env, lines);
  t.is(remote.exitCode, 0, failureLine(remote) ?? '');
  const copy = path.join(work, 'gh-copy');
  const keys = await download('gh', copy);
  t.deepEqual(keys.filter((k) => DATA.test(k)), (await filesOf(folder)).filter((k) => DATA.test(k)));
  const parts = await partitions(copy, 'intraday', 'value');
  t.true(Object.keys(parts).length >= 4);
  t.deepEqual(parts, await partitions(folder, 'intraday', 'value'));
});

test.serial('a writer thread opens its own S3 store: the sink writes and merges the same files as in a folder', async (t) => {
  const rows = (from: number, to: number): IntradayRecord[] =>
    Array.from({ length: to - from }, (_, i) => {
      const m = from + i;
      const day = m < 1440 ? '2026-01-01' : '2026-01-02';
      return {
        id: `u1:steps:${m}`,
        humanId: m % 2 === 0 ? 'u1' : 'u/2',
        userId: 'U1',
        source: 'fitbit',
        type: 'steps' as const,
        timestamp: Date.UTC(2026, 0, 1) + m * 60_000,
        tzOffset: '+00:00',
        timeZone: 'UTC',
        value: m % 7,
        unit: 'count',
        interval: 60,
        level: null,
        mets: null,
        estimated: null,
        createdAt: 0,
        updatedAt: 0,
        date: day,
      };
    });
  async function* batches(from: number, to: number): AsyncIterable<IntradayRecord[]> {
    yield rows(from, to);
  }
  const folder = path.join(work, 'thread-folder');
  const opts = { runId: 'r1', format: 'parquet' as const, compression: 'none' as const, workers: 1, workerStartRows: 0 };
  for (const outDir of [folder, `s3://${s3.bucket}/thread`]) {
    const sink = createSink('intraday', { ...opts, outDir });
    await sink(batches(0, 2000));
    const second = createSink('intraday', { ...opts, outDir, runId: 'r2' });
    await second(batches(1000, 2880));
  }
  const copy = path.join(work, 'thread-copy');
  await download('thread', copy);
  const parts = await partitions(copy, 'intraday', 'value');
  t.is(Object.keys(parts).length, 4);
  t.deepEqual(parts, await partitions(folder, 'intraday', 'value'));
  t.is((await query(`SELECT count(*)::INTEGER AS n FROM read_parquet('${copy}/intraday/**/*.parquet')`))[0]!['n'], 2880);
});

test.serial('the wearable-etl command writes to s3:// with nothing from the AWS SDK on stderr; report and a run without --state are one-line usage errors', async (t) => {
  t.timeout(120_000);
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const cli = path.join(root, 'pipelines', 'bin.ts');
  const env = { ...process.env, ...fixtureEnv(api), ...s3.env };
  delete env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'];
  const exec = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  const ok = await exec(['run', 'fitbit-intraday', '--users', usersPath, '--since', '2016-04-20', '--until', '2016-04-20', '--resources', 'steps', '--out', `s3://${s3.bucket}/cli`, '--state', path.join(work, 'cli.state.json')]);
  t.is(ok.code, 0, ok.stderr);
  // stderr holds the run's own JSON log lines (not a terminal) and nothing else: no SDK notice.
  for (const line of ok.stderr.trim().split('\n')) t.is((JSON.parse(line) as { level: string }).level, 'info', line);
  const summary = JSON.parse(ok.stdout) as RunSummary;
  t.is(summary.outDir, `s3://${s3.bucket}/cli`);
  t.is(summary.status, 'complete');
  const keys = await download('cli', path.join(work, 'cli-copy'));
  t.true(keys.includes(`intraday/date=2016-04-20/user=${api.fitbit.user(FITBIT_USERS[0]!).humanId}/data.parquet`));

  // Usage errors, one line each, exit 2 (in this process: nothing here reaches the SDK).
  const usage = async (args: string[]): Promise<{ code: number; stderr: string }> => {
    let stderr = '';
    const code = await main(args, { stdout: () => undefined, stderr: (text) => (stderr += text), env: { ...fixtureEnv(api), ...s3.env }, cwd: work });
    return { code, stderr };
  };
  const report = await usage(['report', '--out', `s3://${s3.bucket}/cli`]);
  t.is(report.code, 2);
  t.regex(report.stderr, /^wearable-etl: report reads a local folder; --out s3:\/\/etl-test\/cli is a bucket[^\n]*\n$/);
  const noState = await usage(['run', 'fitbit-intraday', '--users', usersPath, '--out', `s3://${s3.bucket}/cli`]);
  t.is(noState.code, 2);
  t.regex(noState.stderr, /^wearable-etl: --out s3:\/\/etl-test\/cli needs --state FILE or --state postgres:\/\/…[^\n]*\n$/);
});
