// The fixture API over real loopback HTTP with plain fetch. Expected values come from the raw
// Fitabase CSV text (the full file when ../shared/data is present, else the byte-for-byte
// excerpt committed in fixtures/data), from the recorded Human API cassette, and from arithmetic.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import {
  SAMPLE_USER_ID,
  fixtureEnv,
  fixtureUsers,
  generateHumanApiActivities,
  startFixtureApi,
  type FixtureApi,
  type FaultKind,
} from '../fixtures/server.js';

const SHARED = new URL('../../shared/data/fitabase-2016-04-12/', import.meta.url);
const EXCERPT = new URL('../fixtures/data/fitabase/excerpt/', import.meta.url);
const csvDir = existsSync(new URL('minuteStepsWide_merged.csv', SHARED)) ? SHARED : EXCERPT;

/** `4/13/2016 1:00:00 PM` → ['2016-04-13', 13] */
function fitabaseTime(text: string): [string, number] {
  const m = /^(\d+)\/(\d+)\/(\d{4}) (\d+):00:00 (AM|PM)$/.exec(text);
  if (!m) throw new Error(`bad time ${text}`);
  const hour = (Number(m[4]) % 12) + (m[5] === 'PM' ? 12 : 0);
  return [`${m[3]}-${m[1]!.padStart(2, '0')}-${m[2]!.padStart(2, '0')}`, hour];
}

/** user|date → hour → 60 values, read straight from a wide CSV. */
function readWide(name: string): Map<string, Map<number, number[]>> {
  const out = new Map<string, Map<number, number[]>>();
  const lines = readFileSync(new URL(name, csvDir), 'utf8').split('\r\n').slice(1).filter(Boolean);
  for (const line of lines) {
    const [id, time, ...values] = line.split(',');
    const [date, hour] = fitabaseTime(time!);
    const key = `${id}|${date}`;
    const hours = out.get(key) ?? new Map<number, number[]>();
    hours.set(hour, values.map(Number));
    out.set(key, hours);
  }
  return out;
}

function readHourly(name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(new URL(name, csvDir), 'utf8').split('\r\n').slice(1).filter(Boolean)) {
    const [id, time, value] = line.split(',');
    const [date, hour] = fitabaseTime(time!);
    out.set(`${id}|${date}|${hour}`, Number(value));
  }
  return out;
}

const stepsCsv = readWide('minuteStepsWide_merged.csv');
const intensityCsv = readWide('minuteIntensitiesWide_merged.csv');
const caloriesCsv = readHourly('hourlyCalories_merged.csv');

/** The user-days to check: all excerpt days, or with the full CSV two users' months and the shortest day. */
function daysToCheck(): string[] {
  const keys = [...stepsCsv.keys()].sort();
  if (csvDir === EXCERPT) return keys;
  const users = [...new Set(keys.map((k) => k.split('|')[0]!))].slice(0, 2);
  const shortest = keys.reduce((a, k) => (stepsCsv.get(k)!.size < stepsCsv.get(a)!.size ? k : a));
  return [...new Set([...keys.filter((k) => users.includes(k.split('|')[0]!)), shortest])];
}

function bearer(token: string, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${token}`, ...extra };
}

function tokenOf(api: FixtureApi, userId: string): string {
  return fixtureUsers(api, [userId])[0]!.accessToken;
}

interface Point {
  time: string;
  value: number;
  level?: number;
  mets?: number;
}

async function intraday(api: FixtureApi, userId: string, resource: string, date: string, detail: string, headers: Record<string, string> = {}): Promise<{ total: string; dataset: Point[]; interval: number }> {
  const res = await fetch(`${api.url}/1/user/${userId}/activities/${resource}/date/${date}/1d/${detail}.json`, { headers: bearer(tokenOf(api, userId), headers) });
  if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`);
  const body = (await res.json()) as Record<string, unknown>;
  const summary = body[`activities-${resource}`] as { value: string }[];
  const series = body[`activities-${resource}-intraday`] as { dataset: Point[]; datasetInterval: number; datasetType: string };
  return { total: summary[0]!.value, dataset: series.dataset, interval: series.datasetInterval };
}

const hhmm = (hour: number, minute: number): string => `${String(hour).padStart(2, '0')}:${String(minute).padStart(2, '0')}:00`;

