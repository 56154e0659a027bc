// Human API batch records (API-REFERENCE.md §B.5–B.7) → `activities`, `daily_summaries` and
// `readings` rows. The records already have the target shape; this validates them, parses
// timestamps to ms, picks the partition date and folds unknown fields into sourceData.
//
// Choices:
// - humanId and id are required; userId (deprecated upstream) defaults to humanId.
// - date: local date of startTime/timestamp in the record's tzOffset (UTC when it has none);
//   summaries carry their own `date`.
// - activities without tzOffset get "+00:00" (the column is not nullable); readings keep null.
// - activity `type` is mapped onto the activities vocabulary (Human API's is not normalised:
//   a Fitbit-sourced record says "run"); the source's word is kept as sourceData.sourceType.
// - pace and speed over `duration`: Human API gives no separate moving time.
// - createdAt/updatedAt are the Human API server times; seenAt stands in when one is missing.
// - blood pressure becomes TWO reading rows, `blood_pressure_systolic` and
//   `blood_pressure_diastolic` (ids `<id>:systolic`, `<id>:diastolic`), so that each stays a
//   plain number column; heartRate and any other extra go to sourceData of both.
// - reading `type` is the singular of the batch type (heart_rates → heart_rate, see
//   HUMANAPI_READING_TYPES); the user-level names (heart_rate, weight, …) are accepted too.
// - unknown fields go into sourceData next to the record's own sourceData keys; one that
//   collides with a sourceData key is kept as `record.<name>`.
import type { ActivityRecord, Dataset, DailySummaryRecord, DeadLetter, ReadingRecord } from '../lib/schema.js';
import { ACTIVITY_TYPES, activityType, stableStringify, type ActivityType } from './activities.js';
import { formatOffset, parseIsoInstant, parseLocalDate, parseOffset, utcDateString } from './time.js';

/** Batch (and user-level) type names of readings → the reading `type` column. */
export const HUMANAPI_READING_TYPES: Readonly<Record<string, string>> = {
  heart_rates: 'heart_rate', heart_rate: 'heart_rate', 'heart_rate/readings': 'heart_rate',
  weights: 'weight', weight: 'weight', 'weight/readings': 'weight',
  bmis: 'bmi', bmi: 'bmi', 'bmi/readings': 'bmi',
  body_fats: 'body_fat', body_fat: 'body_fat', 'body_fat/readings': 'body_fat',
  heights: 'height', height: 'height', 'height/readings': 'height',
  blood_pressures: 'blood_pressure', blood_pressure: 'blood_pressure',
  blood_glucoses: 'blood_glucose', blood_glucose: 'blood_glucose',
  blood_oxygens: 'blood_oxygen', blood_oxygen: 'blood_oxygen',
};

const ACTIVITY_TYPE_NAMES = new Set(['activities', 'activity']);
const SUMMARY_TYPE_NAMES = new Set(['activities/summaries', 'activity/summaries', 'activity_summaries', 'activities_summaries']);

/** The dataset a Human API type lands in, or null when this ETL does not carry it. */
export function humanApiDataset(type: string): Exclude<Dataset, 'intraday'> | null {
  if (ACTIVITY_TYPE_NAMES.has(type)) return 'activities';
  if (SUMMARY_TYPE_NAMES.has(type)) return 'daily_summaries';
  if (HUMANAPI_READING_TYPES[type] !== undefined) return 'readings';
  return null;
}

export type HumanApiResult =
  | { ok: true; dataset: 'activities'; records: ActivityRecord[] }
  | { ok: true; dataset: 'daily_summaries'; records: DailySummaryRecord[] }
  | { ok: true; dataset: 'readings'; records: ReadingRecord[] }
  | { ok: false; deadLetter: DeadLetter };

const ACTIVITY_FIELDS = new Set([
  'id', 'humanId', 'userId', 'startTime', 'endTime', 'tzOffset', 'timeZone', 'type', 'source',
  'duration', 'distance', 'steps', 'calories', 'sourceData', 'createdAt', 'updatedAt',
]);
const SUMMARY_FIELDS = new Set([
  'id', 'humanId', 'userId', 'date', 'source', 'duration', 'distance', 'steps', 'calories',
  'vigorous', 'moderate', 'light', 'sedentary', 'sourceData', 'createdAt', 'updatedAt',
]);
const READING_FIELDS = new Set([
  'id', 'humanId', 'userId', 'timestamp', 'tzOffset', 'value', 'unit', 'source', 'sourceData',
  'createdAt', 'updatedAt',
]);
const BLOOD_PRESSURE_FIELDS = new Set([...READING_FIELDS, 'systolic', 'diastolic']);

class BadRecord extends Error {}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function requiredString(rec: Record<string, unknown>, key: string): string {
  const v = rec[key];
  if (typeof v !== 'string' || v.trim() === '') throw new BadRecord(`${key} is missing or not a non-empty string`);
  return v;
}

