// Acceptance of the Fitbit sources, end to end over loopback: every fixture user's activities
// and intraday steps + calories, once against a clean fixture API and once against one where
// ≥ 20% of requests fail in mixed ways (429 with Remaining > 0, 500, 503, resets mid-body,
// truncated and non-JSON bodies, timeouts, expiring tokens, faults on the token endpoint) under
// a small rate window. DuckDB reads both outputs: every record lands exactly once. The
// server's own log shows no user ever went over its budget in any window, and no token,
// client secret or app key appears in anything printed or written.
import test from 'ava';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fixtureEnv, type FixtureApi } from '../fixtures/server.js';
import { createLogger } from '../lib/log.js';
import { main } from '../pipelines/cli.js';
import type { RunConfig } from '../pipelines/config.js';
import { parseRunArgs } from '../pipelines/registry.js';
import { failureLine, runPipelines, type RunSummary } from '../pipelines/run.js';
import { fixtureSecrets, leakedSecrets, rig } from './fitbit-helpers.js';
import { query } from './duckdb.js';

const SINCE = '2016-04-20';
const UNTIL = '2016-04-22';
const DATES = ['2016-04-20', '2016-04-21', '2016-04-22'];
const WINDOW_MS = 2_000;
const LIMIT = 10;

/** The environment of a Fitbit-only run (no Human API credentials: `all` runs the Fitbit pipelines). */
function fitbitEnv(api: FixtureApi): Record<string, string> {
  const { FITBIT_API_URL, FITBIT_CLIENT_ID, FITBIT_CLIENT_SECRET } = fixtureEnv(api);
  return { FITBIT_API_URL: FITBIT_API_URL!, FITBIT_CLIENT_ID: FITBIT_CLIENT_ID!, FITBIT_CLIENT_SECRET: FITBIT_CLIENT_SECRET! };
}

async function run(api: FixtureApi, dir: string, usersPath: string, out: string, faulty: boolean, lines: string[]): Promise<RunSummary> {
  const config = parseRunArgs(
    ['all', '--users', usersPath, '--out', out, '--since', SINCE, '--until', UNTIL, '--resources', 'steps,calories', '--concurrency', '12', '--compression', 'none'],
    fitbitEnv(api),
    dir,
  ) as RunConfig;
  return runPipelines(config, {
    log: createLogger({ json: true, write: (line) => lines.push(line) }),
    tuning: faulty
      ? { retry: { maxAttempts: 12, baseDelayMs: 5, maxDelayMs: 60, timeoutMs: 400 }, fitbitRateLimit: { limit: 150, jitterMs: [10, 60] } }
      : { retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 10, timeoutMs: 5_000 }, fitbitRateLimit: { limit: 150, jitterMs: [10, 60] } },
  });
}


