import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { humanApiDataset, normalizeHumanApi, type HumanApiResult } from '../transforms/humanapi.js';
import { batchRecordChecker } from '../sources/humanapi/types.js';
import { ACTIVITY_TYPES } from '../transforms/activities.js';
import type { ActivityRecord, DailySummaryRecord, ReadingRecord } from '../lib/schema.js';

const DATA = fileURLToPath(new URL('../../shared/data/humanapi-samples/', import.meta.url));
const SEEN_AT = Date.UTC(2024, 4, 1, 12, 0, 0); // frozen clock

type Json = Record<string, unknown>;

/** A record as the pipeline hands it on: checked by the source, then normalized. */
function normalize(type: string, raw: unknown, seenAt: number): HumanApiResult {
  return normalizeHumanApi(type, batchRecordChecker(type)(raw), seenAt);
}

/** The fields the recorded activities and readings carry (checked by the tests that use them). */
interface RecordedActivity extends Json {
  id: string; humanId: string; userId: string; source: string; type: string; startTime: string; endTime: string;
  tzOffset: string; duration: number; distance: number; steps: number; calories: number; createdAt: string; updatedAt: string;
}
interface RecordedReading extends Json {
  id: string; humanId: string; userId: string; timestamp: string; value: number; unit: string; source: string;
}

/** The JSON bodies of a VCR cassette (single-quoted YAML scalars, one line each). */
function cassetteBodies(file: string): unknown[] {
  const bodies: unknown[] = [];
  for (const line of readFileSync(DATA + file, 'utf8').split('\n')) {
    const m = /^\s+string: '(.*)'$/.exec(line);
    if (m && m[1] !== '') bodies.push(JSON.parse(m[1]!.replace(/''/g, "'")));
  }
  return bodies;
}

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(DATA + file, 'utf8'));
}

function records<T>(result: HumanApiResult): T[] {
  if (!result.ok) throw new Error(`dead letter: ${result.deadLetter.reason}`);
  return result.records as T[];
}

/** Local date of an instant in a ±hh:mm offset, by luxon (independent of the code under test). */
function localDate(iso: string, offset: string): string {
  return DateTime.fromISO(iso, { zone: 'utc' }).setZone(`UTC${offset}`).toISODate()!;
}

const recordedActivities = cassetteBodies('recorded-pagination/get_activities_fetch_all.yml').flat() as RecordedActivity[];

test('all 234 recorded Human API activities normalize', (t) => {
  t.is(recordedActivities.length, 234);
  const results = recordedActivities.map((raw) => normalize('activities', raw, SEEN_AT));
  t.deepEqual(results.filter((r) => !r.ok), []);
  for (let i = 0; i < results.length; i++) {
    const raw = recordedActivities[i]!;
    const result = results[i]!;
    t.true(result.ok && result.dataset === 'activities');
    const [r] = records<ActivityRecord>(result);
    t.truthy(r);
    t.is(r!.id, raw.id);
    t.is(r!.humanId, raw.humanId);
    t.is(r!.userId, raw.userId);
    t.is(r!.source, raw.source);
    t.is(r!.type, raw.type); // running/cycling/elliptical are already in the vocabulary
    t.is(r!.startTime, Date.parse(raw.startTime));
    t.is(r!.endTime, Date.parse(raw.endTime));
    t.is(r!.tzOffset, raw.tzOffset);
    t.is(r!.date, localDate(raw.startTime, raw.tzOffset));
    t.is(r!.duration, raw.duration);
    t.is(r!.distance, raw.distance);
    t.is(r!.steps, raw.steps);
    t.is(r!.calories, raw.calories);
    t.is(r!.createdAt, Date.parse(raw.createdAt as string));
    t.is(r!.updatedAt, Date.parse(raw.updatedAt as string));
    t.is(r!.sourceData, JSON.stringify(raw.sourceData));
    const km = raw.distance / 1000;
    if (km > 0) t.true(Math.abs(r!.pace! - raw.duration / km) < 1e-9);
  }
});

test('a record whose start is late evening UTC-06:00 is partitioned on its local date', (t) => {
  const raw = { ...recordedActivities[0]!, startTime: '2015-08-31T03:30:00.000Z', endTime: '2015-08-31T04:00:00.000Z', duration: 1800 };
  const [r] = records<ActivityRecord>(normalize('activities', raw, SEEN_AT));
  t.is(r!.date, '2015-08-30');
  const utc = { ...raw, tzOffset: undefined };
  const [u] = records<ActivityRecord>(normalize('activities', utc, SEEN_AT));
  t.is(u!.date, '2015-08-31');
  t.is(u!.tzOffset, '+00:00');
});

