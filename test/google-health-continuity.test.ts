// History across the switch: the legacy Fitbit pipeline for days 1–10 and the Google Health one
// for days 8–20 of the same users, into one output, leave one row per minute with exact day
// totals. And a user whose consent was withdrawn fails alone: exit 3 names them, the others land.
import test from 'ava';
import path from 'node:path';
import { fixtureEnv } from '../fixtures/server.js';
import { failureLine } from '../pipelines/run.js';
import { leakedSecrets, fixtureSecrets } from './fitbit-helpers.js';
import { fitabaseDailySteps, ghRig, googleHealthUsers, run, writeJson } from './google-health-helpers.js';
import { query } from './duckdb.js';
import { main } from '../pipelines/cli.js';

const USERS = ['1503960366', '1644430081'];

test('legacy days 1–10 and Google Health days 8–20 of the same users: one row per minute, exact day totals', async (t) => {
  t.timeout(120_000);
  const { api, dir } = await ghRig(t, { fitbit: { users: USERS, sampleUser: false }, googleHealth: { derivedUsers: false } });
  // One users file for both providers; neither names a humanId: Fitbit's defaults to the user id,
  // Google's to the legacy Fitbit id from the identity — the same partitions.
  const fitbitEntries = USERS.map((id) => ({ userId: id, accessToken: api.fitbit.user(id).accessToken, refreshToken: api.fitbit.user(id).refreshToken }));
  const usersPath = await writeJson(path.join(dir, 'users.json'), [...fitbitEntries, ...googleHealthUsers(api)]);
  const out = path.join(dir, 'out');
  const lines: string[] = [];
  const common = ['--users', usersPath, '--out', out, '--resources', 'steps,distance', '--compression', 'none'];
  const legacy = await run(api, dir, ['fitbit-intraday', ...common, '--since', '2016-04-13', '--until', '2016-04-22'], lines, undefined, fixtureEnv(api));
  t.is(legacy.exitCode, 0, failureLine(legacy) ?? '');
  const google = await run(api, dir, ['google-health-intraday', ...common, '--since', '2016-04-20', '--until', '2016-05-02'], lines);
  t.is(google.exitCode, 0, failureLine(google) ?? '');

  const src = `read_parquet('${path.join(out, 'intraday', '**', '*.parquet')}', hive_partitioning = true, hive_types_autocast = false)`;
  const [c] = await query(`SELECT count(*) AS n, count(DISTINCT id) AS ids, count(DISTINCT (humanId, type, "timestamp")) AS minutes,
    count(*) FILTER (WHERE CAST("date" AS VARCHAR) BETWEEN '2016-04-20' AND '2016-04-22' AND source = 'google-health') AS overlapGoogle,
    count(*) FILTER (WHERE CAST("date" AS VARCHAR) BETWEEN '2016-04-20' AND '2016-04-22' AND source = 'fitbit') AS overlapFitbit FROM ${src}`);
  t.is(c!.n, c!.ids, 'one row per id');
  t.is(c!.n, c!.minutes, 'one row per user, type and minute');
  t.true(Number(c!.overlapGoogle) > 0 && Number(c!.overlapFitbit) === 0, 'the overlap holds the newer (Google Health) rows');
  const days = await query(`SELECT "user" AS u, CAST("date" AS VARCHAR) AS d, CAST(sum(value) AS BIGINT) AS steps FROM ${src} WHERE type = 'steps' GROUP BY ALL`);
  const expected: Record<string, number> = {};
  for (const id of USERS) for (const [date, d] of fitabaseDailySteps(id)) if (date >= '2016-04-13' && date <= '2016-05-02') expected[`${id}|${date}`] = d.total;
  t.deepEqual(Object.fromEntries(days.map((r) => [`${String(r.u)}|${String(r.d)}`, Number(r.steps)]).sort()), Object.fromEntries(Object.entries(expected).sort()));
  // Distance continues too: Fitbit's km and Google's mm land as the same metres.
  const [d] = await query(`SELECT count(*) FILTER (WHERE abs(value * 1000 - round(value * 1000)) > 1e-6) AS inexact FROM ${src} WHERE type = 'distance'`);
  t.is(Number(d!.inexact), 0);
});