let shared: FixtureApi;
test.before(async () => {
  // The checks below make more than 150 requests per user; the rate-limit test has its own server.
  shared = await startFixtureApi({ fitbit: { rateLimit: 100_000 } });
});
test.after.always(async () => {
  await shared?.close();
});

test('profile: derived Fitabase profile in metric and en_US units, rate-limit headers present', async (t) => {
  const userId = [...stepsCsv.keys()][0]!.split('|')[0]!;
  const get = async (lang?: string): Promise<{ res: Response; user: Record<string, unknown> }> => {
    const res = await fetch(`${shared.url}/1/user/-/profile.json`, { headers: bearer(tokenOf(shared, userId), lang ? { 'accept-language': lang } : {}) });
    return { res, user: ((await res.json()) as { user: Record<string, unknown> }).user };
  };
  const metric = await get();
  t.is(metric.res.status, 200);
  t.is(metric.user.timezone, 'America/Los_Angeles');
  t.is(metric.user.encodedId, userId);
  for (const h of ['fitbit-rate-limit-limit', 'fitbit-rate-limit-remaining', 'fitbit-rate-limit-reset']) {
    t.regex(metric.res.headers.get(h) ?? '', /^\d+$/, h);
  }
  // offsetFromUTCMillis is the zone's offset now, worked out here with Intl.
  const name = new Intl.DateTimeFormat('en-US', { timeZone: 'America/Los_Angeles', timeZoneName: 'longOffset' }).format(new Date());
  const m = /GMT([+-])(\d{2}):(\d{2})/.exec(name)!;
  t.is(metric.user.offsetFromUTCMillis, (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * 60_000);
  const height = metric.user.height as number;
  const walk = metric.user.strideLengthWalking as number;
  t.true(height > 120 && height < 220, `height ${height}`);
  t.true(walk > 40 && walk < 110, `stride ${walk}`);
  const us = await get('en_US');
  t.true(Math.abs((us.user.height as number) - height / 2.54) <= 0.05);
  t.true(Math.abs((us.user.strideLengthWalking as number) - walk / 2.54) <= 0.05);
  t.true(Math.abs((us.user.weight as number) - (metric.user.weight as number) / 0.45359237) <= 0.05);
});

test('profile of the samples user is the real file byte for byte (UTF-8 BOM kept)', async (t) => {
  const res = await fetch(`${shared.url}/1/user/-/profile.json`, { headers: bearer(tokenOf(shared, SAMPLE_USER_ID)) });
  const bytes = Buffer.from(await res.arrayBuffer());
  t.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  const original = new URL('../../shared/data/fitbit-api-samples/UserProfile.json', import.meta.url);
  if (existsSync(original)) t.true(bytes.equals(readFileSync(original)));
  t.is((JSON.parse(bytes.toString('utf8').slice(1)) as { user: { timezone: string } }).user.timezone, 'Europe/London');
});

test('intraday steps: 1min points equal the CSV minutes; 1min, 5min and 15min sums equal the CSV total', async (t) => {
  const days = daysToCheck();
  t.true(days.length >= 3);
  for (const key of days) {
    const [userId, date] = key.split('|') as [string, string];
    const hours = stepsCsv.get(key)!;
    const expected = new Map<string, number>();
    for (const [hour, values] of hours) values.forEach((v, minute) => expected.set(hhmm(hour, minute), v));
    const csvTotal = [...expected.values()].reduce((a, b) => a + b, 0);

    const one = await intraday(shared, userId, 'steps', date, '1min');
    t.is(one.interval, 1);
    t.is(one.dataset.length, hours.size * 60, `${key}: only minutes of hours present in the CSV`);
    for (const p of one.dataset) t.is<number | undefined, number | undefined>(p.value, expected.get(p.time), `${key} ${p.time}`);
    t.is(one.total, String(csvTotal), key);
    for (const detail of ['5min', '15min']) {
      const r = await intraday(shared, userId, 'steps', date, detail);
      t.is(r.dataset.length, (hours.size * 60) / r.interval, `${key} ${detail}`);
      t.is(r.dataset.reduce((a, p) => a + p.value, 0), csvTotal, `${key} ${detail}`);
    }
  }
  // A day without rows has no data.
  const userId = days[0]!.split('|')[0]!;
  const none = await intraday(shared, userId, 'steps', '2016-01-01', '1min');
  t.deepEqual(none.dataset, []);
  t.is(none.total, '0');
});

test('intraday calories: minutes of each hour add up to the hourly CSV; level is the minute intensity', async (t) => {
  let hoursChecked = 0;
  for (const key of daysToCheck()) {
    const [userId, date] = key.split('|') as [string, string];
    const { dataset } = await intraday(shared, userId, 'calories', date, '1min');
    const byTime = new Map(dataset.map((p) => [p.time, p]));
    for (const [hour, levels] of intensityCsv.get(key)!) {
      levels.forEach((level, minute) => t.is(byTime.get(hhmm(hour, minute))?.level, level));
      const kcal = caloriesCsv.get(`${key}|${hour}`);
      if (kcal === undefined) continue;
      let sum = 0;
      for (let minute = 0; minute < 60; minute++) sum += byTime.get(hhmm(hour, minute))!.value;
      t.true(Math.abs(sum - kcal) < 1e-6, `${key} ${hour}: ${sum} vs ${kcal}`);
      hoursChecked++;
    }
    const q = await intraday(shared, userId, 'calories', date, '15min');
    const sum1 = dataset.reduce((a, p) => a + p.value, 0);
    t.true(Math.abs(q.dataset.reduce((a, p) => a + p.value, 0) - sum1) < 1e-6);
  }
  t.true(hoursChecked > 20);
});

test('intraday distance is steps × the profile stride; en_US answers in miles', async (t) => {
  const key = daysToCheck()[0]!;
  const [userId, date] = key.split('|') as [string, string];
  const profile = ((await (await fetch(`${shared.url}/1/user/-/profile.json`, { headers: bearer(tokenOf(shared, userId)) })).json()) as { user: Record<string, number> }).user;
  const km = await intraday(shared, userId, 'distance', date, '1min');
  const mi = await intraday(shared, userId, 'distance', date, '1min', { 'accept-language': 'en_US' });
  const steps = stepsCsv.get(key)!;
  const levels = intensityCsv.get(key)!;
  let expectedKm = 0;
  km.dataset.forEach((p, i) => {
    const hour = Number(p.time.slice(0, 2));
    const minute = Number(p.time.slice(3, 5));
    const stride = levels.get(hour)![minute] === 3 ? profile.strideLengthRunning! : profile.strideLengthWalking!;
    const want = (steps.get(hour)![minute]! * stride) / 100_000;
    expectedKm += want;
    t.true(Math.abs(p.value - want) < 1e-9, `${p.time}`);
    t.true(Math.abs(mi.dataset[i]!.value - want / 1.609344) < 1e-6);
  });
  t.true(Math.abs(Number(km.total) - expectedKm) < 1e-6);
});

test('intraday: time window, validation errors, and the real steps sample of the samples user', async (t) => {
  const key = daysToCheck()[0]!;
  const [userId, date] = key.split('|') as [string, string];
  const token = tokenOf(shared, userId);
  const res = await fetch(`${shared.url}/1/user/-/activities/steps/date/${date}/1d/1min/time/08:00/08:09.json`, { headers: bearer(token) });
  const body = (await res.json()) as { 'activities-steps-intraday': { dataset: Point[] } };
  t.deepEqual(body['activities-steps-intraday'].dataset.map((p) => p.value), stepsCsv.get(key)!.get(8)!.slice(0, 10));
  for (const path of [`steps/date/${date}/1d/2min.json`, `heart/date/${date}/1d/1min.json`, `steps/date/2016-13-01/1d/1min.json`]) {
    const r = await fetch(`${shared.url}/1/user/-/activities/${path}`, { headers: bearer(token) });
    t.is(r.status, 400, path);
    t.is(((await r.json()) as { success: boolean }).success, false);
  }
  const sample = await fetch(`${shared.url}/1/user/-/activities/steps/date/2016-03-08/1d/1min.json`, { headers: bearer(tokenOf(shared, SAMPLE_USER_ID)) });
  const raw = Buffer.from(await sample.arrayBuffer());
  t.deepEqual([...raw.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  t.is((JSON.parse(raw.toString('utf8').slice(1)) as { 'activities-steps-intraday': { dataset: unknown[] } })['activities-steps-intraday'].dataset.length, 1084);
});

test('activity list: next is followed to "", no duplicate logIds, a logId above 2^53 survives in the raw text', async (t) => {
  const userId = daysToCheck()[0]!.split('|')[0]!;
  const token = tokenOf(shared, userId);
  const walk = async (first: string): Promise<{ ids: bigint[]; starts: string[]; pages: number }> => {
    const ids: bigint[] = [];
    const starts: string[] = [];
    let url = first;
    let pages = 0;
    while (url !== '') {
      t.true(url.startsWith(`${shared.url}/1/user/`), url);
      const res = await fetch(url, { headers: bearer(token) });
      t.is(res.status, 200);
      const text = await res.text();
      // logIds read from the text: JSON.parse would round those above 2^53.
      ids.push(...[...text.matchAll(/"logId":(\d+)/g)].map((m) => BigInt(m[1]!)));
      const body = JSON.parse(text) as { activities: { startTime: string }[]; pagination: { next: string; previous: string } };
      starts.push(...body.activities.map((a) => a.startTime));
      t.is(body.pagination.previous === '', pages === 0);
      url = body.pagination.next;
      pages++;
      if (pages > 100) throw new Error('pagination does not end');
    }
    return { ids, starts, pages };
  };
  const asc = await walk(`${shared.url}/1/user/-/activities/list.json?afterDate=2016-01-01&sort=asc&limit=7&offset=0`);
  t.true(asc.pages > 1);
  t.is(new Set(asc.ids).size, asc.ids.length);
  t.deepEqual([...asc.starts].sort(), asc.starts);
  const desc = await walk(`${shared.url}/1/user/${userId}/activities/list.json?beforeDate=2017-01-01T00:00:00&sort=desc&limit=100&offset=0`);
  t.deepEqual([...desc.ids].sort((a, b) => (a < b ? -1 : 1)), [...asc.ids].sort((a, b) => (a < b ? -1 : 1)));

  const big = [...shared.fitbit.userIds()].flatMap((id) => shared.fitbit.user(id).activities.map((a) => a.logId)).find((id) => id > 2n ** 53n);
  t.truthy(big);
  const owner = shared.fitbit.userIds().find((id) => shared.fitbit.user(id).activities.some((a) => a.logId === big))!;
  const text = await (await fetch(`${shared.url}/1/user/-/activities/list.json?afterDate=2016-01-01&sort=asc&limit=100&offset=0`, { headers: bearer(tokenOf(shared, owner)) })).text();
  t.true(text.includes(`"logId":${big!.toString()}`));
  t.not(BigInt(Number(big)), big, 'the id is not representable as a JS number');

  for (const q of ['afterDate=2016-01-01&beforeDate=2016-02-01&sort=asc&limit=10&offset=0', 'afterDate=2016-01-01&sort=asc&limit=101&offset=0', 'afterDate=2016-01-01&sort=desc&limit=10&offset=0', 'afterDate=01-01-2016&sort=asc&limit=10&offset=0']) {
    t.is((await fetch(`${shared.url}/1/user/-/activities/list.json?${q}`, { headers: bearer(token) })).status, 400, q);
  }
});

test('activity list: a generated activity matches the intraday minutes it covers; en_US distance in miles', async (t) => {
  const key = daysToCheck()[0]!;
  const userId = key.split('|')[0]!;
  const token = tokenOf(shared, userId);
  const list = async (lang: string): Promise<Record<string, unknown>[]> =>
    ((await (await fetch(`${shared.url}/1/user/-/activities/list.json?afterDate=2016-04-01&sort=asc&limit=100&offset=0`, { headers: bearer(token, { 'accept-language': lang }) })).json()) as { activities: Record<string, unknown>[] }).activities;
  const metric = await list('de_DE');
  const us = await list('en_US');
  const a = metric.find((x) => stepsCsv.has(`${userId}|${String(x.startTime).slice(0, 10)}`) && Number(String(x.startTime).slice(11, 13)) < 23);
  t.truthy(a, 'an activity on a day of the CSV');
  const date = String(a!.startTime).slice(0, 10);
  const startHour = Number(String(a!.startTime).slice(11, 13));
  const startMinute = Number(String(a!.startTime).slice(14, 16));
  const minutes = Number(a!.duration) / 60_000;
  t.true(minutes >= 10);
  let steps = 0;
  for (let k = 0; k < minutes; k++) {
    const m = startHour * 60 + startMinute + k;
    if (m >= 1440) break;
    steps += stepsCsv.get(`${userId}|${date}`)!.get(Math.floor(m / 60))![m % 60]!;
    t.true(intensityCsv.get(`${userId}|${date}`)!.get(Math.floor(m / 60))![m % 60]! >= 2, 'every minute at intensity >= 2');
  }
  if (startHour * 60 + startMinute + minutes <= 1440) t.is(a!.steps, steps);
  t.is(a!.logType, 'auto_detected');
  t.regex(String(a!.startTime), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00\.000-07:00$/);
  t.true(Date.parse(String(a!.lastModified)) > Date.parse(String(a!.startTime)) + Number(a!.duration));
  const same = us.find((x) => x.startTime === a!.startTime)!;
  t.is(same.distanceUnit, 'Mile');
  t.true(Math.abs(Number(same.distance) - Number(a!.distance) / 1.609344) < 1e-6);
});

test('rate limit: headers on every /1/ response, 429 at the limit, reset at the top of the window', async (t) => {
  let now = 1_800_000_000_100; // 100 ms into a 2 s window
  const api = await startFixtureApi({ now: () => now, fitbit: { rateLimit: 5, rateWindowMs: 2_000, users: [daysToCheck()[0]!.split('|')[0]!] } });
  t.teardown(() => api.close());
  const [a] = fixtureUsers(api);
  const get = (token: string): Promise<Response> => fetch(`${api.url}/1/user/-/profile.json`, { headers: bearer(token) });
  for (let i = 1; i <= 5; i++) {
    const res = await get(a!.accessToken);
    t.is(res.status, 200);
    t.is(res.headers.get('fitbit-rate-limit-limit'), '5');
    t.is(res.headers.get('fitbit-rate-limit-remaining'), String(5 - i));
    t.is(res.headers.get('fitbit-rate-limit-reset'), '2');
  }
  const over = await get(a!.accessToken);
  t.is(over.status, 429);
  t.is(over.headers.get('fitbit-rate-limit-remaining'), '0');
  t.deepEqual(await over.json(), { errors: [{ errorType: 'system', fieldName: 'n/a', message: 'Too Many Requests' }], success: false });
  // Another user has a quota of their own; a bad token still gets the headers.
  const b = fixtureUsers(api, [SAMPLE_USER_ID])[0]!;
  t.is((await get(b.accessToken)).headers.get('fitbit-rate-limit-remaining'), '4');
  const bad = await get('nope');
  t.is(bad.status, 401);
  t.truthy(bad.headers.get('fitbit-rate-limit-reset'));
  now += 1_000;
  t.is((await get(a!.accessToken)).headers.get('fitbit-rate-limit-reset'), '1');
  now += 1_000; // the top of the next window
  const again = await get(a!.accessToken);
  t.is(again.status, 200);
  t.is(again.headers.get('fitbit-rate-limit-remaining'), '4');
});

test('auth: missing, unknown, expired and other-user tokens', async (t) => {
  const [a, b] = fixtureUsers(shared);
  const profile = (id: string, headers: Record<string, string>): Promise<Response> => fetch(`${shared.url}/1/user/${id}/profile.json`, { headers });
  const missing = await profile('-', {});
  t.is(missing.status, 401);
  const unknown = await profile('-', bearer('not-a-token'));
  t.is(unknown.status, 401);
  t.is(((await unknown.json()) as { errors: { errorType: string }[] }).errors[0]!.errorType, 'invalid_token');
  t.is((await profile(b!.userId, bearer(a!.accessToken))).status, 403);
  t.is((await profile(a!.userId, bearer(a!.accessToken))).status, 200);
});

test('token refresh: rotation, single-use refresh tokens, forced expiry', async (t) => {
  const api = await startFixtureApi({ fitbit: { users: [daysToCheck()[0]!.split('|')[0]!] } });
  t.teardown(() => api.close());
  const env = fixtureEnv(api);
  const [user] = fixtureUsers(api);
  const basic = 'Basic ' + Buffer.from(`${env.FITBIT_CLIENT_ID}:${env.FITBIT_CLIENT_SECRET}`).toString('base64');
  const refresh = (token: string, auth = basic): Promise<Response> =>
    fetch(`${env.FITBIT_API_URL}/oauth2/token`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }).toString(),
    });
  const profile = (token: string): Promise<Response> => fetch(`${api.url}/1/user/-/profile.json`, { headers: bearer(token) });

  api.faults.expireAccessTokenAfter = 2;
  t.is((await profile(user!.accessToken)).status, 200);
  t.is((await profile(user!.accessToken)).status, 200);
  const expired = await profile(user!.accessToken);
  t.is(expired.status, 401);
  t.is(((await expired.json()) as { errors: { errorType: string }[] }).errors[0]!.errorType, 'expired_token');
  api.faults.expireAccessTokenAfter = null;

  t.is((await refresh(user!.refreshToken, 'Basic ' + Buffer.from('x:y').toString('base64'))).status, 401);
  const res = await refresh(user!.refreshToken);
  t.is(res.status, 200);
  const body = (await res.json()) as Record<string, unknown>;
  t.is(body.token_type, 'Bearer');
  t.is(body.user_id, user!.userId);
  t.is(typeof body.expires_in, 'number');
  t.is(typeof body.scope, 'string');
  t.not(body.refresh_token, user!.refreshToken);
  t.is((await profile(String(body.access_token))).status, 200);
  t.deepEqual(fixtureUsers(api)[0]!.refreshToken, body.refresh_token, 'the store holds the rotated pair');

  const reused = await refresh(user!.refreshToken);
  t.is(reused.status, 400);
  const err = (await reused.json()) as { errors: { errorType: string; message: string }[]; success: boolean };
  t.is(err.errors[0]!.errorType, 'invalid_grant');
  t.regex(err.errors[0]!.message, /^Refresh token invalid/);
  t.false(err.success);
  t.is((await profile(user!.accessToken)).status, 401, 'the replaced access token no longer works');

  // A refresh eaten by a fault does not rotate: the same refresh token works afterwards.
  api.faults.services = ['oauth'];
  api.faults.queue = ['reset'];
  await t.throwsAsync(async () => (await refresh(String(body.refresh_token))).text());
  t.is((await refresh(String(body.refresh_token))).status, 200);
});