function optionalString(rec: Record<string, unknown>, key: string): string | null {
  const v = rec[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new BadRecord(`${key} ${JSON.stringify(v)} is not a string`);
  return v;
}

/** A number from a JSON number or a numeric string (summaries have carried strings); null if absent. */
function optionalNumber(rec: Record<string, unknown>, key: string): number | null {
  const v = rec[key];
  if (v === undefined || v === null) return null;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\s*-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(v)) return Number(v);
  throw new BadRecord(`${key} ${JSON.stringify(v)} is not a number`);
}

function optionalCount(rec: Record<string, unknown>, key: string): number | null {
  const n = optionalNumber(rec, key);
  if (n !== null && (!Number.isInteger(n) || n < 0)) throw new BadRecord(`${key} ${JSON.stringify(rec[key])} is not a whole non-negative number`);
  return n;
}

function requiredInstant(rec: Record<string, unknown>, key: string): number {
  const v = rec[key];
  if (v === undefined || v === null || v === '') throw new BadRecord(`${key} is missing`);
  const t = parseIsoInstant(v);
  if (t === null) throw new BadRecord(`${key} ${JSON.stringify(v)} is not an ISO date-time with an offset`);
  return t;
}

function instantOr(rec: Record<string, unknown>, key: string, fallback: number): number {
  const v = rec[key];
  if (v === undefined || v === null || v === '') return fallback;
  return requiredInstant(rec, key);
}

/** The record's tzOffset in minutes and as `±hh:mm`, or null when it has none. */
function tzOffsetOf(rec: Record<string, unknown>): { minutes: number; text: string } | null {
  const v = rec.tzOffset;
  if (v === undefined || v === null || v === '') return null;
  const minutes = parseOffset(v);
  if (minutes === null) throw new BadRecord(`tzOffset ${JSON.stringify(v)} is not ±hh:mm`);
  return { minutes, text: formatOffset(minutes) };
}

/** sourceData as JSON text: the record's own sourceData plus every field that has no column. */
function foldSourceData(rec: Record<string, unknown>, known: ReadonlySet<string>, extra: Record<string, unknown> = {}): string {
  const out: Record<string, unknown> = {};
  const own = rec.sourceData;
  if (isObject(own)) Object.assign(out, own);
  else if (own !== undefined && own !== null) out.sourceData = own;
  for (const [key, value] of Object.entries(rec)) {
    if (known.has(key) || value === undefined) continue;
    out[key in out ? `record.${key}` : key] = value;
  }
  for (const [key, value] of Object.entries(extra)) out[key in out ? `record.${key}` : key] = value;
  return stableStringify(out);
}

function paceAndSpeed(distanceM: number | null, seconds: number): { pace: number | null; speed: number | null } {
  if (distanceM === null || !(seconds > 0)) return { pace: null, speed: null };
  const km = distanceM / 1000;
  return { pace: km > 0 ? seconds / km : null, speed: km / (seconds / 3600) };
}

function toActivity(rec: Record<string, unknown>, seenAt: number): ActivityRecord {
  const id = requiredString(rec, 'id');
  const humanId = requiredString(rec, 'humanId');
  const userId = optionalString(rec, 'userId') ?? humanId;
  const startTime = requiredInstant(rec, 'startTime');
  const tz = tzOffsetOf(rec);
  let duration = optionalNumber(rec, 'duration');
  const endRaw = rec.endTime;
  let endTime: number;
  if (endRaw === undefined || endRaw === null || endRaw === '') {
    if (duration === null) throw new BadRecord('endTime and duration are both missing');
    endTime = startTime + Math.round(duration * 1000);
  } else {
    endTime = requiredInstant(rec, 'endTime');
  }
  if (endTime < startTime) throw new BadRecord('endTime is before startTime');
  if (duration === null) duration = (endTime - startTime) / 1000;
  if (duration < 0) throw new BadRecord(`duration ${duration} is negative`);
  const distance = optionalNumber(rec, 'distance');
  const sourceType = optionalString(rec, 'type');
  const type: ActivityType = sourceType !== null && (ACTIVITY_TYPES as readonly string[]).includes(sourceType)
    ? (sourceType as ActivityType)
    : activityType(sourceType);
  const extra: Record<string, unknown> = sourceType !== null && sourceType !== type ? { sourceType } : {};
  const { pace, speed } = paceAndSpeed(distance, duration);
  const createdAt = instantOr(rec, 'createdAt', seenAt);
  return {
    date: utcDateString(startTime + (tz?.minutes ?? 0) * 60_000),
    id,
    humanId,
    userId,
    source: optionalString(rec, 'source') ?? 'humanapi',
    type,
    startTime,
    endTime,
    tzOffset: tz?.text ?? '+00:00',
    timeZone: optionalString(rec, 'timeZone'),
    duration,
    distance,
    steps: optionalCount(rec, 'steps'),
    calories: optionalNumber(rec, 'calories'),
    pace,
    speed,
    sourceData: foldSourceData(rec, ACTIVITY_FIELDS, extra),
    createdAt,
    updatedAt: instantOr(rec, 'updatedAt', createdAt),
  };
}

