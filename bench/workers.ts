// Several workers (issue #17): `wearable-etl run fitbit-intraday --state postgres://…` started
// 1, 2 and 4 times at once against the fixture API answering every request after 150 ms (a
// realistic API latency), on one throwaway PostgreSQL (test/postgres.ts) and one output folder.
// 64 users (--users) × 7 days × 2 resources (+ each user's profile). The lower bound of a case is
// requests × 150 ms ÷ (workers × --concurrency): the time if only the API's latency counted.
// Reports per case the wall time (first start to last exit) against it, the throughput and its
// growth over one worker, and the state's overhead: database transactions per API request
// (pg_stat_database) and the ms one request's budget step takes (reserve + observe, timed
// against the same database apart from the runs).
//
//   npm run build && TMPDIR=/tmp/<you> npx tsx bench/workers.ts [--workers 1,2,4] [--concurrency 4] [--users 64]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { fixtureEnv, startFixtureApi, writeUsersFile } from '../fixtures/server.js';
import { PgState } from '../pipelines/state/index.js';
import { FITBIT_RATE_DEFAULTS } from '../sources/fitbit/rate-limit.js';
import { startTestPostgres } from '../test/postgres.js';
import { ROOT, machine, option, round, writeResults } from './harness.js';

// --users N: more users make a longer run, where the tail (a worker's last users fetching alone) counts less.
const USERS = Number(option('users', '64'));
const LATENCY_MS = 150;
const WINDOW = ['--since', '2016-04-13', '--until', '2016-04-19', '--resources', 'steps,calories'];

interface CaseResult {
  workers: number;
  concurrency: number;
  seconds: number;
  lowerBoundSeconds: number;
  vsLowerBound: number;
  requests: number;
  requestsPerSecond: number;
  growthOverOneWorker: number;
  dbTransactionsPerRequest: number;
  exitCodes: Array<number | null>;
}

async function transactions(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: string }>('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()');
    return Number(rows[0]!.n);
  } finally {
    await c.end();
  }
}

/** The CLI as installed (dist, after `npm run build`), else from source through tsx. */
function cliCommand(): string[] {
  const dist = join(ROOT, 'dist', 'pipelines', 'bin.js');
  return existsSync(dist) ? [dist] : ['--import', 'tsx', join(ROOT, 'pipelines', 'bin.ts')];
}

async function main(): Promise<void> {
  const workerCounts = option('workers', '1,2,4').split(',').map(Number);
  const concurrency = Number(option('concurrency', '4'));
  const base = await mkdtemp(join(tmpdir(), 'bench-workers-'));
  const postgres = await startTestPostgres();
  const api = await startFixtureApi({ fitbit: { extraUsers: USERS - 33, sampleUser: false, cacheIntraday: true } });
  api.faults.latencyMs = LATENCY_MS;
  const load = loadavg()[0]!;
  const results: CaseResult[] = [];
  let stateMsPerRequest = 0;
  try {
    for (const workers of workerCounts) {
      const url = await postgres.createDatabase(`bench_${workers}`);
      const out = join(base, `out-${workers}`);
      await mkdir(out, { recursive: true });
      // A fresh users file per case: the fixture's tokens do not rotate here (no expiry).
      const users = await writeUsersFile(api, join(base, `users-${workers}.json`));
      // Migrate once, so the workers' start is not a queue on the migration lock.
      await (await PgState.open({ url, cipher: null })).close();
      const before = api.log.length;
      const txBefore = await transactions(url);
      const started = Date.now();
      const exits = await Promise.all(
        Array.from({ length: workers }, () =>
          new Promise<number | null>((resolve) => {
            const child = spawn(process.execPath, [...cliCommand(), 'run', 'fitbit-intraday', '--users', users, '--out', out, '--state', url, '--concurrency', String(concurrency), ...WINDOW], {
              cwd: ROOT,
              env: { ...process.env, ...fixtureEnv(api) },
              stdio: ['ignore', 'ignore', 'inherit'],
            });
            child.once('exit', (code) => resolve(code));
          }),
        ),
      );
      const seconds = (Date.now() - started) / 1000;
      const requests = api.log.slice(before).filter((e) => e.service === 'fitbit').length;
      const txs = (await transactions(url)) - txBefore;
      const lowerBoundSeconds = (requests * LATENCY_MS) / 1000 / (workers * concurrency);
      const rps = requests / seconds;
      results.push({
        workers,
        concurrency,
        seconds: round(seconds, 2),
        lowerBoundSeconds: round(lowerBoundSeconds, 2),
        vsLowerBound: round(seconds / lowerBoundSeconds, 2),
        requests,
        requestsPerSecond: round(rps, 1),
        growthOverOneWorker: results[0] ? round(rps / (results[0].requests / results[0].seconds), 2) : 1,
        dbTransactionsPerRequest: round(txs / Math.max(1, requests), 2),
        exitCodes: exits,
      });
      console.log(JSON.stringify(results[results.length - 1]));
    }
    // One request's state work, alone: the budget row taken and the answer's headers read back.
    const url = await postgres.createDatabase('bench_budget');
    const db = await PgState.open({ url, cipher: null });
    const headers = new Headers({ 'fitbit-rate-limit-limit': '150', 'fitbit-rate-limit-remaining': '149', 'fitbit-rate-limit-reset': '3000' });
    const n = 300;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      await db.reserve('fitbit', `u${i % 10}`, { ...FITBIT_RATE_DEFAULTS, limit: 1_000_000 });
      await db.observe('fitbit', `u${i % 10}`, FITBIT_RATE_DEFAULTS, headers);
    }
    stateMsPerRequest = round((performance.now() - t0) / n, 2);
    await db.close();
  } finally {
    await api.close();
    await postgres.stop();
    await rm(base, { recursive: true, force: true });
  }
  const report = { bench: 'workers', machine: machine(), loadAverageAtStart: round(load, 1), latencyMs: LATENCY_MS, users: USERS, stateMsPerRequest, cases: results };
  console.log(JSON.stringify(report, null, 2));
  console.log(`results: ${await writeResults('workers', report)}`);
}

await main();