const APP_AUTH = (api: FixtureApi): Record<string, string> => ({ authorization: 'Basic ' + Buffer.from(`${fixtureEnv(api).HUMANAPI_APP_KEY}:`).toString('base64') });
const batchUrl = (api: FixtureApi, type: string, query: string): string => `${api.url}/v1/apps/${fixtureEnv(api).HUMANAPI_CLIENT_ID}/users/${type}?${query}`;
const humanTime = (ms: number): string => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');

test('Human API: auth, window and limit validation', async (t) => {
  const headers = APP_AUTH(shared);
  t.is((await fetch(batchUrl(shared, 'activities', ''), { headers: { authorization: 'Basic ' + Buffer.from('wrong:').toString('base64') } })).status, 401);
  t.is((await fetch(batchUrl(shared, 'activities', ''), {})).status, 401);
  const start = Date.UTC(2015, 6, 1);
  t.is((await fetch(batchUrl(shared, 'activities', `updated_since=${humanTime(start)}&updated_before=${humanTime(start + 31 * 86_400_000 + 1000)}`), { headers })).status, 400);
  t.is((await fetch(batchUrl(shared, 'activities', `updated_since=${humanTime(start)}&updated_before=${humanTime(start + 31 * 86_400_000)}`), { headers })).status, 200);
  t.is((await fetch(batchUrl(shared, 'activities', `updated_since=2015-07-01&updated_before=20150702T000000Z`), { headers })).status, 400);
  t.is((await fetch(batchUrl(shared, 'activities', `updated_since=${humanTime(start)}&updated_before=${humanTime(start + 86_400_000)}&limit=501`), { headers })).status, 400);
  t.is((await fetch(batchUrl(shared, 'no_such_type', ''), { headers })).status, 404);
  // Without updated_since: the last 24 hours, where the 2015 recordings are not.
  const recent = await fetch(batchUrl(shared, 'activities', ''), { headers });
  t.is(recent.status, 200);
  t.deepEqual(await recent.json(), []);
  t.is(recent.headers.get('x-total-count'), '0');
});