test('a user whose consent was withdrawn fails alone: exit 3 names them, the others complete, no secret printed', async (t) => {
  t.timeout(60_000);
  const { api, dir } = await ghRig(t, { fitbit: { users: USERS, sampleUser: false }, googleHealth: { derivedUsers: false } });
  api.googleHealth.revoke('1644430081');
  const usersPath = await writeJson(path.join(dir, 'users.json'), googleHealthUsers(api));
  const out = path.join(dir, 'out');
  const stdout: string[] = [];
  const stderr: string[] = [];
  const env = { GOOGLE_HEALTH_API_URL: api.url, GOOGLE_OAUTH_TOKEN_URL: `${api.url}/token`, GOOGLE_CLIENT_ID: api.googleHealth.clientId, GOOGLE_CLIENT_SECRET: api.googleHealth.clientSecret };
  const io = { env, cwd: dir, stdout: (s: string) => stdout.push(s), stderr: (s: string) => stderr.push(s) };
  const common = ['--users', usersPath, '--out', out, '--since', '2016-04-20', '--until', '2016-04-21', '--compression', 'none'];
  const codes = [await main(['run', 'google-health-intraday', ...common], io), await main(['run', 'google-health-daily', ...common], io)];
  const err = stderr.join('');
  t.deepEqual(codes, [3, 3], err);
  t.regex(err, /partial: 1 user\(s\) failed, the others are done — user google-health entry 1 \(/);
  t.regex(err, /invalid_grant.*re-consent/);
  // Per run, the revoked user was asked once for its identity and its refresh token refused: no more.
  const revoked = api.log.filter((e) => e.userId === '1644430081');
  t.true(revoked.length <= 4, `${revoked.length} requests for the revoked user`);
  const src = (dataset: string): string => `read_parquet('${path.join(out, dataset, '**', '*.parquet')}', hive_partitioning = true, hive_types_autocast = false)`;
  for (const dataset of ['intraday', 'daily_summaries']) {
    const rows = await query(`SELECT DISTINCT humanId AS u FROM ${src(dataset)} ORDER BY 1`);
    t.deepEqual(rows.map((r) => r.u), ['1503960366'], dataset);
  }
  const secrets = [...fixtureSecrets(api), ...api.googleHealth.issuedAccess.keys(), ...api.googleHealth.issuedRefresh.keys(), api.googleHealth.clientSecret];
  t.deepEqual(await leakedSecrets(secrets, [stdout.join(''), err], [out]), []);
});

test('--dry-run: requests and the time the limit takes, per user; nothing is sent', async (t) => {
  const { api, dir } = await ghRig(t, { fitbit: { users: USERS, sampleUser: false }, googleHealth: { derivedUsers: false } });
  const entries = googleHealthUsers(api).map((e, i) => (i === 0 ? { ...e, humanId: 'h-0', timezone: 'Europe/Berlin' } : e));
  const usersPath = await writeJson(path.join(dir, 'users.json'), entries);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const env = { GOOGLE_CLIENT_ID: api.googleHealth.clientId, GOOGLE_CLIENT_SECRET: api.googleHealth.clientSecret, GOOGLE_HEALTH_API_URL: api.url };
  const code = await main(['run', 'google-health-intraday', '--dry-run', '--users', usersPath, '--out', path.join(dir, 'out'), '--since', '2016-01-01', '--until', '2016-12-31', '--resources', 'steps,heart-rate'], {
    env, cwd: dir, stdout: (s: string) => stdout.push(s), stderr: (s: string) => stderr.push(s),
  });
  t.is(code, 0, stderr.join(''));
  const text = stdout.join('');
  // 366 days in windows of 7: 53 windows per type; identity (+ settings when the file has no zone).
  t.regex(text, /google-health-intraday: user h-0: 2016-01-01 \.\. 2016-12-31 × steps,heart-rate \(windows of 7 days\), ≥ 107 request\(s\)/);
  t.regex(text, /google-health-intraday: user entry 1: .*≥ 108 request\(s\)/);
  t.regex(text, /2 user\(s\), ≥ 215 request\(s\); rate-limit waits ≈ 0 min \(300 requests\/minute\/user/);
  t.is(api.log.length, 0);
  const bad = await main(['run', 'google-health-intraday', '--users', usersPath, '--resources', 'calories'], { env, cwd: dir, stdout: () => undefined, stderr: (s: string) => stderr.push(s) });
  t.is(bad, 2);
  t.regex(stderr.join(''), /unknown Google Health data type "calories"/);
});
