// Human API batch records (API-REFERENCE.md §B.5–B.7) → `activities`, `daily_summaries` and
// `readings` rows. The records already have the target shape and the source has validated
// them (types, numbers, ids); this parses timestamps to ms, picks the partition date and folds
// unknown fields into sourceData.
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
import type { Checked } from '../lib/validate.js';
import type { HumanApiRecord, RawBloodPressure, RawHumanActivity, RawHumanReading, RawHumanSummary } from '../sources/humanapi/types.js';
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

function requiredInstant(value: string, key: string): number {
  const t = parseIsoInstant(value);
  if (t === null) throw new BadRecord(`${key} ${JSON.stringify(value)} is not an ISO date-time with an offset`);
  return t;
}

function instantOr(value: string | undefined, key: string, fallback: number): number {
  return value === undefined ? fallback : requiredInstant(value, key);
}

/** The record's tzOffset in minutes and as `±hh:mm`, or null when it has none. */
function tzOffsetOf(v: string | undefined): { minutes: number; text: string } | null {
  if (v === undefined) return null;
  const minutes = parseOffset(v);
  if (minutes === null) throw new BadRecord(`tzOffset ${JSON.stringify(v)} is not ±hh:mm`);
  return { minutes, text: formatOffset(minutes) };
}

/** sourceData as JSON text: the record's own sourceData plus every field that has no column. */
function foldSourceData(rec: { readonly [key: string]: unknown }, known: ReadonlySet<string>, extra: Record<string, unknown> = {}): string {
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

function toActivity(rec: RawHumanActivity, seenAt: number): ActivityRecord {
  const startTime = requiredInstant(rec.startTime, 'startTime');
  const tz = tzOffsetOf(rec.tzOffset);
  let duration = rec.duration ?? null;
  let endTime: number;
  if (rec.endTime === undefined) {
    if (duration === null) throw new BadRecord('endTime and duration are both missing');
    endTime = startTime + Math.round(duration * 1000);
  } else {
    endTime = requiredInstant(rec.endTime, 'endTime');
  }
  if (endTime < startTime) throw new BadRecord('endTime is before startTime');
  if (duration === null) duration = (endTime - startTime) / 1000;
  if (duration < 0) throw new BadRecord(`duration ${duration} is negative`);
  const distance = rec.distance ?? null;
  const sourceType = rec.type ?? null;
  const known = ACTIVITY_TYPES.find((t) => t === sourceType);
  const type: ActivityType = known ?? activityType(sourceType);
  const extra: Record<string, unknown> = sourceType !== null && sourceType !== type ? { sourceType } : {};
  const { pace, speed } = paceAndSpeed(distance, duration);
  const createdAt = instantOr(rec.createdAt, 'createdAt', seenAt);
  return {
    date: utcDateString(startTime + (tz?.minutes ?? 0) * 60_000),
    id: rec.id,
    humanId: rec.humanId,
    userId: rec.userId ?? rec.humanId,
    source: rec.source ?? 'humanapi',
    type,
    startTime,
    endTime,
    tzOffset: tz?.text ?? '+00:00',
    timeZone: rec.timeZone ?? null,
    duration,
    distance,
    steps: rec.steps ?? null,
    calories: rec.calories ?? null,
    pace,
    speed,
    sourceData: foldSourceData(rec, ACTIVITY_FIELDS, extra),
    createdAt,
    updatedAt: instantOr(rec.updatedAt, 'updatedAt', createdAt),
  };
}

function toSummary(rec: RawHumanSummary, seenAt: number): DailySummaryRecord {
  // The source has checked the form YYYY-MM-DD; the calendar is checked here.
  if (parseLocalDate(rec.date) === null) throw new BadRecord(`date ${JSON.stringify(rec.date)} is not a date`);
  const createdAt = instantOr(rec.createdAt, 'createdAt', seenAt);
  return {
    date: rec.date,
    id: rec.id,
    humanId: rec.humanId,
    userId: rec.userId ?? rec.humanId,
    source: rec.source ?? 'humanapi',
    duration: rec.duration ?? null,
    distance: rec.distance ?? null,
    steps: rec.steps ?? null,
    calories: rec.calories ?? null,
    vigorous: rec.vigorous ?? null,
    moderate: rec.moderate ?? null,
    light: rec.light ?? null,
    sedentary: rec.sedentary ?? null,
    sourceData: foldSourceData(rec, SUMMARY_FIELDS),
    createdAt,
    updatedAt: instantOr(rec.updatedAt, 'updatedAt', createdAt),
  };
}

function readingBase(rec: RawHumanReading | RawBloodPressure, seenAt: number): Omit<ReadingRecord, 'id' | 'type' | 'value' | 'sourceData'> {
  const timestamp = requiredInstant(rec.timestamp, 'timestamp');
  const tz = tzOffsetOf(rec.tzOffset);
  const createdAt = instantOr(rec.createdAt, 'createdAt', seenAt);
  return {
    date: utcDateString(timestamp + (tz?.minutes ?? 0) * 60_000),
    humanId: rec.humanId,
    userId: rec.userId ?? rec.humanId,
    timestamp,
    tzOffset: tz?.text ?? null,
    unit: rec.unit ?? null,
    source: rec.source ?? 'humanapi',
    createdAt,
    updatedAt: instantOr(rec.updatedAt, 'updatedAt', createdAt),
  };
}

function toReading(rec: RawHumanReading, readingType: string, seenAt: number): ReadingRecord[] {
  return [{ ...readingBase(rec, seenAt), id: rec.id, type: readingType, value: rec.value ?? null, sourceData: foldSourceData(rec, READING_FIELDS) }];
}

function toBloodPressure(rec: RawBloodPressure, seenAt: number): ReadingRecord[] {
  const base = readingBase(rec, seenAt);
  const sourceData = foldSourceData(rec, BLOOD_PRESSURE_FIELDS);
  const rows: ReadingRecord[] = [];
  if (rec.systolic !== undefined) rows.push({ ...base, id: `${rec.id}:systolic`, type: 'blood_pressure_systolic', value: rec.systolic, sourceData });
  if (rec.diastolic !== undefined) rows.push({ ...base, id: `${rec.id}:diastolic`, type: 'blood_pressure_diastolic', value: rec.diastolic, sourceData });
  return rows;
}

/** The dead letter of a record of batch type `type` that failed the source's validation or cannot be normalized. */
export function humanApiDeadLetter(type: string, reason: string, raw: unknown): DeadLetter {
  return {
    dataset: humanApiDataset(type) ?? 'readings',
    reason,
    context: {
      stream: 'humanapi',
      type,
      id: isObject(raw) && typeof raw.id === 'string' ? raw.id : '',
      humanId: isObject(raw) && typeof raw.humanId === 'string' ? raw.humanId : '',
    },
    raw,
  };
}

/**
 * Normalizes one Human API record of batch type `type` (`activities`, `activities/summaries`,
 * `heart_rates`, `weights`, `blood_pressures`, …) as the source checked it. Never throws: a
 * record the source rejected, or whose times do not parse, comes back as a dead letter that
 * says what is wrong.
 */
export function normalizeHumanApi(type: string, checked: Checked<HumanApiRecord>, seenAt: number): HumanApiResult {
  if (!checked.ok) return { ok: false, deadLetter: humanApiDeadLetter(type, checked.reason, checked.raw) };
  const { value } = checked;
  try {
    switch (value.kind) {
      case 'activity':
        return { ok: true, dataset: 'activities', records: [toActivity(value.record, seenAt)] };
      case 'summary':
        return { ok: true, dataset: 'daily_summaries', records: [toSummary(value.record, seenAt)] };
      case 'reading':
        return { ok: true, dataset: 'readings', records: toReading(value.record, HUMANAPI_READING_TYPES[type] ?? type, seenAt) };
      case 'blood_pressure':
        return { ok: true, dataset: 'readings', records: toBloodPressure(value.record, seenAt) };
    }
  } catch (err) {
    if (err instanceof BadRecord) return { ok: false, deadLetter: humanApiDeadLetter(type, err.message, checked.raw) };
    throw err;
  }
}