function toSummary(rec: Record<string, unknown>, seenAt: number): DailySummaryRecord {
  const id = requiredString(rec, 'id');
  const humanId = requiredString(rec, 'humanId');
  const date = rec.date;
  if (parseLocalDate(date) === null) throw new BadRecord(`date ${JSON.stringify(date)} is not YYYY-MM-DD`);
  const createdAt = instantOr(rec, 'createdAt', seenAt);
  return {
    date: date as string,
    id,
    humanId,
    userId: optionalString(rec, 'userId') ?? humanId,
    source: optionalString(rec, 'source') ?? 'humanapi',
    duration: optionalNumber(rec, 'duration'),
    distance: optionalNumber(rec, 'distance'),
    steps: optionalCount(rec, 'steps'),
    calories: optionalNumber(rec, 'calories'),
    vigorous: optionalNumber(rec, 'vigorous'),
    moderate: optionalNumber(rec, 'moderate'),
    light: optionalNumber(rec, 'light'),
    sedentary: optionalNumber(rec, 'sedentary'),
    sourceData: foldSourceData(rec, SUMMARY_FIELDS),
    createdAt,
    updatedAt: instantOr(rec, 'updatedAt', createdAt),
  };
}

function toReadings(rec: Record<string, unknown>, readingType: string, seenAt: number): ReadingRecord[] {
  const id = requiredString(rec, 'id');
  const humanId = requiredString(rec, 'humanId');
  const timestamp = requiredInstant(rec, 'timestamp');
  const tz = tzOffsetOf(rec);
  const createdAt = instantOr(rec, 'createdAt', seenAt);
  const base = {
    date: utcDateString(timestamp + (tz?.minutes ?? 0) * 60_000),
    humanId,
    userId: optionalString(rec, 'userId') ?? humanId,
    timestamp,
    tzOffset: tz?.text ?? null,
    unit: optionalString(rec, 'unit'),
    source: optionalString(rec, 'source') ?? 'humanapi',
    createdAt,
    updatedAt: instantOr(rec, 'updatedAt', createdAt),
  };
  if (readingType === 'blood_pressure') {
    const systolic = optionalNumber(rec, 'systolic');
    const diastolic = optionalNumber(rec, 'diastolic');
    if (systolic === null && diastolic === null) throw new BadRecord('blood pressure has neither systolic nor diastolic');
    const sourceData = foldSourceData(rec, BLOOD_PRESSURE_FIELDS);
    const rows: ReadingRecord[] = [];
    if (systolic !== null) rows.push({ ...base, id: `${id}:systolic`, type: 'blood_pressure_systolic', value: systolic, sourceData });
    if (diastolic !== null) rows.push({ ...base, id: `${id}:diastolic`, type: 'blood_pressure_diastolic', value: diastolic, sourceData });
    return rows;
  }
  return [{ ...base, id, type: readingType, value: optionalNumber(rec, 'value'), sourceData: foldSourceData(rec, READING_FIELDS) }];
}

/**
 * Normalizes one Human API record of batch type `type` (`activities`, `activities/summaries`,
 * `heart_rates`, `weights`, `blood_pressures`, …). Never throws: a record that fails validation
 * comes back as a dead letter that says what is wrong.
 */
export function normalizeHumanApi(type: string, raw: unknown, seenAt: number): HumanApiResult {
  const dataset = humanApiDataset(type);
  const fail = (reason: string): HumanApiResult => ({
    ok: false,
    deadLetter: {
      dataset: dataset ?? 'readings',
      reason,
      context: {
        stream: 'humanapi',
        type,
        id: isObject(raw) && typeof raw.id === 'string' ? raw.id : '',
        humanId: isObject(raw) && typeof raw.humanId === 'string' ? raw.humanId : '',
      },
      raw,
    },
  });
  if (dataset === null) return fail(`Human API type "${type}" has no dataset here`);
  if (!isObject(raw)) return fail('record is not a JSON object');
  try {
    if (dataset === 'activities') return { ok: true, dataset, records: [toActivity(raw, seenAt)] };
    if (dataset === 'daily_summaries') return { ok: true, dataset, records: [toSummary(raw, seenAt)] };
    return { ok: true, dataset: 'readings', records: toReadings(raw, HUMANAPI_READING_TYPES[type]!, seenAt) };
  } catch (err) {
    if (err instanceof BadRecord) return fail(err.message);
    throw err;
  }
}