test('≥ 20% mixed failures: every record lands exactly once, no window over budget, no secret anywhere', async (t) => {
  t.timeout(120_000);
  const clean = await rig(t);
  const faulty = await rig(t, {
    fitbit: { rateLimit: LIMIT, rateWindowMs: WINDOW_MS },
    faults: { ratio: 0.3, seed: 'acceptance', services: ['fitbit', 'oauth'], slowMs: 600, expireAccessTokenAfter: 6 },
  });
  const cleanOut = path.join(clean.dir, 'out');
  const faultyOut = path.join(faulty.dir, 'out');
  const cleanLines: string[] = [];
  const faultyLines: string[] = [];
  const cleanSummary = await run(clean.api, clean.dir, clean.usersPath, cleanOut, false, cleanLines);
  t.is(cleanSummary.exitCode, 0, failureLine(cleanSummary) ?? '');
  const summary = await run(faulty.api, faulty.dir, faulty.usersPath, faultyOut, true, faultyLines);
  t.is(summary.exitCode, 0, failureLine(summary) ?? '');
  t.is(failureLine(summary), null);

  // The faults really happened, in every kind, to ≥ 20% of the requests.
  const log = faulty.api.log;
  const faulted = log.filter((e) => e.fault !== undefined);
  t.true(faulted.length / log.length >= 0.2, `${faulted.length} of ${log.length} requests faulted`);
  t.deepEqual([...new Set(faulted.map((e) => String(e.fault)))].sort(), ['429', '500', '503', 'invalid-json', 'reset', 'slow', 'truncated']);
  t.true(summary.http.tokenRefreshes > 0 && summary.http.rateLimited > 0 && summary.http.retries > 0, JSON.stringify(summary.http));
  t.false(log.some((e) => e.service === 'oauth' && e.status === 400), 'no refresh token spent twice');

  // Budget: per user and server window, never more than the limit (429s and 401s included).
  const perWindow = new Map<string, number>();
  for (const e of log) {
    if (e.service !== 'fitbit' || e.userId === undefined) continue;
    const key = `${e.userId}@${Math.floor(e.at / WINDOW_MS)}`;
    perWindow.set(key, (perWindow.get(key) ?? 0) + 1);
  }
  const busiest = Math.max(...perWindow.values());
  t.true(busiest <= LIMIT, `a user sent ${busiest} requests in one ${WINDOW_MS} ms window`);
  // The limit was reached: some user spent a whole window's budget, or our own budget made a
  // user wait for the reset (which of the two depends on how fast the machine is).
  const waited = faultyLines.some((l) => l.includes('rate budget spent, waiting for the reset'));
  t.true(busiest === LIMIT || waited, `busiest window ${busiest}, waited ${waited}`);
  t.log(
    `clean ${(cleanSummary.durationMs / 1000).toFixed(1)} s, ${cleanSummary.http.requests} requests; faulty ${(summary.durationMs / 1000).toFixed(1)} s, ` +
      `${log.length} requests seen by the server, ${faulted.length} faulted, ${JSON.stringify(summary.http)}, busiest user window ${busiest}/${LIMIT}`,
  );
  t.false(log.some((e) => e.status === 429 && e.fault === undefined), 'the server never had to refuse for the limit');

  // One request at a time per user, but users go on while one waits: some user's wait for its
  // window (a gap of over a second between two of its requests) saw other users' requests.
  const byUser = new Map<string, number[]>();
  for (const e of log) if (e.service === 'fitbit' && e.userId !== undefined) byUser.set(e.userId, [...(byUser.get(e.userId) ?? []), e.at]);
  let overlapped = false;
  for (const [user, times] of byUser) {
    for (let i = 1; i < times.length && !overlapped; i++) {
      if (times[i]! - times[i - 1]! < 1_000) continue;
      overlapped = log.some((e) => e.userId !== undefined && e.userId !== user && e.at > times[i - 1]! && e.at < times[i]!);
    }
  }
  t.true(overlapped, 'other users kept going while one waited');

  // The profile is fetched once per user per run, for both pipelines.
  const profiles = clean.api.log.filter((e) => e.path.endsWith('/profile.json'));
  t.is(profiles.length, clean.api.fitbit.userIds().length);
  t.is(new Set(profiles.map((e) => e.userId)).size, profiles.length);

  // Outputs: the same records, each once, as the clean run, and as the fixture's own data.
  const q = query;
  const src = (out: string, dataset: string): string => `read_parquet('${path.join(out, dataset, '**', '*.parquet')}', hive_partitioning=true)`;
  const intradayCols = `id, "user", CAST("date" AS VARCHAR) AS d, type, "timestamp", value, tzOffset, "interval", level, mets`;
  const activityCols = `id, "user", CAST("date" AS VARCHAR) AS d, type, startTime, endTime, duration, distance, steps, calories, pace, speed, sourceData, updatedAt`;
  for (const [dataset, cols] of [['intraday', intradayCols], ['activities', activityCols]] as const) {
    const [counts] = await q(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM ${src(faultyOut, dataset)}`);
    const [cleanCounts] = await q(`SELECT count(*) AS n FROM ${src(cleanOut, dataset)}`);
    t.true(Number(counts!.n) > 0, dataset);
    t.is(Number(counts!.n), Number(counts!.ids), `${dataset}: every id once`);
    t.is(Number(counts!.n), Number(cleanCounts!.n), `${dataset}: as many rows as the clean run`);
    const [diff] = await q(
      `SELECT (SELECT count(*) FROM (SELECT ${cols} FROM ${src(cleanOut, dataset)} EXCEPT SELECT ${cols} FROM ${src(faultyOut, dataset)})) AS missing,
              (SELECT count(*) FROM (SELECT ${cols} FROM ${src(faultyOut, dataset)} EXCEPT SELECT ${cols} FROM ${src(cleanOut, dataset)})) AS extra`,
    );
    t.deepEqual(diff, { missing: '0', extra: '0' }, dataset);
  }
  let minutes = 0;
  let activities = 0;
  for (const id of faulty.api.fitbit.userIds()) {
    const u = faulty.api.fitbit.user(id);
    for (const date of DATES) minutes += (u.days.get(date)?.hours.length ?? 0) * 60;
    activities += u.activities.filter((a) => a.startTime.slice(0, 10) >= SINCE && a.startTime.slice(0, 10) <= UNTIL).length;
  }
  const [byType] = await q(`SELECT count(*) FILTER (WHERE type = 'steps') AS steps, count(*) FILTER (WHERE type = 'calories') AS calories FROM ${src(faultyOut, 'intraday')}`);
  t.deepEqual(byType, { steps: String(minutes), calories: String(minutes) }, 'one row per fixture minute and resource');
  const [acts] = await q(`SELECT count(*) AS n FROM ${src(faultyOut, 'activities')}`);
  t.is(Number(acts!.n), activities);
  t.true(activities > 50);

  // The activities watermark is each user's highest lastModified among the records it landed.
  const state = JSON.parse(await fs.readFile(path.join(faultyOut, '_state', 'fitbit-activities.json'), 'utf8')) as { users: Record<string, { streams: Record<string, string> }> };
  for (const id of faulty.api.fitbit.userIds()) {
    const u = faulty.api.fitbit.user(id);
    const marks = u.activities.filter((a) => a.startTime.slice(0, 10) >= SINCE && a.startTime.slice(0, 10) <= UNTIL).map((a) => a.lastModified).sort();
    t.is(String(state.users[u.humanId]?.streams.activities ?? 'none'), String(marks.at(-1) ?? 'none'), u.humanId);
  }

  // Secrets: not in the logs, the summary, or any file of the output tree.
  const secrets = fixtureSecrets(faulty.api);
  t.true(secrets.length > 2 * faulty.api.fitbit.userIds().length, 'rotated tokens are in the list');
  t.deepEqual(await leakedSecrets(secrets, [...faultyLines, JSON.stringify(summary)], [faultyOut]), []);
  // The rotated pairs went to the users file (and only there).
  const users = await fs.readFile(faulty.usersPath, 'utf8');
  for (const id of faulty.api.fitbit.userIds()) t.true(users.includes(faulty.api.fitbit.user(id).refreshToken));
});

test('the CLI prints no secret while tokens expire and rotate, requests fail, and one user holds a token the server never issued', async (t) => {
  t.timeout(60_000);
  const ids = ['1503960366', '1624580081', '1927972279', '2022484408'];
  const r = await rig(t, { fitbit: { users: ids }, faults: { ratio: 0.3, seed: 'cli', mix: { '500': 1, '503': 1, reset: 1, truncated: 1, 'invalid-json': 1 }, services: ['fitbit', 'oauth'], expireAccessTokenAfter: 2 } });
  const file = JSON.parse(await fs.readFile(r.usersPath, 'utf8')) as Array<{ userId: string; accessToken: string }>;
  const unknownToken = 'at_never_issued_0f1e2d3c4b5a69788796a5b4c3d2e1f0';
  file[3]!.accessToken = unknownToken;
  await fs.writeFile(r.usersPath, JSON.stringify(file));
  const out = path.join(r.dir, 'out');
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io = { env: fitbitEnv(r.api), cwd: r.dir, stdout: (s: string) => stdout.push(s), stderr: (s: string) => stderr.push(s) };
  const common = ['--users', r.usersPath, '--out', out, '--since', SINCE, '--until', UNTIL, '--compression', 'none'];
  const codes = [await main(['run', 'fitbit-intraday', ...common, '--resources', 'steps'], io), await main(['run', 'fitbit-activities', ...common], io)];
  t.deepEqual(codes, [3, 3], stderr.join(''));
  const err = stderr.join('');
  t.regex(err, /partial: 1 user\(s\) failed, the others are done — user fitabase-2022484408 \(fitbit-intraday: /);
  t.regex(err, /re-authorise/);
  t.true(r.api.log.some((e) => e.fault !== undefined) && r.api.log.some((e) => e.service === 'oauth' && e.status === 200));
  const secrets = [...fixtureSecrets(r.api), unknownToken];
  t.deepEqual(await leakedSecrets(secrets, [stdout.join(''), err], [out]), []);
});
