// The Fitbit source meeting real failure modes, injected by the fixture API over loopback:
// 429 bursts while Remaining > 0, 500/503, a connection reset mid-body, truncated and non-JSON
// bodies, slow answers (timeouts), expiring tokens with rotation (and faults on the token
// endpoint), refresh races, an invalid token, retries past their bound, and 410 Gone.
import test from 'ava';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { fixtureEnv } from '../fixtures/server.js';
import { EtlError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { main } from '../pipelines/cli.js';
import type { RunConfig } from '../pipelines/config.js';
import { parseRunArgs } from '../pipelines/registry.js';
import { failureLine, runPipelines } from '../pipelines/run.js';
import { FitbitShared } from '../sources/fitbit/client.js';
import { fetchIntradayDay, fetchProfile, GOOGLE_HEALTH_SUCCESSOR } from '../sources/fitbit/index.js';
import { UsersFile } from '../sources/fitbit/users.js';
import { FAST_RATE, FAST_RETRY, fitbitRequests, rig } from './fitbit-helpers.js';

const A = '1503960366';
const B = '1624580081';
const C = '1644430081';
const D = '1844505072';

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  const reader = await con.runAndReadAll(sql);
  return reader.getRowObjectsJson() as Record<string, unknown>[];
}

/** Statuses of the token POSTs; a fault that ate the answer shows as its kind. */
function tokenPosts(api: { log: Array<{ service: string; status: number; fault?: string }> }): Array<number | string> {
  return api.log.filter((e) => e.service === 'oauth').map((e) => e.fault ?? e.status);
}

test('429 burst while Remaining > 0: each one waits for the window reset, then the request goes through', async (t) => {
  const r = await rig(t, { fitbit: { users: [A], rateWindowMs: 1_000 } });
  r.api.faults.queue = ['429', '429'];
  const profile = await fetchProfile(r.session(A));
  t.is(profile.timezone, 'America/Los_Angeles');
  const requests = fitbitRequests(r.api);
  t.deepEqual(requests.map((e) => e.fault ?? e.status), ['429', '429', 200]);
  // Every retry after a 429 waited for a later window of the server's clock.
  const windows = requests.map((e) => Math.floor(e.at / 1_000));
  t.true(windows[1]! > windows[0]! && windows[2]! > windows[1]!, windows.join(','));
  t.is(r.stats.rateLimited, 2);
});

test('500, 503, reset mid-body, truncated, HTML as JSON and a slow answer are retried; the data equals a clean fetch', async (t) => {
  const r = await rig(t, { fitbit: { users: [A] }, faults: { slowMs: 700 } });
  const session = r.session(A);
  r.api.faults.queue = ['500', '503', 'reset', 'truncated', 'invalid-json', 'slow'];
  const faulted = await fetchIntradayDay(session, { resource: 'calories', date: '2016-04-15', detail: '1min' });
  t.deepEqual(fitbitRequests(r.api).map((e) => e.fault ?? 'ok'), ['500', '503', 'reset', 'truncated', 'invalid-json', 'slow', 'ok']);
  t.is(r.stats.retries, 6);
  const clean = await fetchIntradayDay(session, { resource: 'calories', date: '2016-04-15', detail: '1min' });
  t.deepEqual(faulted, clean);
  t.true(clean.dataset.length > 0);
});

test('requests of one user never overlap, even from two sessions at once; other users are not held up', async (t) => {
  const r = await rig(t, { fitbit: { users: [A, B] }, faults: { latencyMs: 150 } });
  const first = r.session(A);
  const second = r.session(A);
  const other = r.session(B);
  await Promise.all([fetchProfile(first), fetchProfile(second), fetchProfile(first), fetchProfile(other)]);
  // From the order of events at the server, not from timing.
  const ofA = fitbitRequests(r.api).filter((e) => e.userId === A).sort((a, b) => a.started - b.started);
  const ofB = fitbitRequests(r.api).filter((e) => e.userId === B);
  t.is(ofA.length, 3);
  t.is(ofB.length, 1);
  // Each of A's requests arrived only after the previous one was answered.
  for (let i = 1; i < ofA.length; i++) t.true(ofA[i]!.started > ofA[i - 1]!.finished, `A's request ${i} overlaps the one before`);
  t.true(ofB[0]!.started < ofA[0]!.finished, "B's request did not queue behind A's");
});

