// Acceptance of the Google Health pipelines end to end over loopback, under faults (429 with and
// without Retry-After, 500, 503 UNAVAILABLE, resets, truncated and non-JSON bodies, slow answers,
// empty pages that carry a token), expiring access tokens, rotating refresh tokens and a tight
// rate limit. Runs over three windows cover a spring-forward day, a fall-back day and a user whose
// first days were recorded in New York. DuckDB reads the output; the truth comes from the bundled
// Fitabase file and from what the fixture served; the budget from the fixture's request log.
import test from 'ava';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fixtureSecrets, leakedSecrets } from './fitbit-helpers.js';
import { fitabaseDailySteps, ghRig, googleHealthUsers, run, shift, writeJson, FAST } from './google-health-helpers.js';
import { query } from './duckdb.js';
import { failureLine } from '../pipelines/run.js';

const BASE = ['1503960366', '1624580081', '1927972279', '2022484408'];
const LIMIT = 6;
const WINDOW_MS = 1_000;
const WINDOWS: Array<[string, string]> = [['2016-03-12', '2016-03-14'], ['2016-04-14', '2016-04-18'], ['2016-11-05', '2016-11-07']];

test('under faults, token expiry and a tight rate limit: exact days, instants, distance, activities, roll-ups; no window over budget; no secret anywhere', async (t) => {
  t.timeout(180_000);
  const { api, dir } = await ghRig(t, {
    fitbit: { users: BASE, sampleUser: false },
    googleHealth: { rateLimit: LIMIT, rateWindowMs: WINDOW_MS, emptyPageRatio: 0.1 },
    faults: { ratio: 0.2, seed: 'gh-acceptance', services: ['google-health', 'google-oauth'], slowMs: 300, expireAccessTokenAfter: 7 },
  });
  const gh = api.googleHealth;
  const keys = gh.userKeys();
  t.deepEqual(keys, [...BASE, 'GHSPRING', 'GHFALL']);
  // One entry without an access token (it refreshes before its first request), one with a humanId.
  const entries = googleHealthUsers(api).map((e, i) => (i === 1 ? { provider: e.provider!, refreshToken: e.refreshToken! } : e));
  const usersPath = await writeJson(path.join(dir, 'users.json'), entries);
  const out = path.join(dir, 'out');
  const lines: string[] = [];
  const tuning = { ...FAST, googleHealthRateLimit: { limit: LIMIT, windowMs: WINDOW_MS, backoffMs: [20, 200] as [number, number] } };
  // One run per pipeline and window (`run all` would do the same, but main's sink currently
  // fails the second dataset of a run: its temporary folder is removed by the first).
  for (const [since, until] of WINDOWS) {
    for (const [pipeline, extra] of [['google-health-intraday', ['--resources', 'steps,distance']], ['google-health-activities', []], ['google-health-daily', []]] as const) {
      const summary = await run(api, dir, [pipeline, '--users', usersPath, '--out', out, '--since', since, '--until', until, ...extra, '--concurrency', '4', '--compression', 'none'], lines, tuning);
      t.is(summary.exitCode, 0, failureLine(summary) ?? '');
    }
  }

  // The faults happened, in every kind.
  const log = api.log;
  const faulted = log.filter((e) => e.fault !== undefined);
  t.deepEqual([...new Set(faulted.map((e) => String(e.fault)))].sort(), ['429', '500', '503', 'invalid-json', 'reset', 'slow', 'truncated']);
  t.true(log.some((e) => e.service === 'google-health' && e.status === 401), 'access tokens expired');
  t.true(gh.refreshLog.length > keys.length, `${gh.refreshLog.length} refreshes`);

  // Budget: per user and server window, never more than the limit (429s and 401s included);
  // the server never had to refuse for the limit.
  const perWindow = new Map<string, number>();
  for (const e of log) {
    if (e.service !== 'google-health' || e.userId === undefined) continue;
    const key = `${e.userId}@${Math.floor(e.at / WINDOW_MS)}`;
    perWindow.set(key, (perWindow.get(key) ?? 0) + 1);
  }
  const busiest = Math.max(...perWindow.values());
  t.true(busiest <= LIMIT, `a user sent ${busiest} requests in one ${WINDOW_MS} ms window`);
  // The limit bound: users waited for their budget.
  t.true(lines.some((l) => l.includes('rate budget spent, waiting')), 'the budget made users wait');
  // 429s paused the user: after each one, that user's next request came no sooner than asked.
  for (let i = 0; i < log.length; i++) {
    const e = log[i]!;
    if (e.service !== 'google-health' || e.status !== 429 || e.userId === undefined) continue;
    const next = log.slice(i + 1).find((x) => x.service === 'google-health' && x.userId === e.userId);
    if (next) t.true(next.at - e.at >= 10, `user ${e.userId} resumed ${next.at - e.at} ms after a 429`);
  }
  t.false(log.some((e) => e.status === 429 && e.fault === undefined), 'no 429 for the per-user limit');
  t.log(`${log.length} requests, ${faulted.length} faulted, busiest user window ${busiest}/${LIMIT}, ${gh.refreshLog.length} refreshes`);

  // No refresh token spent twice: every one the token endpoint took was taken once, none refused.
  const spent = gh.refreshLog.filter((r) => r.status === 200).map((r) => r.token);
  t.is(new Set(spent).size, spent.length);
  t.false(gh.refreshLog.some((r) => r.status !== 200), 'no invalid_grant');
  // The users file holds every user's current pair.
  const file = JSON.parse(await fs.readFile(usersPath, 'utf8')) as Array<{ refreshToken: string }>;
  t.deepEqual(file.map((e) => e.refreshToken), keys.map((k) => gh.user(k).refreshToken));

  const src = (dataset: string): string => `read_parquet('${path.join(out, dataset, '**', '*.parquet')}', hive_partitioning = true, hive_types_autocast = false)`;
  const humanId = (key: string): string => gh.user(key).legacyUserId ?? gh.user(key).healthUserId;

  // Steps per user and local date = the Fitabase day totals (spring-forward day: its missing
  // hour 02:00-02:59 cannot have been recorded), for every user-day of the three windows.
  const expected = new Map<string, number>();
  const put = (user: string, date: string, total: number): void => void expected.set(`${user}|${date}`, total);
  const inWindows = (date: string): boolean => WINDOWS.some(([a, b]) => date >= a && date <= b);
  for (const id of BASE) for (const [date, d] of fitabaseDailySteps(id)) if (inWindows(date)) put(humanId(id), date, d.total);
  for (const [date, d] of fitabaseDailySteps('1624580081')) {
    const local = shift(date, -35);
    if (inWindows(local)) put(humanId('GHSPRING'), local, d.total - (local === '2016-03-13' ? d.byHour.get(2) ?? 0 : 0));
  }
  for (const [date, d] of fitabaseDailySteps('1927972279')) if (inWindows(shift(date, 200))) put(humanId('GHFALL'), shift(date, 200), d.total);
  const days = await query(`SELECT humanId AS u, CAST("date" AS VARCHAR) AS d, CAST(sum(value) AS BIGINT) AS steps FROM ${src('intraday')} WHERE type = 'steps' GROUP BY ALL`);
  const got = new Map(days.map((r) => [`${String(r.u)}|${String(r.d)}`, Number(r.steps)]));
  t.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries([...expected].sort()));
  t.true(expected.size >= 20, `${expected.size} user-days`);

  // Every row once; every instant = DuckDB's AT TIME ZONE of its local minute in its zone; DST
  // days and the travelled days are among them.
  const [checks] = await query(`
    WITH r AS (SELECT *, CAST("date" AS VARCHAR) || ' ' || regexp_extract(id, 'T(\\d\\d:\\d\\d:\\d\\d)', 1) AS wall FROM ${src('intraday')})
    SELECT count(*) AS n, count(DISTINCT id) AS ids,
           count(*) FILTER (WHERE timezone(timeZone, CAST(wall AS TIMESTAMP)) <> "timestamp") AS wrong,
           count(*) FILTER (WHERE CAST("date" AS VARCHAR) = '2016-03-13') AS spring,
           count(*) FILTER (WHERE CAST("date" AS VARCHAR) = '2016-11-06') AS fall,
           count(*) FILTER (WHERE timeZone = 'Etc/GMT+4' AND tzOffset = '-04:00') AS travelled,
           count(*) FILTER (WHERE source <> 'google-health') AS other
    FROM r`);
  t.is(checks!.n, checks!.ids);
  t.is(Number(checks!.wrong), 0);
  t.true(Number(checks!.spring) === 2 * 23 * 60 && Number(checks!.fall) > 0 && Number(checks!.travelled) > 0, JSON.stringify(checks));
  t.is(Number(checks!.other), 0);

  // Distance: exact millimetres per user and day, as served.
  const servedMm = new Map<string, number>();
  for (const key of keys) {
    const m = gh.data(key).minutes;
    for (let i = 0; i < m.count; i++) {
      if (!inWindows(m.localDate[i]!)) continue;
      const k = `${humanId(key)}|${m.localDate[i]}`;
      servedMm.set(k, (servedMm.get(k) ?? 0) + m.distanceMm[i]!);
    }
  }
  const dist = await query(`SELECT humanId AS u, CAST("date" AS VARCHAR) AS d, sum(CAST(round(value * 1000) AS BIGINT)) AS mm,
    count(*) FILTER (WHERE abs(value * 1000 - round(value * 1000)) > 1e-6) AS inexact FROM ${src('intraday')} WHERE type = 'distance' GROUP BY ALL`);
  t.deepEqual(Object.fromEntries(dist.map((r) => [`${String(r.u)}|${String(r.d)}`, Number(r.mm)]).sort()), Object.fromEntries([...servedMm].filter(([, v]) => v >= 0).sort()));
  t.true(dist.every((r) => Number(r.inexact) === 0));

  // Activities: each exercise served in the windows, exactly.
  const acts = await query(`SELECT id, humanId AS u, epoch_ms(startTime) AS s, epoch_ms(endTime) AS e, tzOffset, duration, distance, pace, speed, steps, type FROM ${src('activities')}`);
  const byId = new Map(acts.map((a) => [String(a.id), a]));
  let n = 0;
  for (const key of keys) {
    for (const e of gh.data(key).exercises) {
      if (!inWindows(e.localDate)) continue;
      n++;
      const a = byId.get(`fitbit-${e.id}`);
      if (!a) {
        t.fail(`exercise ${e.id} missing`);
        continue;
      }
      const km = e.distanceMm / 1e6;
      t.like({ ...a, s: Number(a.s), e: Number(a.e), steps: Number(a.steps) }, { u: humanId(key), s: e.startMs, e: e.endMs, steps: e.steps, type: e.type === 'RUNNING' ? 'running' : 'walking' });
      t.is(a.distance, e.distanceMm / 1000);
      t.is(a.duration, (e.endMs - e.startMs) / 1000);
      t.true(Math.abs(Number(a.pace) - e.activeSeconds / km) < 1e-9 * e.activeSeconds / km);
      t.true(Math.abs(Number(a.speed) - km / (e.activeSeconds / 3600)) < 1e-9 * km / (e.activeSeconds / 3600));
      const off = e.startOffsetSec / 60;
      t.is(a.tzOffset, `${off < 0 ? '-' : '+'}${String(Math.floor(Math.abs(off) / 60)).padStart(2, '0')}:${String(Math.abs(off) % 60).padStart(2, '0')}`);
    }
  }
  t.is(acts.length, n);
  t.true(n > 5, `${n} activities`);
  t.true(acts.some((a) => BigInt(String(a.id).slice(7)) > 2n ** 53n), 'a 64-bit id above 2^53, exact');

  // daily_summaries = the roll-ups as served: sums per local date (each minute's own offset).
  const roll = new Map<string, { steps: number; mm: number; kcal: number }>();
  for (const key of keys) {
    const m = gh.data(key).minutes;
    for (let i = 0; i < m.count; i++) {
      if (!inWindows(m.localDate[i]!)) continue;
      const k = `${humanId(key)}|${m.localDate[i]}`;
      const r = roll.get(k) ?? { steps: 0, mm: 0, kcal: 0 };
      r.steps += m.steps[i]!;
      r.mm += m.distanceMm[i]!;
      r.kcal += m.calUnits[i]!;
      roll.set(k, r);
    }
  }
  const daily = await query(`SELECT humanId AS u, CAST("date" AS VARCHAR) AS d, steps, distance, calories, id FROM ${src('daily_summaries')}`);
  const users = new Set(keys.map(humanId));
  t.is(daily.length, users.size * WINDOWS.reduce((a, [s, u]) => a + (Date.parse(u) - Date.parse(s)) / 86_400_000 + 1, 0), 'one row per user and local date');
  for (const r of daily) {
    const want = roll.get(`${String(r.u)}|${String(r.d)}`);
    t.is(r.id, `google-health:${String(r.u)}:${String(r.d)}`);
    if (want === undefined) t.like(r, { steps: null, distance: null, calories: null }, 'a day without data has nulls');
    else t.like(r, { steps: String(want.steps), distance: want.mm / 1000, calories: want.kcal / 10_000 });
  }

  // Secrets: not in the logs, the run summaries or any output file.
  const secrets = [...fixtureSecrets(api), ...gh.issuedAccess.keys(), ...gh.issuedRefresh.keys(), gh.clientSecret];
  t.deepEqual(await leakedSecrets(secrets, lines, [out]), []);
});