test('Human API: 31-day windows paged by Link rel="next" add up to the 234 recorded activities', async (t) => {
  const headers = APP_AUTH(shared);
  // The cassette says X-Total-Count: 234 for the user's activities, recorded 2015-09-01.
  const cassette = new URL('../../shared/data/humanapi-samples/recorded-pagination/get_activities_fetch_all.yml', import.meta.url);
  if (existsSync(cassette)) t.regex(readFileSync(cassette, 'utf8'), /X-Total-Count:\n\s+- '234'/);
  const ids = new Set<string>();
  let sawMiddleLink = false;
  const end = Date.UTC(2015, 8, 2);
  for (let since = Date.UTC(2013, 0, 1); since < end; since += 31 * 86_400_000) {
    let url: string | null = batchUrl(shared, 'activities', `updated_since=${humanTime(since)}&updated_before=${humanTime(since + 31 * 86_400_000)}&limit=20`);
    let windowTotal: number | null = null;
    let windowCount = 0;
    while (url) {
      const res: Response = await fetch(url, { headers });
      t.is(res.status, 200);
      const page = (await res.json()) as { id: string; updatedAt: string }[];
      windowTotal ??= Number(res.headers.get('x-total-count'));
      t.is(Number(res.headers.get('x-total-count')), windowTotal);
      for (const r of page) {
        t.true(Date.parse(r.updatedAt) >= since && Date.parse(r.updatedAt) < since + 31 * 86_400_000);
        ids.add(r.id);
      }
      windowCount += page.length;
      const link = res.headers.get('link') ?? '';
      if (/rel="next".*rel="prev".*rel="last".*rel="first"/.test(link)) sawMiddleLink = true;
      url = /<([^>]+)>; rel="next"/.exec(link)?.[1] ?? null;
    }
    t.is<number | null, number | null>(windowCount, windowTotal);
  }
  t.is(ids.size, 234);
  t.true(sawMiddleLink, 'a middle page carries next, prev, last, first as recorded');
});

