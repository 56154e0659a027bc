// The humanapi pipeline end to end: the fixture API over loopback HTTP → pipeline → Parquet,
// read back with DuckDB. Expected values come from the records the fixture serves (the recorded
// cassette, a generated multi-user set, hand-written readings) and from date arithmetic; the
// request windows come from the fixture's own request log.
import test, { type ExecutionContext } from 'ava';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  fixtureEnv,
  generateHumanApiActivities,
  parseHumanTime,
  startFixtureApi,
  type FixtureApi,
  type HumanRecord,
  type RequestLogEntry,
} from '../fixtures/server.js';
import { HttpStats } from '../lib/http.js';
import { createLogger, silentLogger, type Logger } from '../lib/log.js';
import { main } from '../pipelines/cli.js';
import type { RunConfig } from '../pipelines/config.js';
import { parseRunArgs } from '../pipelines/registry.js';
import type { ProgressEvent, RunContext } from '../pipelines/context.js';
import { runHumanApi } from '../pipelines/humanapi.js';
import { newRunId } from '../pipelines/run.js';
import { fileStateStore } from '../pipelines/state/store.js';
import { query } from './duckdb.js';

const DAY = 86_400_000;
const FAST_RETRY = { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 5_000 };
const CASSETTE = new URL('../../shared/data/humanapi-samples/recorded-pagination/get_activities_fetch_all.yml', import.meta.url);

// ------------------------------------------------------------------ helpers

async function setup(t: ExecutionContext): Promise<{ api: FixtureApi; out: string }> {
  const api = await startFixtureApi({ fitbit: { users: [], sampleUser: false } });
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-humanapi-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(out, { recursive: true, force: true });
  });
  return { api, out };
}

function context(api: FixtureApi, out: string, args: string[], seenAt: number, extra: { progress?: (e: ProgressEvent) => void; log?: Logger } = {}): RunContext {
  const config = parseRunArgs(['humanapi', '--out', out, ...args], fixtureEnv(api)) as RunConfig;
  return {
    config,
    runId: newRunId(),
    seenAt,
    log: extra.log ?? silentLogger,
    stats: new HttpStats(),
    state: fileStateStore(config.outDir, config.stateFile),
    tuning: { retry: FAST_RETRY },
    ...(extra.progress ? { progress: extra.progress } : {}),
  };
}


const files = (out: string, dataset: string): string => `read_parquet('${path.join(out, dataset, '**', '*.parquet')}', hive_partitioning=true, hive_types_autocast=false)`;

interface SentWindow {
  type: string;
  since: number;
  before: number;
  offset: number;
  limit: number;
}