test('two sessions racing on one expired token refresh once (one users file, and two runs with two files objects)', async (t) => {
  const r = await rig(t, { fitbit: { users: [A, B] } });
  // One UsersFile, two sessions that do not share a request queue.
  r.api.fitbit.expireAccessToken(A);
  const one = r.session(A, { shared: new FitbitShared() });
  const two = r.session(A, { shared: new FitbitShared() });
  await Promise.all([fetchProfile(one), fetchProfile(two), fetchProfile(one)]);
  t.deepEqual(tokenPosts(r.api), [200]);

  // Two runs: two UsersFile objects over the same file.
  r.api.fitbit.expireAccessToken(B);
  const runA = await UsersFile.load(r.usersPath);
  const runB = await UsersFile.load(r.usersPath);
  const inA = r.session(B, { shared: new FitbitShared() }, runA);
  const inB = r.session(B, { shared: new FitbitShared() }, runB);
  await Promise.all([fetchProfile(inA), fetchProfile(inB)]);
  t.deepEqual(tokenPosts(r.api), [200, 200], 'one refresh per user; no invalid_grant');
  const onDisk = JSON.parse(await fs.readFile(r.usersPath, 'utf8')) as Array<{ userId: string; accessToken: string; refreshToken: string }>;
  for (const id of [A, B]) {
    const u = r.api.fitbit.user(id);
    t.like(onDisk.find((e) => e.userId === id), { accessToken: u.accessToken, refreshToken: u.refreshToken });
  }
  t.deepEqual(runA.tokens(r.api.fitbit.user(B).humanId), runB.tokens(r.api.fitbit.user(B).humanId));
});