test('Human API: readings, replaced records and a generated multi-user set', async (t) => {
  const api = await startFixtureApi({ fitbit: { users: [], sampleUser: false } });
  t.teardown(() => api.close());
  const headers = APP_AUTH(api);
  const hr = (await (await fetch(batchUrl(api, 'heart_rates', 'updated_since=20150301T000000Z&updated_before=20150331T000000Z&limit=500'), { headers })).json()) as { unit: string }[];
  t.true(hr.length > 0 && hr.every((r) => r.unit === 'bpm'));
  api.humanapi.setRecords('weights', [{ id: 'w1', humanId: 'h1', value: 70, unit: 'kg', updatedAt: '2016-01-02T00:00:00.000Z' }]);
  const w = await fetch(batchUrl(api, 'weights', 'updated_since=20160101T000000Z&updated_before=20160103T000000Z'), { headers });
  t.deepEqual(((await w.json()) as { id: string }[]).map((r) => r.id), ['w1']);

  const generated = generateHumanApiActivities({ users: 3, days: 96, lastDay: '2016-05-12' });
  api.humanapi.setRecords('activities', generated);
  const seen = new Map<string, { humanId: string; createdAt: string; updatedAt: string }>();
  for (let since = Date.UTC(2016, 0, 1); since < Date.UTC(2016, 7, 1); since += 31 * 86_400_000) {
    let url: string | null = batchUrl(api, 'activities', `updated_since=${humanTime(since)}&updated_before=${humanTime(since + 31 * 86_400_000)}&limit=500`);
    while (url) {
      const res: Response = await fetch(url, { headers });
      for (const r of (await res.json()) as { id: string; humanId: string; createdAt: string; updatedAt: string }[]) {
        t.false(seen.has(r.id), 'each record in exactly one window');
        seen.set(r.id, r);
      }
      url = /<([^>]+)>; rel="next"/.exec(res.headers.get('link') ?? '')?.[1] ?? null;
    }
  }
  t.is(seen.size, generated.length);
  t.is(new Set([...seen.values()].map((r) => r.humanId)).size, 3);
  t.true([...seen.values()].some((r) => Date.parse(r.updatedAt) - Date.parse(r.createdAt) > 86_400_000), 'some records were updated later');
});

