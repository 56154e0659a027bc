// Issue 19 for Google Health: a multi-user google-health-intraday run through the wearable-etl
// command is interrupted (SIGINT, SIGTERM) or killed (SIGKILL) at several points, then run again
// with the same command. The rerun asks the fixture API for no user-day committed before the
// stop (a data request's civil-time filter names the days it asks for; committed = in a file the
// reader protocol lists, or for a killed run the manifest its checkpoints wrote, read by DuckDB),
// and its output equals an uninterrupted run's.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { googleHealthEnv, googleHealthUsers, startFixtureApi, type FixtureApi } from '../fixtures/server.js';
import { readManifest } from '../sinks/index.js';
import { committedFiles } from '../scripts/committed-files.mjs';
import { query } from './duckdb.js';
import { until } from './fitbit-helpers.js';
import { FAST, ghRig, writeJson } from './google-health-helpers.js';
import { parseRunArgs } from '../pipelines/registry.js';
import { runPipelines } from '../pipelines/run.js';
import type { RunConfig } from '../pipelines/config.js';
import { createLogger } from '../lib/log.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'pipelines', 'bin.ts');
const USERS = ['1503960366', '1624580081', '1644430081', '1844505072'];
const SINCE = '2016-04-13';
const UNTIL = '2016-05-03';
const WINDOW = ['--since', SINCE, '--until', UNTIL, '--resources', 'steps,distance', '--concurrency', '1', '--compression', 'none'];

function startCli(api: FixtureApi, users: string, out: string): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'run', 'google-health-intraday', '--users', users, '--out', out, ...WINDOW], {
    cwd: root,
    env: { ...process.env, ...googleHealthEnv(api) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  return { child, done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr }))) };
}

const dayAfter = (date: string): string => new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);

/** User-days asked for from log index `from` on, "<user> <type> <date>", read from each data request's filter. */
function dayRequests(api: FixtureApi, from: number): string[] {
  const out: string[] = [];
  for (const e of api.log.slice(from)) {
    const m = /\/dataTypes\/([a-z-]+)\/dataPoints:reconcile/.exec(e.path);
    if (!m || e.status !== 200) continue;
    const filter = new URL(e.path, 'http://x').searchParams.get('filter') ?? '';
    const lo = />= "(\d{4}-\d{2}-\d{2})"/.exec(filter)?.[1];
    const hi = /< "(\d{4}-\d{2}-\d{2})"/.exec(filter)?.[1];
    if (!lo || !hi) throw new Error(`no civil window in ${filter}`);
    for (let d = lo; d < hi; d = dayAfter(d)) out.push(`${e.userId} ${m[1]} ${d}`);
  }
  return out;
}

async function daysIn(files: string[]): Promise<Set<string>> {
  if (files.length === 0) return new Set();
  const rows = await query(`SELECT DISTINCT "user" AS u, type, CAST("date" AS VARCHAR) AS d FROM read_parquet([${files.map((f) => `'${f}'`).join(', ')}], hive_partitioning=true, hive_types_autocast=false)`);
  return new Set(rows.map((r) => `${String(r.u)} ${String(r.type)} ${String(r.d)}`));
}

/** Committed user-days: what finished runs list (reader protocol); for a killed run, what its checkpoints put in the manifest. */
async function committedDays(out: string, killed: boolean): Promise<Set<string>> {
  const files = killed ? ((await readManifest(out, 'intraday'))?.files ?? []).map((f) => path.join(out, 'intraday', f.path)) : (await committedFiles(out, 'intraday')).files;
  return daysIn(files);
}

async function fingerprint(out: string): Promise<Record<string, unknown>[]> {
  return query(
    `SELECT "user", CAST("date" AS VARCHAR) AS d, count(*) AS n, count(DISTINCT id) AS ids,
            sum(hash(id, humanId, userId, source, type, "timestamp", tzOffset, timeZone, value, unit, "interval")) AS h
     FROM read_parquet('${path.join(out, 'intraday', '**', '*.parquet')}', hive_partitioning=true, hive_types_autocast=false) GROUP BY ALL ORDER BY ALL`,
  );
}