test('expiring tokens rotate during a run, through faults on the token endpoint; the users file ends with the live pairs', async (t) => {
  const r = await rig(t, { fitbit: { users: [A, B, C, D] }, faults: { expireAccessTokenAfter: 2, services: ['oauth'], queue: ['503', 'reset', 'truncated', '429', 'invalid-json'] } });
  const out = path.join(r.dir, 'out');
  const config = parseRunArgs(
    ['fitbit-intraday', '--users', r.usersPath, '--out', out, '--since', '2016-04-20', '--until', '2016-04-22', '--resources', 'steps', '--concurrency', '4'],
    fixtureEnv(r.api),
    r.dir,
  ) as RunConfig;
  const summary = await runPipelines(config, { log: createLogger({ json: true, write: () => {} }), tuning: { retry: FAST_RETRY, fitbitRateLimit: FAST_RATE } });
  t.is(summary.exitCode, 0, failureLine(summary) ?? '');
  const posts = tokenPosts(r.api);
  t.deepEqual(posts.slice(0, 5), ['503', 'reset', 'truncated', '429', 'invalid-json']);
  t.false(posts.includes(400), 'no refresh token was spent twice');
  const rotations = posts.filter((s) => s === 200).length;
  t.true(rotations >= 4, `${rotations} rotations`);
  t.is(summary.http.tokenRefreshes, rotations);
  const onDisk = JSON.parse(await fs.readFile(r.usersPath, 'utf8')) as Array<{ userId: string; accessToken: string; refreshToken: string }>;
  for (const id of [A, B, C, D]) {
    const u = r.api.fitbit.user(id);
    t.like(onDisk.find((e) => e.userId === id), { accessToken: u.accessToken, refreshToken: u.refreshToken });
  }
  // Every minute the fixture holds for those days landed once.
  let expected = 0;
  for (const id of [A, B, C, D]) {
    for (const date of ['2016-04-20', '2016-04-21', '2016-04-22']) expected += (r.api.fitbit.user(id).days.get(date)?.hours.length ?? 0) * 60;
  }
  const [row] = await query(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet('${path.join(out, 'intraday', '**', '*.parquet')}')`);
  t.is(Number(row!.n), expected);
  t.is(Number(row!.ids), expected);
});

test('past the retry bound one user fails with a one-line reason, keeps what it fetched, and the others finish; an invalid token says to re-authorise', async (t) => {
  const r = await rig(t, { fitbit: { users: [A, B, C] } });
  // C's access token is unknown to the server: invalid_token.
  const file = JSON.parse(await fs.readFile(r.usersPath, 'utf8')) as Array<{ userId: string; accessToken: string }>;
  const badToken = 'at_not_issued_by_the_server_0123456789';
  file.find((e) => e.userId === C)!.accessToken = badToken;
  await fs.writeFile(r.usersPath, JSON.stringify(file));
  const humanA = r.api.fitbit.user(A).humanId;
  const out = path.join(r.dir, 'out');
  const config = parseRunArgs(
    ['fitbit-intraday', '--users', r.usersPath, '--out', out, '--since', '2016-04-20', '--until', '2016-04-22', '--resources', 'steps', '--concurrency', '1'],
    fixtureEnv(r.api),
    r.dir,
  ) as RunConfig;
  let armed = false;
  const summary = await runPipelines(config, {
    log: createLogger({ json: true, write: () => {} }),
    tuning: { retry: FAST_RETRY, fitbitRateLimit: FAST_RATE },
    progress: (e) => {
      // A's first day is in: from now on the server fails every answer to A until A gives up.
      if (!armed && e.kind === 'done' && e.user === humanA) {
        armed = true;
        r.api.faults.users = [A];
        r.api.faults.queue = Array(FAST_RETRY.maxAttempts).fill('503');
      }
    },
  });
  t.true(armed);
  t.is(summary.exitCode, 3);
  const failed = summary.pipelines[0]!.failedUsers;
  t.deepEqual(failed.map((f) => f.user).sort(), [humanA, r.api.fitbit.user(C).humanId].sort());
  const reasonA = failed.find((f) => f.user === humanA)!.reason;
  t.regex(reasonA, /gave up after 8 attempts \(last: HTTP 503\)/);
  const reasonC = failed.find((f) => f.user !== humanA)!.reason;
  t.regex(reasonC, /invalid_token.*re-authorise/);
  t.false(reasonC.includes(badToken));
  const line = failureLine(summary)!;
  t.false(line.includes('\n'));
  t.regex(line, /^wearable-etl: partial: 2 user\(s\) failed/);

  const glob = path.join(out, 'intraday', '**', '*.parquet');
  const rows = await query(`SELECT "user", CAST("date" AS VARCHAR) AS d, count(*) AS n FROM read_parquet('${glob}', hive_partitioning=true) GROUP BY ALL ORDER BY ALL`);
  const got = rows.map((x) => `${x.user} ${x.d} ${x.n}`);
  const expect: string[] = [];
  for (const [id, dates] of [[A, ['2016-04-20']], [B, ['2016-04-20', '2016-04-21', '2016-04-22']]] as const) {
    const u = r.api.fitbit.user(id);
    for (const date of dates) expect.push(`${u.humanId} ${date} ${(u.days.get(date)?.hours.length ?? 0) * 60}`);
  }
  t.deepEqual(got, expect, 'A keeps its first day; B is whole; C has nothing');
  const state = JSON.parse(await fs.readFile(path.join(out, '_state', 'fitbit-intraday.json'), 'utf8')) as { users: Record<string, { streams: Record<string, string> }> };
  t.is(state.users[humanA]!.streams.steps, '2016-04-20');
});

test('410 Gone: the run stops with one line naming the Google Health API, no stack, and sends nothing more', async (t) => {
  const r = await rig(t, { fitbit: { users: [A, B, C, D] }, faults: { gone: true } });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await main(
    ['run', 'fitbit-intraday', '--users', r.usersPath, '--out', path.join(r.dir, 'out'), '--since', '2016-04-20', '--until', '2016-04-22', '--concurrency', '2'],
    { env: fixtureEnv(r.api), cwd: r.dir, stdout: (s) => stdout.push(s), stderr: (s) => stderr.push(s) },
  );
  t.is(code, 1);
  const err = stderr.join('');
  // Logs share stderr (JSON lines); the outcome is one line of its own.
  t.is(err.trim().split('\n').filter((l) => l.startsWith('wearable-etl:')).length, 1, err);
  t.true(err.includes(GOOGLE_HEALTH_SUCCESSOR));
  t.regex(err, /Google Health API/);
  t.notRegex(err + stdout.join(''), /\n\s+at /, 'no stack trace');
  const gone = fitbitRequests(r.api).filter((e) => e.status === 410);
  t.true(gone.length >= 1 && gone.length <= 2, `${gone.length} requests after the API was gone`);
  t.is(fitbitRequests(r.api).length, gone.length);
});

test('a 401 other than expired_token is never refreshed; an expired token without client credentials says what is missing', async (t) => {
  const r = await rig(t, { fitbit: { users: [A] } });
  r.api.fitbit.expireAccessToken(A);
  const err = await t.throwsAsync(fetchProfile(r.session(A, { clientSecret: undefined })));
  t.is((err as EtlError).code, 'AUTH_EXPIRED');
  t.regex(err!.message, /FITBIT_CLIENT_SECRET/);
  t.deepEqual(tokenPosts(r.api), []);
});
