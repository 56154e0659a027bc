// Human API batch records as the source hands them on (API-REFERENCE.md §B.5–B.7), validated
// once, record by record: each raw type is the output of its schema. Numbers may come as
// numeric text (summaries have carried strings) and arrive as numbers; an absent, null or ""
// optional field arrives as undefined. Times and offsets stay text: the transform parses them
// (the parse is the check). Fields without a column pass through for sourceData.
import * as v from 'valibot';
import { absentOr, checker, count, nonBlank, numberish, optionalText, rejected, type Checked } from '../../lib/validate.js';

/**
 * The batch types this ETL carries, by dataset. Other batch types (sleeps, locations, meals,
 * heart-rate summaries, genetic traits) have no dataset yet.
 */
export const HUMANAPI_BATCH_TYPES = [
  'activities',
  'activities/summaries',
  'heart_rates',
  'weights',
  'bmis',
  'body_fats',
  'heights',
  'blood_pressures',
  'blood_glucoses',
  'blood_oxygens',
] as const;
export type HumanApiBatchType = (typeof HUMANAPI_BATCH_TYPES)[number];

const text = optionalText;
const number = absentOr(numberish, 'a number');
const whole = absentOr(count, 'a whole number ≥ 0');

/** What every batch record has: its ids, where it came from and the server's times. */
const common = {
  id: nonBlank,
  humanId: nonBlank,
  /** Deprecated upstream; defaults to humanId. */
  userId: text,
  source: text,
  createdAt: text,
  updatedAt: text,
  sourceData: v.optional(v.unknown()),
};

export const activitySchema = v.looseObject({
  ...common,
  startTime: v.pipe(v.string(), v.nonEmpty('an ISO date-time with an offset')),
  endTime: text,
  tzOffset: text,
  timeZone: text,
  type: text,
  /** Seconds. */
  duration: number,
  distance: number,
  steps: whole,
  calories: number,
});

export const summarySchema = v.looseObject({
  ...common,
  date: v.pipe(v.string(), v.regex(/^\d{4}-\d{2}-\d{2}$/, 'YYYY-MM-DD')),
  duration: number,
  distance: number,
  steps: whole,
  calories: number,
  vigorous: number,
  moderate: number,
  light: number,
  sedentary: number,
});

const reading = {
  ...common,
  timestamp: v.pipe(v.string(), v.nonEmpty('an ISO date-time with an offset')),
  tzOffset: text,
  unit: text,
};

export const readingSchema = v.looseObject({ ...reading, value: number });

export const bloodPressureSchema = v.pipe(
  v.looseObject({ ...reading, systolic: number, diastolic: number }),
  v.check((r) => r.systolic !== undefined || r.diastolic !== undefined, 'systolic or diastolic'),
);

export type RawHumanActivity = v.InferOutput<typeof activitySchema>;
export type RawHumanSummary = v.InferOutput<typeof summarySchema>;
export type RawHumanReading = v.InferOutput<typeof readingSchema>;
export type RawBloodPressure = v.InferOutput<typeof bloodPressureSchema>;

/** One batch record, tagged with the shape it was validated as. */
export type HumanApiRecord =
  | { kind: 'activity'; record: RawHumanActivity }
  | { kind: 'summary'; record: RawHumanSummary }
  | { kind: 'reading'; record: RawHumanReading }
  | { kind: 'blood_pressure'; record: RawBloodPressure };

const tagged = <K extends HumanApiRecord['kind'], T>(kind: K, check: (raw: unknown) => Checked<T>) =>
  (raw: unknown): Checked<{ kind: K; record: T }> => {
    const r = check(raw);
    return r.ok ? { ok: true, value: { kind, record: r.value }, raw } : r;
  };

const checkActivityRecord = tagged('activity', checker(activitySchema));
const checkSummary = tagged('summary', checker(summarySchema));
const checkReading = tagged('reading', checker(readingSchema));
const checkBloodPressure = tagged('blood_pressure', checker(bloodPressureSchema));

/** Batch type → the check of its records (API-REFERENCE.md §B.4: every type this ETL carries). */
const CHECKS: { readonly [T in HumanApiBatchType]: (raw: unknown) => Checked<HumanApiRecord> } = {
  activities: checkActivityRecord,
  'activities/summaries': checkSummary,
  heart_rates: checkReading,
  weights: checkReading,
  bmis: checkReading,
  body_fats: checkReading,
  heights: checkReading,
  blood_glucoses: checkReading,
  blood_oxygens: checkReading,
  blood_pressures: checkBloodPressure,
};

/** The check of one record of batch type `type`; every record of a type this ETL does not carry is rejected. */
export function batchRecordChecker(type: string): (raw: unknown) => Checked<HumanApiRecord> {
  const known = (HUMANAPI_BATCH_TYPES as readonly string[]).indexOf(type);
  return known >= 0 ? CHECKS[HUMANAPI_BATCH_TYPES[known]!] : (raw) => rejected(`Human API type "${type}" has no dataset here`, raw);
}
