// The Fitbit Web API shapes as the source hands them on, validated once at the source
// boundary (API-REFERENCE.md §A): each raw type is the output of its schema. Fields the API
// marks optional stay optional here.
import * as v from 'valibot';
import type { IntradayType } from '../../lib/schema.js';
import { absentOr, checker, count, nonNegative, numberish, optionalText, type Rejected } from '../../lib/validate.js';

/** The unit system of a response, picked by the Accept-Language request header (§A.5). */
export type UnitSystem = 'metric' | 'en_US' | 'en_GB';

export type IntradayDetail = '1min' | '5min' | '15min';
export const INTRADAY_DETAILS: readonly IntradayDetail[] = ['1min', '5min', '15min'];

export interface FitbitProfile {
  timezone: string;
  offsetFromUTCMillis: number;
  /** cm for metric/en_GB, inches for en_US (follows height). */
  height?: number;
  /** kg metric, lb en_US, stone en_GB; 0 means "never entered". */
  weight?: number;
  strideLengthWalking?: number;
  strideLengthRunning?: number;
  gender?: string;
  age?: number;
  dateOfBirth?: string;
  locale?: string;
}

/** A user as the pipeline knows it: ids, the zone to convert with, and the profile facts. */
export interface FitbitUserContext {
  userId: string;
  humanId: string;
  /** IANA zone: the users-file override, else the profile's. */
  timeZone: string;
  profile: FitbitProfile;
  /** Unit system of the profile response (height and strides). */
  profileUnits: UnitSystem;
}

/** distanceUnit as the activity list sends it, lower-cased (§A.5): what each one can be read as. */
export const DISTANCE_UNIT_NAMES = [
  'kilometer', 'kilometers', 'kilometre', 'kilometres', 'km',
  'mile', 'miles', 'mi',
  'meter', 'meters', 'metre', 'metres', 'm',
  'yard', 'yards', 'yd',
  'steps', 'step',
] as const;
export type DistanceUnit = (typeof DISTANCE_UNIT_NAMES)[number];
const UNIT_NAMES: ReadonlySet<string> = new Set(DISTANCE_UNIT_NAMES);

const UINT64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * logId is an unsigned 64-bit integer: the source quotes it in the body text before JSON.parse,
 * so it arrives as the exact decimal string. Leading zeros are dropped.
 */
const LOG_ID = 'an unsigned 64-bit decimal string (a JS number loses digits past 2^53)';
const logId = v.pipe(v.string(LOG_ID), v.regex(/^\d{1,20}$/, LOG_ID), v.check((s) => BigInt(s) <= UINT64_MAX, LOG_ID), v.transform((s) => BigInt(s).toString()));

/**
 * One activity-log record (§A.1). Numbers may come as numeric text and arrive as numbers; an
 * absent, null or "" optional field arrives as undefined. Times stay text: the transform parses
 * them (the parse is the check). Fields without a column pass through for sourceData.
 */
export const activitySchema = v.looseObject({
  logId,
  activityName: optionalText,
  activityTypeId: absentOr(v.number(), 'a number'),
  startTime: v.pipe(v.string(), v.nonEmpty('an ISO date-time with an offset')),
  /** Elapsed ms, pauses included. */
  duration: nonNegative,
  /** Moving ms. */
  activeDuration: absentOr(nonNegative, 'a number ≥ 0'),
  distance: absentOr(numberish, 'a number'),
  /** As sent (it lands in sourceData): any case, one of DISTANCE_UNIT_NAMES once trimmed and lower-cased. */
  distanceUnit: absentOr(v.pipe(v.string(), v.check((s) => UNIT_NAMES.has(s.trim().toLowerCase()), 'Kilometer, Mile or Steps')), 'Kilometer, Mile or Steps'),
  steps: absentOr(count, 'a whole number ≥ 0'),
  calories: absentOr(numberish, 'a number'),
  elevationGain: absentOr(numberish, 'a number'),
  lastModified: optionalText,
});
export type RawActivity = v.InferOutput<typeof activitySchema>;
export const checkActivity = checker(activitySchema);

/**
 * One point of an intraday dataset (§A.2). level and mets come with calories only. The day's
 * points are checked by hand (checkIntradayPoints, which must accept exactly what this schema
 * does): this schema costs more than 10 % of the normalizer's time per point
 * (bench/validation.ts, figures in bench/README.md). The time text is parsed by the transform.
 */
export const intradayPointSchema = v.looseObject({
  time: v.string(),
  value: numberish,
  level: absentOr(v.pipe(v.number(), v.finite('a number')), 'a number'),
  mets: absentOr(v.pipe(v.number(), v.finite('a number')), 'a number'),
});
export type IntradayPoint = v.InferOutput<typeof intradayPointSchema>;

/** A point the source could not read, with its place in the dataset. */
export interface RejectedPoint extends Rejected {
  readonly index: number;
}

/** One intraday response for one user, resource and date, with what is needed to read it. */
export interface IntradayDay {
  resource: IntradayType;
  /** The date requested (the user's local date). */
  date: string;
  detail: IntradayDetail;
  /** NaN when the response has none (an empty dataset). */
  datasetInterval: number;
  /** "" when the response has none (an empty dataset). */
  datasetType: string;
  dataset: readonly IntradayPoint[];
  /** Points of the response that are not points: dead letters, the rest of the day goes on. */
  rejected?: readonly RejectedPoint[];
  /** Unit system of this response (distance km|mi, elevation m|ft). */
  units: UnitSystem;
  /** The day's own total (`activities-<resource>[0].value`) in the response's unit, null when absent. */
  dayTotal?: number | null;
}