test('stores are mutable between runs: a new day and a modified activity are served', async (t) => {
  const userId = daysToCheck()[0]!.split('|')[0]!;
  const api = await startFixtureApi({ fitbit: { users: [userId] } });
  t.teardown(() => api.close());
  const steps = Array.from({ length: 1440 }, (_, m) => (m >= 600 && m < 660 ? 100 : 0));
  api.fitbit.setDay(userId, '2016-06-01', { hours: [10, 11], steps });
  const day = await intraday(api, userId, 'steps', '2016-06-01', '1min');
  t.is(day.dataset.length, 120);
  t.is(day.total, '6000');

  const list = async (): Promise<{ logId: number; lastModified: string }[]> =>
    ((await (await fetch(`${api.url}/1/user/-/activities/list.json?afterDate=2016-04-01&sort=asc&limit=100&offset=0`, { headers: bearer(tokenOf(api, userId)) })).json()) as { activities: { logId: number; lastModified: string }[] }).activities;
  const before = await list();
  const stored = api.fitbit.user(userId).activities[0]!;
  api.fitbit.putActivity(userId, { ...stored, lastModified: '2016-06-02T00:00:00.000Z', calories: 1 });
  api.fitbit.putActivity(userId, { ...stored, logId: 123n, startTime: '2016-06-01T10:00:00.000-07:00', lastModified: '2016-06-01T11:30:00.000Z' });
  const after = await list();
  t.is(after.length, before.length + 1);
  t.true(after.some((a) => a.lastModified === '2016-06-02T00:00:00.000Z'));
  t.true(after.some((a) => a.logId === 123));
});