function checkpointed(out: string): boolean {
  try {
    const state = JSON.parse(readFileSync(path.join(out, '_state', 'google-health-intraday.json'), 'utf8')) as { users: Record<string, { pending?: unknown }> };
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

const stops: Array<{ signal: NodeJS.Signals; code: number | null; when: (api: FixtureApi, from: number, out: string) => boolean }> = [
  // Early: the first users' first windows are out, nobody has reached a checkpoint.
  { signal: 'SIGINT', code: 130, when: (api, from) => dayRequests(api, from).length >= 30 },
  // Later: some users are done, others in the middle of their windows.
  { signal: 'SIGTERM', code: 143, when: (api, from) => dayRequests(api, from).length >= 100 },
  // Right after a user's checkpoint (manifest, then state): the others are mid-window.
  { signal: 'SIGKILL', code: null, when: (_api, _from, out) => existsSync(path.join(out, 'intraday', '_manifest.json')) && checkpointed(out) },
];

test('google-health-intraday: SIGINT, SIGTERM and SIGKILL mid-run, then the same command: no committed user-day asked again, output equals a clean run', async (t) => {
  t.timeout(400_000);
  const api = await startFixtureApi({ fitbit: { users: USERS, sampleUser: false }, googleHealth: { derivedUsers: false } });
  api.faults.latencyMs = 25;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ops-stop-gh-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const users = path.join(dir, 'users.json');
  await fs.writeFile(users, JSON.stringify(googleHealthUsers(api)), { mode: 0o600 });

  const clean = path.join(dir, 'clean');
  const cleanFrom = api.log.length;
  const first = await startCli(api, users, clean).done;
  t.is(first.code, 0, first.stderr);
  const expected = await fingerprint(clean);
  const allDays = new Set(dayRequests(api, cleanFrom));
  const sorted = (s: Iterable<string>): string[] => [...new Set(s)].sort();
  t.deepEqual(sorted(await daysIn((await committedFiles(clean, 'intraday')).files)), sorted(allDays), 'the clean run commits every user-day it asks for (the counting holds)');
  t.true(allDays.size >= USERS.length * 2 * 18);

  for (const stop of stops) {
    const out = path.join(dir, stop.signal);
    const from = api.log.length;
    const run = startCli(api, users, out);
    t.true(await until(() => stop.when(api, from, out), 120_000), `${stop.signal}: reached its stop point`);
    run.child.kill(stop.signal);
    const stopped = await run.done;
    t.is(stopped.code, stop.code, `${stop.signal}: exit code (${stopped.stderr})`);
    if (stop.signal !== 'SIGKILL') {
      t.regex(stopped.stderr, new RegExp(`wearable-etl: stopped by ${stop.signal}: kept \\d+ row\\(s\\)`));
      t.deepEqual(leftovers(out), [], `${stop.signal}: no lock, no _tmp/<runId>/ left`);
    }
    const committed = await committedDays(out, stop.signal === 'SIGKILL');
    t.true(committed.size > 0, `${stop.signal}: something was committed before the stop`);
    t.true(committed.size < allDays.size, `${stop.signal}: the stop came before the end`);

    const rerunFrom = api.log.length;
    const rerun = await startCli(api, users, out).done;
    t.is(rerun.code, 0, rerun.stderr);
    const asked = dayRequests(api, rerunFrom);
    t.deepEqual(asked.filter((d) => committed.has(d)), [], `${stop.signal}: the rerun asked again for committed user-days`);
    t.deepEqual(sorted([...committed, ...asked]), sorted(allDays), `${stop.signal}: committed before plus asked now is every user-day`);
    t.deepEqual(await fingerprint(out), expected, `${stop.signal}: output equals the clean run`);
    t.deepEqual(leftovers(out), []);
  }
});

test('in process: a stop during a Google Health rate-limit wait ends the run at once and leaves no timer behind', async (t) => {
  t.timeout(60_000);
  const { api, dir } = await ghRig(t, { fitbit: { users: USERS.slice(0, 2), sampleUser: false } });
  const users = await writeJson(path.join(dir, 'users.json'), googleHealthUsers(api, USERS.slice(0, 2)));
  // Two requests a minute per user: the third of each user waits most of a minute.
  const tuning = { ...FAST, googleHealthRateLimit: { limit: 2, windowMs: 60_000, backoffMs: [20, 200] as [number, number] } };
  const config = parseRunArgs(['google-health-intraday', '--users', users, '--out', path.join(dir, 'out'), ...WINDOW], googleHealthEnv(api), dir) as RunConfig;
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const stop = new AbortController();
  const lines: string[] = [];
  const log = createLogger({
    json: true,
    write: (line) => {
      lines.push(line);
      if (line.includes('rate budget spent, waiting') && !stop.signal.aborted) stop.abort('SIGINT');
    },
  });
  const started = Date.now();
  const summary = await runPipelines(config, { log, tuning, stop: stop.signal });
  t.is(summary.status, 'stopped');
  t.true(Date.now() - started < 20_000, `the run ended with the stop, not after the minute's wait (${Date.now() - started} ms)`);
  await new Promise((resolve) => setImmediate(resolve));
  t.true(timers() <= before, `no timer left running (${timers()} Timeouts, ${before} before the run)`);
});