test('demo heart-rate readings normalize to heart_rate rows', (t) => {
  const raw = readJson('heart-rate/heart_rate_readings_demo_user.json') as RecordedReading[];
  t.is(raw.length, 50);
  for (const rec of raw) {
    const result = normalize('heart_rates', rec, SEEN_AT);
    t.true(result.ok && result.dataset === 'readings');
    const rows = records<ReadingRecord>(result);
    t.is(rows.length, 1);
    const r = rows[0]!;
    t.is(r.type, 'heart_rate');
    t.is(r.id, rec.id);
    t.is(r.humanId, rec.humanId);
    t.is(r.timestamp, Date.parse(rec.timestamp));
    t.is(r.tzOffset, '+00:00');
    t.is(r.date, (rec.timestamp).slice(0, 10));
    t.is(r.value, rec.value);
    t.is(r.unit, 'bpm');
    t.is(r.source, rec.source);
    t.is(r.sourceData, '{}');
  }
});

test('demo readings of each kind normalize once they carry the batch humanId; unknown fields land in sourceData', (t) => {
  const humanId = '5dc2527186aaf9de560e5841f1a44bd6';
  const table: Array<[string, string, string]> = [
    ['weights', 'demo-user/demo-weight.json', 'weight'],
    ['bmis', 'demo-user/demo-bmi.json', 'bmi'],
    ['body_fats', 'demo-user/demo-body_fat.json', 'body_fat'],
    ['heights', 'demo-user/demo-height.json', 'height'],
    ['blood_glucoses', 'demo-user/demo-blood_glucose.json', 'blood_glucose'],
    ['blood_oxygens', 'demo-user/demo-blood_oxygen.json', 'blood_oxygen'],
  ];
  for (const [type, file, readingType] of table) {
    const rec = { ...(readJson(file) as RecordedReading), humanId };
    const rows = records<ReadingRecord>(normalize(type, rec, SEEN_AT));
    t.is(rows.length, 1, type);
    t.is(rows[0]!.type, readingType);
    t.is(rows[0]!.value, rec.value);
    t.is(rows[0]!.unit, rec.unit);
    t.is(rows[0]!.tzOffset, null);
    t.is(rows[0]!.userId, rec.userId);
  }
  // Blood glucose carries notes/mealTag/medicationTag: no column, so sourceData.
  const glucose = { ...(readJson('demo-user/demo-blood_glucose.json') as Json), humanId };
  const [g] = records<ReadingRecord>(normalize('blood_glucoses', glucose, SEEN_AT));
  t.deepEqual(JSON.parse(g!.sourceData), { mealTag: '', medicationTag: '', notes: '' });
});

test('blood pressure becomes a systolic and a diastolic row; heartRate stays in sourceData', (t) => {
  const rec = { ...(readJson('demo-user/demo-blood_pressure.json') as Json), humanId: 'h-bp' };
  const result = normalize('blood_pressures', rec, SEEN_AT);
  const rows = records<ReadingRecord>(result);
  t.deepEqual(rows.map((r) => [r.id, r.type, r.value, r.unit]), [
    ['542d392c0fae797f0202d945:systolic', 'blood_pressure_systolic', 119, 'mmHg'],
    ['542d392c0fae797f0202d945:diastolic', 'blood_pressure_diastolic', 79, 'mmHg'],
  ]);
  for (const r of rows) {
    t.deepEqual(JSON.parse(r.sourceData), { heartRate: 77 });
    t.is(r.timestamp, Date.parse('2014-10-02T13:38:17.000Z'));
    t.is(r.date, '2014-10-02');
  }
});