/** The Human API requests of the log, with their windows. */
function sent(log: readonly RequestLogEntry[]): SentWindow[] {
  return log
    .filter((e) => e.service === 'humanapi')
    .map((e) => {
      const url = new URL(e.path, 'http://x');
      const q = url.searchParams;
      return {
        type: decodeURIComponent(url.pathname.replace(/^\/v1\/apps\/[^/]+\/users\//, '')),
        since: parseHumanTime(q.get('updated_since') ?? '') ?? NaN,
        before: parseHumanTime(q.get('updated_before') ?? '') ?? NaN,
        offset: Number(q.get('offset') ?? 0),
        limit: Number(q.get('limit') ?? NaN),
      };
    });
}

/** Every request carried a window of 1 s .. 31 days and a limit ≤ 500. */
function assertSaneRequests(t: ExecutionContext, log: readonly RequestLogEntry[]): void {
  for (const w of sent(log)) {
    t.true(Number.isFinite(w.since) && Number.isFinite(w.before), 'updated_since and updated_before on every request');
    t.true(w.before > w.since && w.before - w.since <= 31 * DAY, `window of ${(w.before - w.since) / DAY} days`);
    t.true(w.limit >= 1 && w.limit <= 500);
  }
  t.false(log.some((e) => e.service === 'humanapi' && e.status === 400), 'no request was refused as too wide');
}

/** The first page of each window, in order: [type, since, before]. */
function windowsOf(log: readonly RequestLogEntry[]): Array<[string, string, string]> {
  return sent(log)
    .filter((w) => w.offset === 0)
    .map((w) => [w.type, new Date(w.since).toISOString(), new Date(w.before).toISOString()]);
}

const iso = (ms: number): string => new Date(ms).toISOString();
const updated = (r: HumanRecord): number => Date.parse(String(r.updatedAt));

async function state(out: string): Promise<Record<string, string>> {
  const s = JSON.parse(readFileSync(path.join(out, '_state', 'humanapi.json'), 'utf8')) as { users: Record<string, { streams: Record<string, string> }> };
  return s.users['app']?.streams ?? {};
}

/** The JSON bodies of a VCR cassette (single-quoted YAML scalars, one line each). */
function cassetteRecords(): Array<{ id: string; humanId: string; startTime: string; calories: number }> {
  const out: Array<{ id: string; humanId: string; startTime: string; calories: number }> = [];
  for (const line of readFileSync(CASSETTE, 'utf8').split('\n')) {
    const m = /^\s+string: '(.*)'$/.exec(line);
    if (m && m[1] !== '') out.push(...(JSON.parse(m[1]!.replace(/''/g, "'")) as typeof out));
  }
  return out;
}

// ------------------------------------------------------------------ tests

test('the 234 recorded activities land exactly once, also when the window is fetched again', async (t) => {
  const { api, out } = await setup(t);
  const recorded = cassetteRecords();
  t.is(recorded.length, 234);
  const seenAt = Date.UTC(2015, 8, 10);
  // 2015-07-01 .. 2015-09-01: 63 days → 31 + 31 + 1.
  const args = ['--since', '2015-07-01', '--until', '2015-09-01'];
  const first = await runHumanApi(context(api, out, args, seenAt), { pageSize: 50 });
  t.is(first.error, undefined);
  t.deepEqual(windowsOf(api.log), [
    ['activities', '2015-07-01T00:00:00.000Z', '2015-08-01T00:00:00.000Z'],
    ['activities', '2015-08-01T00:00:00.000Z', '2015-09-01T00:00:00.000Z'],
    ['activities', '2015-09-01T00:00:00.000Z', '2015-09-02T00:00:00.000Z'],
  ]);
  t.true(sent(api.log).some((w) => w.offset > 0), 'pages were followed by Link rel="next"');
  const second = await runHumanApi(context(api, out, args, seenAt), { pageSize: 50 });
  t.is(second.error, undefined);
  assertSaneRequests(t, api.log);

  const [counts] = await query(`SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS ids FROM ${files(out, 'activities')}`);
  t.deepEqual(counts, { n: 234, ids: 234 });
  const ids = (await query(`SELECT id FROM ${files(out, 'activities')} ORDER BY id`)).map((r) => r.id);
  t.deepEqual(ids, recorded.map((r) => r.id).sort());
  const byId = new Map(recorded.map((r) => [r.id, r]));
  for (const row of await query(`SELECT id, "user", humanId, calories, epoch_ms(startTime) AS start FROM ${files(out, 'activities')}`)) {
    const raw = byId.get(row.id as string)!;
    t.is(row.user, raw.humanId);
    t.is(row.humanId, raw.humanId);
    t.is(row.calories, raw.calories);
    t.is(Number(row.start), Date.parse(raw.startTime));
  }
  t.is(first.datasets[0]?.rowsIn, 234);
  t.is(second.datasets[0]?.rows, 234, 'the second landing rewrote the same rows');
  t.deepEqual(await state(out), { activities: '2015-09-02T00:00:00.000Z' });
});

test('a 95-day backfill of many users: 4 windows, every page, every record once, the newest version of a record seen twice; then an incremental run', async (t) => {
  t.timeout(60_000);
  const { api, out } = await setup(t);
  const generated = generateHumanApiActivities({ users: 6, days: 100, lastDay: '2016-05-12', updatedLater: 0.3 });
  api.humanapi.setRecords('activities', generated);
  const since = Date.UTC(2016, 1, 7);
  const end = since + 95 * DAY; // --until 2016-05-11 inclusive
  const bounds = [since, since + 31 * DAY, since + 62 * DAY, since + 93 * DAY, end];
  const inRange = (r: HumanRecord, a: number, b: number): boolean => updated(r) >= a && updated(r) < b;

  // A record of the first window is updated on the server while the run is in its second
  // window: the third window brings it again, changed.
  const moved = generated.find((r) => inRange(r, bounds[0]!, bounds[1]!))!;
  const movedNew: HumanRecord = { ...moved, calories: 4321, steps: 9876, updatedAt: iso(Date.UTC(2016, 3, 20, 10, 0, 0)) };
  let done = 0;
  const progress = (e: ProgressEvent): void => {
    if (e.kind === 'done' && ++done === 1) api.humanapi.putRecords('activities', [movedNew]);
  };
  const result = await runHumanApi(context(api, out, ['--since', '2016-02-07', '--until', '2016-05-11'], Date.UTC(2016, 4, 13), { progress }), { pageSize: 50 });
  t.is(result.error, undefined);
  t.deepEqual(
    windowsOf(api.log),
    bounds.slice(0, 4).map((b, i) => ['activities', iso(b), iso(bounds[i + 1]!)]),
    'exactly 4 windows: 31 + 31 + 31 + 2 days',
  );
  // Each window paged through all its records, 50 at a time.
  const served = [generated, generated.map((r) => (r.id === moved.id ? movedNew : r))];
  for (let i = 0; i < 4; i++) {
    const expected = served[i === 0 ? 0 : 1]!.filter((r) => inRange(r, bounds[i]!, bounds[i + 1]!)).length;
    const offsets = sent(api.log).filter((w) => w.since === bounds[i]).map((w) => w.offset);
    t.deepEqual(offsets, Array.from({ length: Math.max(1, Math.ceil(expected / 50)) }, (_, k) => k * 50), `pages of window ${i + 1}`);
  }
  t.true(sent(api.log).length > 8, 'several pages per window');
  assertSaneRequests(t, api.log);

  const expectedIds = generated.filter((r) => inRange(r, since, end)).map((r) => String(r.id)).sort();
  t.true(generated.some((r) => updated(r) >= end), 'some records were updated after the backfill (the next run gets them)');
  const rows = await query(`SELECT id, "user", humanId, calories, steps::INTEGER AS steps, epoch_ms(updatedAt) AS u FROM ${files(out, 'activities')} ORDER BY id`);
  t.deepEqual(rows.map((r) => r.id), expectedIds, 'every record once');
  t.true(rows.every((r) => r.user === r.humanId), 'each record in its own user partition');
  t.is(new Set(rows.map((r) => r.humanId)).size, 6);
  const m = rows.find((r) => r.id === moved.id)!;
  t.deepEqual([m.calories, m.steps, Number(m.u)], [4321, 9876, Date.parse(String(movedNew.updatedAt))], 'the newer version won');
  t.deepEqual(await state(out), { activities: iso(end) });

  // Incremental: three records change, two are new; the run starts at the watermark less the
  // 2 lookback days and ends at its clock.
  const log0 = api.log.length;
  const changed: HumanRecord[] = generated.filter((r) => inRange(r, since, since + 20 * DAY)).slice(0, 3).map((r, i) => ({ ...r, steps: 111 + i, updatedAt: iso(Date.UTC(2016, 5, 1, i)) }));
  const added: HumanRecord[] = [0, 1].map((i) => ({ ...generated[i]!, id: `new-${i}`, updatedAt: iso(Date.UTC(2016, 5, 2, i)) }));
  api.humanapi.putRecords('activities', [...changed, ...added]);
  const now = Date.UTC(2016, 5, 25, 12, 0, 0);
  const incremental = await runHumanApi(context(api, out, [], now), { pageSize: 50 });
  t.is(incremental.error, undefined);
  const from = end - 2 * DAY;
  t.deepEqual(windowsOf(api.log.slice(log0)), [
    ['activities', iso(from), iso(from + 31 * DAY)],
    ['activities', iso(from + 31 * DAY), iso(now)],
  ]);
  assertSaneRequests(t, api.log);
  const all = new Map<string, HumanRecord>();
  for (const r of [...generated.filter((r) => updated(r) >= since && updated(r) < now), ...changed, ...added]) all.set(String(r.id), r);
  const after = await query(`SELECT id, steps::INTEGER AS steps, epoch_ms(updatedAt) AS u FROM ${files(out, 'activities')} ORDER BY id`);
  t.deepEqual(after.map((r) => r.id), [...all.keys()].sort());
  for (const c of changed) {
    const row = after.find((r) => r.id === c.id)!;
    t.deepEqual([row.steps, Number(row.u)], [c.steps, updated(c)]);
  }
  t.deepEqual(await state(out), { activities: iso(now) });
});

test('a page that fails after retries stops the run with the earlier windows committed; the next run resumes there', async (t) => {
  const { api, out } = await setup(t);
  const generated = generateHumanApiActivities({ users: 3, days: 100, lastDay: '2016-05-12', updatedLater: 0 });
  api.humanapi.setRecords('activities', generated);
  const since = Date.UTC(2016, 1, 7);
  const bounds = [since, since + 31 * DAY, since + 62 * DAY, since + 93 * DAY, since + 95 * DAY];
  let done = 0;
  // After two windows, the API fails every attempt at the third window's first page.
  const progress = (e: ProgressEvent): void => {
    if (e.kind === 'done' && ++done === 2) api.faults.queue.push(...Array(FAST_RETRY.maxAttempts).fill('503'));
  };
  const args = ['--since', '2016-02-07', '--until', '2016-05-11', '--lookback', '0'];
  const failed = await runHumanApi(context(api, out, args, Date.UTC(2016, 4, 13), { progress }), { pageSize: 100 });
  t.regex(failed.error ?? '', /^gave up after 3 attempts \(last: HTTP 503\)/);
  t.false(/\n/.test(failed.error ?? ''));
  t.deepEqual(await state(out), { activities: iso(bounds[2]!) }, 'the watermark is the end of the last committed window');
  const firstTwo = generated.filter((r) => updated(r) >= bounds[0]! && updated(r) < bounds[2]!).map((r) => String(r.id)).sort();
  t.deepEqual((await query(`SELECT id FROM ${files(out, 'activities')} ORDER BY id`)).map((r) => r.id), firstTwo);

  const log0 = api.log.length;
  const resumed = await runHumanApi(context(api, out, ['--until', '2016-05-11', '--lookback', '0'], Date.UTC(2016, 4, 13)), { pageSize: 100 });
  t.is(resumed.error, undefined);
  t.deepEqual(windowsOf(api.log.slice(log0)), [
    ['activities', iso(bounds[2]!), iso(bounds[3]!)],
    ['activities', iso(bounds[3]!), iso(bounds[4]!)],
  ]);
  const everything = generated.filter((r) => updated(r) >= bounds[0]! && updated(r) < bounds[4]!).map((r) => String(r.id)).sort();
  const [c] = await query(`SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS ids FROM ${files(out, 'activities')}`);
  t.deepEqual(c, { n: everything.length, ids: everything.length });
  assertSaneRequests(t, api.log);
});

test('X-Total-Count that no longer matches (a record deleted mid-window) fails loudly and commits nothing of the window', async (t) => {
  let api: FixtureApi | undefined;
  let deleted = false;
  // The fixture reads its clock as each request is handled: once the first page has been
  // answered, delete a record of the window (as if a user removed it mid-backfill).
  api = await startFixtureApi({
    fitbit: { users: [], sampleUser: false },
    now: () => {
      if (api && !deleted && api.log.some((e) => e.service === 'humanapi' && e.status === 200)) {
        deleted = true;
        const list = api.humanapi.records.get('activities') ?? [];
        const victim = list.find((r) => updated(r) >= Date.UTC(2015, 7, 1) && updated(r) < Date.UTC(2015, 8, 1));
        api.humanapi.setRecords('activities', list.filter((r) => r !== victim));
      }
      return Date.now();
    },
  });
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-humanapi-'));
  t.teardown(async () => {
    await api?.close();
    await fs.rm(out, { recursive: true, force: true });
  });
  const result = await runHumanApi(context(api, out, ['--since', '2015-08-01', '--until', '2015-08-31'], Date.UTC(2015, 8, 10)), { pageSize: 10 });
  t.true(deleted);
  t.regex(result.error ?? '', /X-Total-Count for activities .* changed from \d+ to \d+ on page 2/);
  t.false(/\n/.test(result.error ?? ''));
  if (existsSync(path.join(out, '_state', 'humanapi.json'))) t.deepEqual(await state(out), {}, 'no watermark');
  const landed = existsSync(path.join(out, 'activities')) ? (await fs.readdir(path.join(out, 'activities'), { recursive: true })).filter((f) => String(f).endsWith('.parquet')) : [];
  t.deepEqual(landed, [], 'no file of the failed window');
  t.is(result.datasets[0]?.rows, 0);
});

test('readings and daily summaries go to their datasets; bad records go to the dead letters and the run goes on', async (t) => {
  const { api, out } = await setup(t);
  const heartRates = api.humanapi.records.get('heart_rates')!; // real, recorded
  t.true(heartRates.length > 0);
  const [bpRecorded] = api.humanapi.records.get('blood_pressures')!;
  const bp: HumanRecord = { ...bpRecorded!, humanId: 'h-bp', updatedAt: '2015-02-01T00:00:00.000Z' };
  const weights: HumanRecord[] = [
    { id: 'w-good', humanId: 'h-1', timestamp: '2015-02-02T07:00:00.000Z', tzOffset: '+01:00', value: 70.5, unit: 'kg', source: 'withings', updatedAt: '2015-02-02T08:00:00.000Z' },
    { id: 'w-no-human', timestamp: '2015-02-02T07:00:00.000Z', value: 71, unit: 'kg', updatedAt: '2015-02-02T08:00:00.000Z' },
    { id: 'w-bad-time', humanId: 'h-1', timestamp: 'yesterday', value: 72, unit: 'kg', updatedAt: '2015-02-02T09:00:00.000Z' },
  ];
  const summaries: HumanRecord[] = [
    { id: 's-1', humanId: 'h-1', date: '2015-03-22', source: 'fitbit', calories: 2720, distance: 9410, duration: 23100, steps: 12224, light: 341, moderate: 3, vigorous: 41, sedentary: 1055, updatedAt: '2015-03-23T04:00:00.000Z' },
    { id: 's-2', humanId: 'h-2', date: '2015-03-21', source: 'fitbit', steps: '3119', updatedAt: '2015-03-22T04:00:00.000Z' },
  ];
  api.humanapi.setRecords('blood_pressures', [bp]);
  api.humanapi.setRecords('weights', weights);
  api.humanapi.setRecords('activities/summaries', summaries);
  const result = await runHumanApi(
    context(api, out, ['--since', '2015-01-01', '--until', '2015-03-31', '--types', 'heart_rates,blood_pressures,weights,activities/summaries'], Date.UTC(2015, 3, 2)),
  );
  t.is(result.error, undefined);
  assertSaneRequests(t, api.log);
  // 90 days → 3 windows per type.
  t.is(windowsOf(api.log).length, 12);

  const readings = await query(`SELECT id, type, value, unit, humanId, "user" FROM ${files(out, 'readings')} ORDER BY id`);
  const hrRows = readings.filter((r) => r.type === 'heart_rate');
  t.deepEqual(hrRows.map((r) => r.id), heartRates.map((r) => String(r.id)).sort());
  for (const row of hrRows) t.is(row.value, heartRates.find((r) => r.id === row.id)!.value);
  t.deepEqual(
    readings.filter((r) => String(r.type).startsWith('blood_pressure')).map((r) => [r.id, r.type, r.value]),
    [[`${String(bp.id)}:diastolic`, 'blood_pressure_diastolic', bp.diastolic], [`${String(bp.id)}:systolic`, 'blood_pressure_systolic', bp.systolic]],
  );
  t.deepEqual(readings.filter((r) => r.type === 'weight').map((r) => [r.id, r.value, r.unit, r.user]), [['w-good', 70.5, 'kg', 'h-1']]);

  const daily = await query(`SELECT id, CAST("date" AS VARCHAR) AS d, "user", steps, light FROM ${files(out, 'daily_summaries')} ORDER BY id`);
  t.deepEqual(daily, [
    { id: 's-1', d: '2015-03-22', user: 'h-1', steps: '12224', light: 341 },
    { id: 's-2', d: '2015-03-21', user: 'h-2', steps: '3119', light: null },
  ]);

  const readingsSummary = result.datasets.find((d) => d.dataset === 'readings')!;
  t.is(readingsSummary.deadLetters, 2);
  t.is(result.deadLetterFiles.length, 1);
  const letters = readFileSync(result.deadLetterFiles[0]!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { reason: string; raw: { id: string }; context: Record<string, unknown> });
  t.deepEqual(letters.map((l) => l.raw.id).sort(), ['w-bad-time', 'w-no-human']);
  t.true(letters.every((l) => typeof l.context.window === 'string' && l.reason.length > 0));
  t.deepEqual(Object.keys(await state(out)).sort(), ['activities/summaries', 'blood_pressures', 'heart_rates', 'weights']);
});

test('CLI: a bad App Key fails in one line that names HUMANAPI_APP_KEY and never shows the key', async (t) => {
  const { api, out } = await setup(t);
  const badKey = 'wrong-app-key-98765';
  const stdout: string[] = [];
  const stderr: string[] = [];
  const env = { ...fixtureEnv(api), HUMANAPI_APP_KEY: badKey };
  const io = { stdout: (s: string) => void stdout.push(s), stderr: (s: string) => void stderr.push(s), env, cwd: out, log: createLogger({ json: true, write: (l) => stdout.push(l) }) };
  const code = await main(['run', 'humanapi', '--out', out, '--since', '2015-08-01', '--until', '2015-08-10'], io);
  t.is(code, 1);
  const err = stderr.join('');
  t.is(err.trim().split('\n').length, 1, err);
  t.regex(err, /Human API rejected the App Key \(HTTP 401\): set HUMANAPI_APP_KEY/);
  const everything = [...stdout, ...stderr].join('\n') + readFileSync(path.join(out, '_runs', (await fs.readdir(path.join(out, '_runs')))[0]!), 'utf8');
  t.false(everything.includes(badKey));
  t.false(everything.includes(Buffer.from(`${badKey}:`).toString('base64')));
  t.deepEqual(sent(api.log).length, 1, 'a 401 is not retried');
  t.is(api.log[0]!.status, 401);
});

test('--types rejects a type without a dataset before any request', async (t) => {
  const { api, out } = await setup(t);
  // Checked when the command line is read (the registry asks the pipeline), before a run starts.
  t.throws(() => context(api, out, ['--types', 'activities,heart_rate'], Date.UTC(2016, 0, 1)), { message: /"heart_rate" is not carried \(did you mean heart_rates\?\)/ });
  t.throws(() => context(api, out, ['--types', 'sleeps'], Date.UTC(2016, 0, 1)), { message: /"sleeps" is not carried/ });
  t.is(api.log.length, 0);
});

test('without --since or state: the last 7 days up to the run clock', async (t) => {
  const { api, out } = await setup(t);
  const now = Date.UTC(2015, 7, 31, 18, 30, 15, 250);
  const result = await runHumanApi(context(api, out, [], now));
  t.is(result.error, undefined);
  const end = Date.UTC(2015, 7, 31, 18, 30, 15);
  t.deepEqual(windowsOf(api.log), [['activities', iso(end - 7 * DAY), iso(end)]]);
  const expected = api.humanapi.records.get('activities')!.filter((r) => updated(r) >= end - 7 * DAY && updated(r) < end).length;
  t.true(expected > 0);
  const [c] = await query(`SELECT count(*)::INTEGER AS n FROM ${files(out, 'activities')}`);
  t.is(c!.n, expected);
});
