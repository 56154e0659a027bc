// Two Google Health workers on one PostgreSQL state at once, over the same users (issue #17):
// two `google-health-intraday` runs with different streams are different work, so each takes
// every user, and only the shared budget (rate_tickets, pipelines/state/pg.ts) keeps the pair
// within each user's limit. The fixture counts every request per user and window and answers
// 429 over the limit; faults add 429s of their own, which the workers pause for. The same pair
// with file state (a budget per process) is the control: it goes over the limit.
import test from 'ava';
import path from 'node:path';
import { googleHealthUsers, ghRig, run, writeJson, FAST } from './google-health-helpers.js';
import { startTestPostgres, type TestPostgres } from './postgres.js';
import { failureLine } from '../pipelines/run.js';
import type { FixtureApi } from '../fixtures/server.js';

const USERS = ['1503960366', '1624580081', '1927972279'];
const LIMIT = 3;
const WINDOW_MS = 1_000;
const TUNING = { ...FAST, googleHealthRateLimit: { limit: LIMIT, windowMs: WINDOW_MS, backoffMs: [20, 200] as [number, number] } };

let pgServer: TestPostgres;
test.before(async () => {
  pgServer = await startTestPostgres();
});
test.after.always(async () => {
  await pgServer?.stop();
});

/** Both workers at once; returns the fixture's busiest user window (sliding) and the 429s it sent for the limit. */
async function pair(api: FixtureApi, dir: string, name: string, state: (worker: string) => string[]): Promise<{ busiest: number; limited: number; requests: number; lines: string[]; exitCodes: number[]; perWorker: number[] }> {
  const usersPath = await writeJson(path.join(dir, `${name}-users.json`), googleHealthUsers(api));
  const lines: string[] = [];
  const from = api.log.length;
  const summaries = await Promise.all(
    (['steps', 'distance'] as const).map((stream) =>
      run(api, dir, ['google-health-intraday', '--users', usersPath, '--out', path.join(dir, `${name}-${stream}`), '--since', '2016-04-12', '--until', '2016-04-30', '--resources', stream, '--concurrency', '4', '--compression', 'none', ...state(stream)], lines, TUNING),
    ),
  );
  const log = api.log.slice(from).filter((e) => e.service === 'google-health' && e.userId !== undefined);
  // Any window, however aligned: the requests of the user that arrived in the window ending at each one.
  let busiest = 0;
  for (const e of log) busiest = Math.max(busiest, log.filter((o) => o.userId === e.userId && o.at <= e.at && o.at > e.at - WINDOW_MS).length);
  return {
    busiest,
    limited: log.filter((e) => e.status === 429 && e.fault === undefined).length,
    requests: log.length,
    lines,
    exitCodes: summaries.map((s) => s.exitCode),
    perWorker: summaries.map((s) => s.http.requests),
  };
}

test('two workers over the same users share each user\'s budget through PostgreSQL: no 429 for the limit, no window over it', async (t) => {
  t.timeout(180_000);
  const { api, dir } = await ghRig(t, {
    fitbit: { users: USERS, sampleUser: false },
    googleHealth: { rateLimit: LIMIT, rateWindowMs: WINDOW_MS },
    faults: { ratio: 0.1, seed: 'gh-workers', services: ['google-health'], mix: { '429': 1, '500': 1 } },
  });
  const url = await pgServer.createDatabase('gh_workers');
  const shared = await pair(api, dir, 'pg', () => ['--state', url]);
  t.deepEqual(shared.exitCodes, [0, 0], shared.lines.filter((l) => l.includes('"error"')).slice(0, 3).join('\n'));
  // Each worker fetched every user (about 10 requests each), side by side with the other.
  t.true(shared.perWorker.every((n) => n >= USERS.length * 8), `requests per worker: ${shared.perWorker.join(', ')}`);
  t.true(api.log.some((e) => e.service === 'google-health' && e.status === 429 && e.fault !== undefined), 'injected 429s happened');
  t.is(shared.limited, 0, 'no 429 for the per-user limit');
  t.true(shared.busiest <= LIMIT, `a user sent ${shared.busiest} requests in one ${WINDOW_MS} ms window`);
  t.true(shared.lines.some((l) => l.includes('rate budget spent, waiting')), 'the budget made users wait');
  t.log(`shared: ${shared.requests} requests, busiest user window ${shared.busiest}/${LIMIT}`);
});

test('control: the same two workers with a budget each (file state) go over the limit', async (t) => {
  t.timeout(180_000);
  const { api, dir } = await ghRig(t, {
    fitbit: { users: USERS, sampleUser: false },
    googleHealth: { rateLimit: LIMIT, rateWindowMs: WINDOW_MS },
  });
  const apart = await pair(api, dir, 'files', () => []);
  t.true(apart.limited > 0 || apart.busiest > LIMIT, `apart: busiest ${apart.busiest}, ${apart.limited} 429s`);
  t.log(`apart: ${apart.requests} requests, busiest user window ${apart.busiest}/${LIMIT}, ${apart.limited} 429s for the limit`);
});