test('activity summaries: date kept, string numbers parsed, unknown fields in sourceData', (t) => {
  const human = readJson('demo-user/demo-human.json') as Json;
  const summary = { ...(human.activitySummary as Json), humanId: 'h-2', userId: human.userId };
  const [s] = records<DailySummaryRecord>(normalize('activities/summaries', summary, SEEN_AT));
  t.is(s!.date, '2014-06-27');
  t.is(s!.distance, 4738.57668115211);
  t.is(s!.calories, 292);
  t.deepEqual(JSON.parse(s!.sourceData), { total: 1584.806 });
  t.is(s!.createdAt, SEEN_AT); // no server times in this record: when we saw it
  // The reference's Fitbit-sourced summary, with numbers inside sourceData as strings (§B.6).
  const fitbit = {
    id: 's-1', humanId: 'h-2', date: '2015-03-22', source: 'fitbit', calories: '2720', distance: 9410, duration: 23100, steps: '12224',
    light: 341, moderate: 3, vigorous: 41, sedentary: 1055, sourceData: { floors: 0, tracker: { calories: '1393', steps: '3119' } },
    createdAt: '2015-03-23T08:00:00.000Z', updatedAt: '2015-03-23T09:00:00.000Z',
  };
  const result = normalize('activities/summaries', fitbit, SEEN_AT);
  t.true(result.ok && result.dataset === 'daily_summaries');
  const [f] = records<DailySummaryRecord>(result);
  t.deepEqual([f!.calories, f!.steps, f!.light, f!.moderate, f!.vigorous, f!.sedentary], [2720, 12224, 341, 3, 41, 1055]);
  t.is(f!.userId, 'h-2');
  t.deepEqual(JSON.parse(f!.sourceData), fitbit.sourceData);
  t.is(f!.updatedAt, Date.parse('2015-03-23T09:00:00.000Z'));
});

test('activity type words are mapped onto the vocabulary; the source word is kept', (t) => {
  const base = recordedActivities[0]!;
  const [run] = records<ActivityRecord>(normalize('activities', { ...base, type: 'run', extraField: 42 }, SEEN_AT));
  t.is(run!.type, 'running');
  t.deepEqual(JSON.parse(run!.sourceData), { extraField: 42, sourceType: 'run' });
  const [unknown] = records<ActivityRecord>(normalize('activities', { ...base, type: 'unknown' }, SEEN_AT));
  t.is(unknown!.type, 'other');
  t.true((ACTIVITY_TYPES as readonly string[]).includes(unknown!.type));
  // An unknown field that collides with a sourceData key keeps both.
  const [clash] = records<ActivityRecord>(normalize('activities', { ...base, sourceData: { manual: false }, manual: true }, SEEN_AT));
  t.deepEqual(JSON.parse(clash!.sourceData), { manual: false, 'record.manual': true });
});

test('bad records become dead letters with the reason; the demo records without humanId are rejected', (t) => {
  const base = recordedActivities[0]!;
  const cases: Array<[string, unknown, RegExp]> = [
    ['weights', readJson('demo-user/demo-weight.json'), /humanId is missing/],
    ['activities', { ...base, startTime: undefined }, /startTime is missing/],
    ['activities', { ...base, startTime: '2015-08-30 13:40' }, /startTime .* not an ISO date-time/],
    ['activities', { ...base, endTime: '2015-08-30T12:00:00.000Z' }, /endTime is before startTime/],
    ['activities', { ...base, distance: 'far' }, /^distance: expected a number, received "far"$/],
    ['activities', { ...base, steps: -3 }, /^steps: expected a whole number ≥ 0, received -3$/],
    ['activities', { ...base, tzOffset: 'CET' }, /tzOffset "CET"/],
    ['activities', { ...base, id: '' }, /^id: expected a non-empty string, received ""$/],
    ['activities/summaries', { id: 's', humanId: 'h', date: '' }, /^date: expected YYYY-MM-DD, received ""$/],
    ['activities/summaries', { id: 's', humanId: 'h', date: '2015-02-30' }, /date "2015-02-30" is not a date/],
    ['heart_rates', { id: 'r', humanId: 'h', timestamp: 'now' }, /timestamp "now"/],
    ['blood_pressures', { id: 'r', humanId: 'h', timestamp: '2014-10-02T13:38:17.000Z' }, /^record: expected systolic or diastolic, received Object$/],
    ['sleeps', { id: 'x', humanId: 'h' }, /"sleeps" has no dataset/],
    ['activities', [1, 2], /^record: expected a JSON object, received Array$/],
  ];
  for (const [type, raw, reason] of cases) {
    const result = normalize(type, raw, SEEN_AT);
    if (result.ok) {
      t.fail(`${type} ${JSON.stringify(raw)} was accepted`);
      continue;
    }
    t.regex(result.deadLetter.reason, reason);
    t.is(result.deadLetter.raw, raw);
    t.is(result.deadLetter.context.type, type);
  }
});

test('type names → datasets', (t) => {
  t.is(humanApiDataset('activities'), 'activities');
  t.is(humanApiDataset('activities/summaries'), 'daily_summaries');
  for (const type of ['heart_rates', 'weights', 'bmis', 'body_fats', 'heights', 'blood_pressures', 'blood_glucoses', 'blood_oxygens']) {
    t.is(humanApiDataset(type), 'readings', type);
  }
  t.is(humanApiDataset('locations'), null);
});