test('faults: each kind, the gone switch and latency; data after faults is unchanged', async (t) => {
  const userId = daysToCheck()[0]!.split('|')[0]!;
  const api = await startFixtureApi({ fitbit: { users: [userId] }, faults: { slowMs: 300 } });
  t.teardown(() => api.close());
  const token = tokenOf(api, userId);
  const url = `${api.url}/1/user/-/activities/list.json?afterDate=2016-04-01&sort=asc&limit=20&offset=0`;
  const clean = await (await fetch(url, { headers: bearer(token) })).text();
  const once = async (kind: FaultKind): Promise<Response> => {
    api.faults.queue = [kind];
    return fetch(url, { headers: bearer(token) });
  };

  const r429 = await once('429');
  t.is(r429.status, 429);
  t.true(Number(r429.headers.get('fitbit-rate-limit-remaining')) > 0, 'Fitbit counters are async');
  t.is((await once('500')).status, 500);
  t.is((await once('503')).status, 503);
  await t.throwsAsync(async () => (await once('reset')).text());
  const truncated = await once('truncated');
  t.is(truncated.status, 200);
  const cut = await truncated.text();
  t.true(cut.length > 0 && clean.startsWith(cut) && cut.length < clean.length);
  t.throws(() => JSON.parse(cut));
  const invalid = await once('invalid-json');
  t.is(invalid.status, 200);
  const invalidText = await invalid.text();
  t.throws(() => JSON.parse(invalidText) as unknown);
  const t0 = performance.now();
  const slow = await once('slow');
  t.is(await slow.text(), clean);
  t.true(performance.now() - t0 >= 290);
  t.is(await (await fetch(url, { headers: bearer(token) })).text(), clean, 'faults did not change the data');

  const faults = api.log.map((e) => e.fault).filter(Boolean);
  t.deepEqual(faults, ['429', '500', '503', 'reset', 'truncated', 'invalid-json', 'slow']);

  api.faults.gone = true;
  const gone = await fetch(url, { headers: bearer(token) });
  t.is(gone.status, 410);
  t.regex(await gone.text(), /turned off/);
  api.faults.gone = false;

  api.faults.latencyMs = 150;
  const t1 = performance.now();
  await (await fetch(url, { headers: bearer(token) })).text();
  t.true(performance.now() - t1 >= 140);
  api.faults.latencyMs = 0;

  // Human API faults too.
  api.faults.queue = ['503'];
  t.is((await fetch(batchUrl(api, 'activities', ''), { headers: APP_AUTH(api) })).status, 503);
});

test('faults: a random mix is reproducible from its seed', async (t) => {
  const userId = daysToCheck()[0]!.split('|')[0]!;
  const run = async (): Promise<(string | undefined)[]> => {
    const api = await startFixtureApi({ fitbit: { users: [userId] }, faults: { ratio: 0.5, seed: 'repeat', mix: { '500': 1, '503': 1, '429': 1 } } });
    try {
      for (let i = 0; i < 30; i++) await (await fetch(`${api.url}/1/user/-/profile.json`, { headers: bearer(tokenOf(api, userId)) })).arrayBuffer();
      return api.log.map((e) => e.fault);
    } finally {
      await api.close();
    }
  };
  const first = await run();
  t.deepEqual(await run(), first);
  const kinds = new Set(first.filter(Boolean));
  t.true(kinds.size >= 2, `several kinds: ${[...kinds].join(',')}`);
  t.true(first.filter(Boolean).length >= 5 && first.filter(Boolean).length <= 25);
});
