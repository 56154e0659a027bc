import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  ACTIVITY_TYPES,
  activityType,
  normalizeActivity,
  type ActivityResult,
} from '../transforms/activities.js';
import type { ActivityRecord } from '../lib/schema.js';
import { checkActivity, type FitbitUserContext, type RawActivity } from '../sources/fitbit/types.js';

const SAMPLES = fileURLToPath(new URL('../../shared/data/fitbit-api-samples/', import.meta.url));
const SEEN_AT = Date.UTC(2024, 4, 1, 12, 0, 0); // frozen clock

/** Reads a sample page as the source does: strip the BOM, quote logId so it stays exact. */
function loadPage(name: string): RawActivity[] {
  let text = readFileSync(SAMPLES + name, 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  text = text.replace(/"logId"\s*:\s*(\d+)/g, '"logId": "$1"');
  const body = JSON.parse(text) as { activities: RawActivity[] };
  return body.activities;
}

/** A record as the pipeline hands it on: checked by the source, then normalized. */
function normalize(raw: unknown, user: FitbitUserContext, seenAt: number): ActivityResult {
  return normalizeActivity(checkActivity(raw), user, seenAt);
}

const metricUser: FitbitUserContext = {
  userId: '2ABC3D',
  humanId: 'h-1',
  timeZone: 'America/Los_Angeles',
  profileUnits: 'metric',
  // Strides as in a real profile, float noise included (API-REFERENCE §A.3).
  profile: { timezone: 'America/Los_Angeles', offsetFromUTCMillis: -25200000, height: 181, strideLengthWalking: 75.10000000000001, strideLengthRunning: 94.2 },
};

const usUser: FitbitUserContext = {
  ...metricUser,
  profileUnits: 'en_US',
  profile: { timezone: 'America/Los_Angeles', offsetFromUTCMillis: -25200000, height: 71, strideLengthWalking: 30, strideLengthRunning: 37.5 },
};

function ok(result: ActivityResult): ActivityRecord {
  if (!result.ok) throw new Error(`expected a record, got dead letter: ${result.deadLetter.reason}`);
  return result.record;
}

function close(t: { true: (v: boolean, m?: string) => void }, actual: number | null, expected: number, rel: number, what: string): void {
  t.true(actual !== null && Math.abs(actual - expected) <= rel * Math.abs(expected) + 1e-9, `${what}: ${String(actual)} vs ${expected}`);
}

const samples = [...loadPage('GetActivityLogsList.json'), ...loadPage('GetActivityLogsList2.json')];

test('all 40 real activity records normalize without dead letters', (t) => {
  t.is(samples.length, 40);
  const results = samples.map((raw) => normalize(raw, metricUser, SEEN_AT));
  const dead = results.filter((r) => !r.ok);
  t.deepEqual(dead, []);
  const ids = new Set(results.map((r) => ok(r).id));
  t.is(ids.size, 40);
});

test('real records: columns agree with the raw record (ids, instants, offsets, dates, durations)', (t) => {
  for (const raw of samples) {
    const r = ok(normalize(raw, metricUser, SEEN_AT));
    const start = raw.startTime;
    t.is(r.id, `fitbit-${raw.logId}`);
    t.is(r.humanId, 'h-1');
    t.is(r.userId, '2ABC3D');
    t.is(r.source, 'fitbit');
    t.is(r.startTime, Date.parse(start), start);
    t.is(r.endTime, Date.parse(start) + raw.duration);
    t.is(r.endTime - r.startTime, r.duration * 1000);
    t.is(r.tzOffset, start.endsWith('Z') ? '+00:00' : start.slice(-6));
    // The local date is the date written in the record's own offset.
    t.is(r.date, start.slice(0, 10));
    t.is(r.timeZone, 'America/Los_Angeles');
    t.is(r.duration, raw.duration / 1000);
    t.is(r.steps, raw.steps ?? null);
    t.is(r.calories, raw.calories ?? null);
    t.is(r.createdAt, SEEN_AT);
    t.is(r.updatedAt, Date.parse(raw.lastModified!));
    t.true((ACTIVITY_TYPES as readonly string[]).includes(r.type), r.type);
    if (raw.distanceUnit === 'Kilometer') close(t, r.distance, raw.distance! * 1000, 1e-12, `distance ${raw.logId}`);
  }
});

test("real records: pace and speed agree with Fitbit's own fields within 0.5%", (t) => {
  let compared = 0;
  for (const raw of samples) {
    const r = ok(normalize(raw, metricUser, SEEN_AT));
    if (typeof raw.speed === 'number') {
      close(t, r.speed, raw.speed, 0.005, `speed ${raw.logId}`);
      compared++;
    }
    if (typeof raw.pace === 'number') {
      close(t, r.pace, raw.pace, 0.005, `pace ${raw.logId}`);
      compared++;
    }
  }
  t.is(compared, 10); // 6 speeds and 4 paces in the samples
});

test('a Run with distance 0 gets speed 0 and no pace, as Fitbit reports it', (t) => {
  const raw = samples.find((a) => a.logId === '5515193190')!;
  t.is(raw.distance, 0);
  t.is(raw.speed, 0);
  t.false('pace' in raw);
  const r = ok(normalize(raw, metricUser, SEEN_AT));
  t.is(r.distance, 0);
  t.is(r.speed, 0);
  t.is(r.pace, null);
});

test('activeDuration drives pace/speed while duration stays elapsed (real run with a pause)', (t) => {
  const raw = samples.find((a) => a.logId === '9675733775')!;
  t.true(raw.activeDuration! < raw.duration);
  const r = ok(normalize(raw, metricUser, SEEN_AT));
  t.is(r.duration, 2103);
  // 1834 s active over 5.502559 km
  close(t, r.pace, 1834 / 5.502559, 1e-12, 'pace');
  close(t, r.speed, 5.502559 / (1834 / 3600), 1e-12, 'speed');
  t.is(JSON.parse(r.sourceData).activeDuration, 1834000);
});

test('sourceData keeps what has no column, drops *Link URLs, and is deterministic', (t) => {
  const raw = samples.find((a) => a.logId === '5397828686')!; // Spinning with a source device
  const r = ok(normalize(raw, metricUser, SEEN_AT));
  const data = JSON.parse(r.sourceData) as Record<string, unknown>;
  for (const key of ['logType', 'activityName', 'activityTypeId', 'activeDuration', 'manualValuesSpecified', 'averageHeartRate',
    'elevationGain', 'heartRateZones', 'activityLevel', 'source', 'originalStartTime', 'originalDuration']) {
    t.true(key in data, key);
  }
  t.deepEqual(data.source, raw.source);
  t.deepEqual(data.heartRateZones, raw.heartRateZones);
  t.is(data.elevationGain, 3.048);
  t.false(Object.keys(data).some((k) => k.endsWith('Link')));
  t.false(r.sourceData.includes('api.fitbit.com'));
  for (const key of ['logId', 'startTime', 'duration', 'steps', 'calories', 'lastModified']) t.false(key in data, key);
  // Same record with its keys in reverse order → the same text.
  const reversed = Object.fromEntries(Object.entries(raw).reverse()) as RawActivity;
  t.is(ok(normalize(reversed, metricUser, SEEN_AT)).sourceData, r.sourceData);
  t.deepEqual(Object.keys(data), [...Object.keys(data)].sort());
});

test('activity types: names first, ids second, else other', (t) => {
  const table: Array<[string, number | undefined, string]> = [
    ['Walk', 90013, 'walking'],
    ['Run', 90009, 'running'],
    ['Bike', 90001, 'cycling'],
    ['Outdoor Bike', 1071, 'cycling'],
    ['Spinning', 55001, 'cycling'],
    ['Elliptical', 20047, 'elliptical'],
    ['Swim', undefined, 'swimming'],
    ['Hike', undefined, 'hiking'],
    ['Weights', undefined, 'workout'],
    ['Aerobic Workout', undefined, 'workout'],
    ['Yoga', undefined, 'yoga'],
    ['Treadmill Walk', undefined, 'walking'],
    ['Skipping rope', undefined, 'other'],
    ['Something new', 90013, 'walking'], // no keyword: the id decides
    ['Walk', 90009, 'walking'], // the name wins over the id
    ['Mystery', 424242, 'other'],
  ];
  for (const [name, id, expected] of table) t.is(activityType(name, id) as string, expected, `${name}/${String(id)}`);
  const fromSamples = new Map(samples.map((a) => [a.activityName, ok(normalize(a, metricUser, SEEN_AT)).type]));
  t.deepEqual(Object.fromEntries(fromSamples), { Walk: 'walking', Spinning: 'cycling', Bike: 'cycling', Run: 'running', 'Outdoor Bike': 'cycling' });
});

test('distance from steps × stride when missing: walking stride for walks, none for a spin class', (t) => {
  const walk = samples.find((a) => a.logId === '5390522508')!; // Walk, 5138 steps, no distance
  t.is(walk.distance, undefined);
  const r = ok(normalize(walk, metricUser, SEEN_AT));
  // 5138 × 0.751 m (the 75.10000000000001 cm profile stride, noise dropped)
  t.is(r.distance, 3858.638);
  close(t, r.speed, 3.858638 / (2764 / 3600), 1e-12, 'speed');
  t.regex(JSON.parse(r.sourceData).distanceEstimate as string, /walking stride/);
  const spin = ok(normalize(samples.find((a) => a.logId === '5397828686')!, metricUser, SEEN_AT));
  t.is(spin.distance, null);
  t.is(spin.pace, null);
  t.is(spin.speed, null);
  const run: RawActivity = { logId: '1', activityName: 'Run', startTime: '2017-09-01T18:54:51.000-07:00', duration: 600000, steps: 1000 };
  t.is(ok(normalize(run, metricUser, SEEN_AT)).distance, 942); // 1000 × 0.942 m running stride
  const noStride: FitbitUserContext = { ...metricUser, profile: { timezone: 'UTC', offsetFromUTCMillis: 0 } };
  t.is(ok(normalize(walk, noStride, SEEN_AT)).distance, null);
});

test('Mile and Steps distance units', (t) => {
  const base = { logId: '77', activityName: 'Run', activityTypeId: 90009, startTime: '2019-01-02T20:33:57.000-05:00', duration: 1900000, activeDuration: 1800000 };
  const mile = ok(normalize({ ...base, distance: 3.1, distanceUnit: 'Mile' }, metricUser, SEEN_AT));
  close(t, mile.distance, 3.1 * 1609.344, 1e-12, 'mile distance');
  close(t, mile.pace, 1800 / (3.1 * 1.609344), 1e-12, 'pace s/km');
  close(t, mile.speed, (3.1 * 1.609344) / 0.5, 1e-12, 'speed km/h');
  t.is(mile.tzOffset, '-05:00');
  t.is(mile.date, '2019-01-02');
  t.is(mile.startTime, Date.UTC(2019, 0, 3, 1, 33, 57));
  const steps = ok(normalize({ ...base, activityName: 'Walk', activityTypeId: 90013, distance: 5000, distanceUnit: 'Steps' }, metricUser, SEEN_AT));
  t.is(steps.distance, 3755); // 5000 steps × 0.751 m walking stride
  const stepsRun = ok(normalize({ ...base, distance: 5000, distanceUnit: 'Steps' }, usUser, SEEN_AT));
  close(t, stepsRun.distance, 5000 * 37.5 * 0.0254, 1e-12, 'en_US running stride in inches');
});

test('en_US: elevation feet → metres, strides in inches', (t) => {
  const raw: RawActivity = {
    logId: '78', activityName: 'Hike', startTime: '2019-06-01T08:00:00.000-07:00', duration: 3600000,
    distance: 2, distanceUnit: 'Mile', elevationGain: 100, steps: 4000,
  };
  const r = ok(normalize(raw, usUser, SEEN_AT));
  t.is(JSON.parse(r.sourceData).elevationGain, 30.48);
  t.is(r.type, 'hiking');
  close(t, r.distance, 3218.688, 1e-12, 'distance');
  const walk = ok(normalize({ logId: '79', activityName: 'Walk', startTime: '2019-06-01T08:00:00Z', duration: 600000, steps: 1000 }, usUser, SEEN_AT));
  close(t, walk.distance, 1000 * 30 * 0.0254, 1e-12, 'walk from inches stride');
  // A metric record keeps metres.
  t.is(JSON.parse(ok(normalize({ ...raw, distanceUnit: 'Kilometer' }, metricUser, SEEN_AT)).sourceData).elevationGain, 100);
});

test('a logId above 2^53 stays exact', (t) => {
  const big = '18446744073709551615'; // 2^64 − 1
  const raw: RawActivity = { logId: big, activityName: 'Walk', startTime: '2019-01-01T00:00:00Z', duration: 1000 };
  const r = ok(normalize(raw, metricUser, SEEN_AT));
  t.is(r.id, `fitbit-${big}`);
  const nextToSafe = '9007199254740993'; // 2^53 + 1: a JS number would round it
  t.is(ok(normalize({ ...raw, logId: nextToSafe }, metricUser, SEEN_AT)).id, `fitbit-${nextToSafe}`);
});

test('bad records become dead letters with clear reasons and the batch goes on', (t) => {
  const good: RawActivity = { logId: '5', activityName: 'Walk', startTime: '2019-01-01T10:00:00.000+01:00', duration: 60000 };
  const cases: Array<[unknown, RegExp]> = [
    [{ ...good, startTime: undefined }, /startTime is missing/],
    [{ ...good, startTime: '2019-01-01T10:00:00' }, /startTime .* offset/],
    [{ ...good, startTime: '2019-02-30T10:00:00Z' }, /startTime/],
    [{ ...good, distance: 'twelve', distanceUnit: 'Kilometer' }, /^distance: expected a number, received "twelve"$/],
    [{ ...good, distance: 1, distanceUnit: 'Furlong' }, /^distanceUnit: expected Kilometer, Mile or Steps, received "Furlong"$/],
    [{ ...good, duration: -5 }, /^duration: expected a number ≥ 0, received -5$/],
    [{ ...good, duration: undefined }, /^duration is missing$/],
    [{ ...good, logId: '12a' }, /^logId: expected an unsigned 64-bit decimal string .*, received "12a"$/],
    [{ ...good, logId: 18446744073709551615 }, /^logId: .*a JS number loses digits past 2\^53/],
    [{ ...good, logId: '18446744073709551616' }, /unsigned 64-bit/],
    [{ ...good, steps: 1.5 }, /^steps: expected a whole number ≥ 0, received 1\.5$/],
    [{ ...good, calories: null, steps: '12', activityTypeId: [90013] }, /^activityTypeId: expected a number, received Array$/],
    [[good], /^record: expected a JSON object, received Array$/],
    [{ ...good, lastModified: 'yesterday' }, /lastModified/],
  ];
  const batch = [good, ...cases.map(([raw]) => raw), good];
  const results = batch.map((raw) => normalize(raw, metricUser, SEEN_AT));
  t.true(results[0]!.ok);
  t.true(results[results.length - 1]!.ok);
  cases.forEach(([raw, reason], i) => {
    const res = results[i + 1]!;
    if (res.ok) {
      t.fail(`case ${i} (${JSON.stringify(raw)}) was accepted`);
      return;
    }
    t.regex(res.deadLetter.reason, reason);
    t.is(res.deadLetter.dataset, 'activities');
    t.is(res.deadLetter.raw, raw);
    t.is(res.deadLetter.context.humanId, 'h-1');
  });
});
