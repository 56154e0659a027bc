// Stopped, killed or cancelled runs lose nothing and pay nothing twice (issue 19): the CLI is
// interrupted (SIGINT, SIGTERM) or killed (SIGKILL) mid-run, then run again. The rerun asks
// the fixture API for no user-day that was committed before the stop (committed = in a file
// the reader protocol lists, read back by DuckDB), and its output equals an uninterrupted run.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { query } from './duckdb.js';
import { readManifest } from '../sinks/index.js';
import { fixtureEnv, startFixtureApi, writeUsersFile, type FixtureApi } from '../fixtures/server.js';
// The reader's side of the protocol, as the README documents it.
import { committedFiles } from '../scripts/committed-files.mjs';
import { until } from './fitbit-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'pipelines', 'bin.ts'); // what the wearable-etl command runs
const WINDOW = ['--since', '2016-04-20', '--until', '2016-04-27', '--resources', 'steps,calories', '--concurrency', '2'];
const USERS = ['1503960366', '1624580081', '1644430081', '1844505072', '1927972279', '2022484408', '2026352035', '2320127002'];

function startCli(api: FixtureApi, users: string, out: string): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'run', 'fitbit-intraday', '--users', users, '--out', out, ...WINDOW], {
    cwd: root,
    env: { ...process.env, ...fixtureEnv(api) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
  return { child, done };
}

/** user-days asked of the fixture API from log index `from` on: "<fitbit user> <resource> <date>". */
function dayRequests(api: FixtureApi, from: number): string[] {
  const out: string[] = [];
  for (const e of api.log.slice(from)) {
    const m = /\/activities\/([a-z-]+)\/date\/(\d{4}-\d{2}-\d{2})\//.exec(e.path);
    if (m && e.status === 200) out.push(`${e.userId} ${m[1]} ${m[2]}`);
  }
  return out;
}

/**
 * What is committed, "<fitbit user> <type> <date>", read by DuckDB: the files a finished run
 * lists (reader protocol), or for a killed run the files its checkpoints put in the manifest
 * (listed by the next run, which takes them over).
 */
async function committedDays(out: string, killed: boolean): Promise<Set<string>> {
  const files = killed
    ? ((await readManifest(out, 'intraday'))?.files ?? []).map((f) => path.join(out, 'intraday', f.path))
    : (await committedFiles(out, 'intraday')).files;
  if (files.length === 0) return new Set();
  const list = files.map((f) => `'${f}'`).join(', ');
  const rows = await query(`SELECT DISTINCT userId, type, CAST("date" AS VARCHAR) AS d FROM read_parquet([${list}], hive_partitioning=true)`);
  return new Set(rows.map((r) => `${String(r.userId)} ${String(r.type)} ${String(r.d)}`));
}

async function fingerprint(out: string): Promise<Record<string, unknown>[]> {
  const glob = path.join(out, 'intraday', '**', '*.parquet');
  return query(
    `SELECT "user", CAST("date" AS VARCHAR) AS d, count(*) AS n, count(DISTINCT id) AS ids,
            sum(hash(id, humanId, userId, source, type, "timestamp", tzOffset, timeZone, value, unit, "interval", level, mets, estimated)) AS h
     FROM read_parquet('${glob}', hive_partitioning=true) GROUP BY ALL ORDER BY ALL`,
  );
}

function stateHasCheckpoint(out: string): boolean {
  try {
    const state = JSON.parse(readFileSync(path.join(out, '_state', 'fitbit-intraday.json'), 'utf8')) as { users: Record<string, { pending?: unknown }> };
    return Object.values(state.users).some((u) => u.pending !== undefined);
  } catch {
    return false;
  }
}

function leftovers(out: string): string[] {
  const found: string[] = [];
  if (existsSync(path.join(out, '_state', '.run.lock'))) found.push('_state/.run.lock');
  if (existsSync(path.join(out, '_tmp'))) for (const f of readdirSync(path.join(out, '_tmp'))) found.push(`_tmp/${f}`);
  return found;
}

async function runRecords(out: string): Promise<Array<{ runId: string; status: string; adopted?: string[] }>> {
  const dir = path.join(out, '_runs');
  const names = existsSync(dir) ? readdirSync(dir).sort() : [];
  return Promise.all(names.map(async (n) => JSON.parse(await fs.readFile(path.join(dir, n), 'utf8')) as { runId: string; status: string; adopted?: string[] }));
}

// Where each stop lands: early (a few days of the first users), later, and right after the first
// users' checkpoint (their files are in the manifest, the others' still buffered or in flight).
const stops: Array<{ signal: NodeJS.Signals; code: number | null; when: (api: FixtureApi, from: number, out: string) => boolean }> = [
  { signal: 'SIGINT', code: 130, when: (api, from) => dayRequests(api, from).length >= 20 },
  { signal: 'SIGTERM', code: 143, when: (api, from) => dayRequests(api, from).length >= 60 },
  // After a checkpoint has completed (manifest, then state). A kill between those two renames
  // costs that one user's window again (nothing is lost); the test stops after both.
  { signal: 'SIGKILL', code: null, when: (_api, _from, out) => existsSync(path.join(out, 'intraday', '_manifest.json')) && stateHasCheckpoint(out) },
];

test('SIGINT, SIGTERM and SIGKILL mid-run: the rerun asks for no committed user-day again and ends with the clean output', async (t) => {
  t.timeout(400_000);
  const api = await startFixtureApi({ fitbit: { users: USERS, sampleUser: false } });
  api.faults.latencyMs = 5;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ops-stop-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));

  const clean = path.join(dir, 'clean');
  t.is((await startCli(api, users, clean).done).code, 0);
  const expected = await fingerprint(clean);
  t.true(expected.length >= USERS.length * 8 - 4);

  for (const stop of stops) {
    const out = path.join(dir, stop.signal);
    const from = api.log.length;
    const run = startCli(api, users, out);
    t.true(await until(() => stop.when(api, from, out), 120_000), `${stop.signal}: reached its stop point`);
    run.child.kill(stop.signal);
    const first = await run.done;
    t.is(first.code, stop.code, `${stop.signal}: exit code (${first.stderr})`);
    const records = await runRecords(out);
    t.is(records.length, 1);
    if (stop.signal === 'SIGKILL') {
      t.is(records[0]?.status, 'running', 'a killed run is told apart: its record still says running');
    } else {
      t.is(records[0]?.status, 'stopped');
      const lines = first.stderr.split('\n').filter((l) => l.startsWith('wearable-etl:'));
      t.is(lines.length, 1, first.stderr);
      t.regex(lines[0] ?? '', new RegExp(`^wearable-etl: stopped by ${stop.signal}: kept \\d+ row\\(s\\) in \\d+ committed file\\(s\\) .*run the same command again to resume`));
      t.deepEqual(leftovers(out), [], `${stop.signal}: no lock, no _tmp/<runId>/ left`);
    }
    const committed = await committedDays(out, stop.signal === 'SIGKILL');
    t.true(committed.size > 0, `${stop.signal}: something was committed before the stop`);

    const rerunFrom = api.log.length;
    const rerun = await startCli(api, users, out).done;
    t.is(rerun.code, 0, rerun.stderr);
    const again = dayRequests(api, rerunFrom).filter((d) => committed.has(d));
    t.deepEqual(again, [], `${stop.signal}: the rerun asked again for committed user-days`);
    t.true(dayRequests(api, rerunFrom).length < USERS.length * 16, `${stop.signal}: the rerun did not start over`);
    t.deepEqual(await fingerprint(out), expected, `${stop.signal}: output equals the clean run`);
    t.deepEqual(leftovers(out), []);
    const after = await runRecords(out);
    t.is(after.length, 2);
    if (stop.signal === 'SIGKILL') {
      t.is(after[0]?.status, 'interrupted', 'the rerun marks the killed run');
      t.deepEqual(after[1]?.adopted, [after[0]?.runId]);
    }
    t.is(after[1]?.status, 'complete');
    // The reader protocol now lists every file of the dataset.
    const { files } = await committedFiles(out, 'intraday');
    t.is(files.length, expected.length, `${stop.signal}: every partition is listed by a finished run`);
  }
});
