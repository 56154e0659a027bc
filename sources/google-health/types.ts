// The Google Health API v4 shapes (reference GOOGLE-HEALTH-AND-TAKEOUT.md §1), validated once here
// with valibot. Bodies are checked in two steps: the page (its array and token) as a whole, then
// each record on its own, so that one bad record becomes a dead letter and the rest of the page
// lands. int64 fields arrive as JSON strings (§1.7) and stay decimal strings until a transform
// turns a count into a number; ids are never numbers.
import * as v from 'valibot';

/** The data types the intraday pipeline reads, by Google's (URL) name. */
export const GH_INTRADAY_TYPES = ['steps', 'distance', 'floors', 'altitude', 'active-energy-burned', 'heart-rate'] as const;
export type GhIntradayType = (typeof GH_INTRADAY_TYPES)[number];

/** The types the daily pipeline rolls up, by Google's name. */
export const GH_ROLLUP_TYPES = ['steps', 'distance', 'total-calories'] as const;
export type GhRollupType = (typeof GH_ROLLUP_TYPES)[number];

/** An int64 as proto3 JSON sends it: a decimal string (a number is accepted too), kept as a string. */
const Int64 = v.pipe(
  v.union([v.pipe(v.string(), v.regex(/^-?\d{1,19}$/, 'an int64 decimal string')), v.pipe(v.number(), v.safeInteger())]),
  v.transform((x) => String(x)),
);
const Double = v.pipe(v.number(), v.finite());
/** A protobuf Duration: "-25200s", "1800.5s". */
export const DURATION = /^(-?\d+(?:\.\d{1,9})?)s$/;
const Duration = v.pipe(v.string(), v.regex(DURATION, 'a duration like "-25200s"'));
/** An RFC 3339 instant with Z or an offset (what protobuf Timestamps become). */
const Timestamp = v.pipe(v.string(), v.regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/, 'an RFC 3339 instant'), v.check((s) => !Number.isNaN(Date.parse(s)), 'a real instant'));

const Interval = v.object({ startTime: Timestamp, startUtcOffset: Duration, endTime: Timestamp, endUtcOffset: Duration });

/** One interval or sample point, whatever its type: when, in which offset, and its value. */
export interface GhPoint {
  type: GhIntradayType;
  startTime: string;
  startUtcOffset: string;
  /** int64 counts and millimetres as decimal strings; kcal as a number. */
  value: string | number;
}

const intervalPoint = <K extends string, F extends string, S extends v.GenericSchema<unknown, string | number>>(type: GhIntradayType, member: K, field: F, schema: S) =>
  v.pipe(
    v.object({ [member]: v.object({ interval: Interval, [field]: schema }) } as { [P in K]: v.ObjectSchema<{ interval: typeof Interval } & { [Q in F]: S }, undefined> }),
    v.transform((o): GhPoint => {
      const inner = (o as Record<K, { interval: v.InferOutput<typeof Interval> } & Record<F, string | number>>)[member];
      return { type, startTime: inner.interval.startTime, startUtcOffset: inner.interval.startUtcOffset, value: inner[field] };
    }),
  );

const HeartRatePoint = v.pipe(
  v.object({ heartRate: v.object({ sampleTime: v.object({ physicalTime: Timestamp, utcOffset: Duration }), beatsPerMinute: Int64 }) }),
  v.transform((o): GhPoint => ({ type: 'heart-rate', startTime: o.heartRate.sampleTime.physicalTime, startUtcOffset: o.heartRate.sampleTime.utcOffset, value: o.heartRate.beatsPerMinute })),
);

/** The schema of one data point of each intraday type (JSON member and value field, §1.5). */
export const POINT_SCHEMAS: { readonly [T in GhIntradayType]: v.GenericSchema<unknown, GhPoint> } = {
  steps: intervalPoint('steps', 'steps', 'count', Int64),
  distance: intervalPoint('distance', 'distance', 'millimeters', Int64),
  floors: intervalPoint('floors', 'floors', 'count', Int64),
  altitude: intervalPoint('altitude', 'altitude', 'gainMillimeters', Int64),
  'active-energy-burned': intervalPoint('active-energy-burned', 'activeEnergyBurned', 'kcal', Double),
  'heart-rate': HeartRatePoint,
};

/** A page of list / :reconcile: the records are checked one by one (POINT_SCHEMAS, EXERCISE). */
export const DataPointPage = v.object({
  dataPoints: v.optional(v.array(v.unknown()), []),
  nextPageToken: v.optional(v.string(), ''),
});

const EXERCISE_NAME = /^users\/[^/]+\/dataTypes\/exercise\/dataPoints\/([a-z0-9-]{1,63})$/;

/** One `exercise` session (§1.5.1); what has no column travels on as JSON in sourceData. */
export const Exercise = v.pipe(
  v.object({
    name: v.optional(v.string()),
    dataPointName: v.optional(v.string()),
    dataSource: v.optional(v.unknown()),
    exercise: v.object({
      interval: Interval,
      exerciseType: v.optional(v.string(), 'EXERCISE_TYPE_UNSPECIFIED'),
      displayName: v.optional(v.string()),
      activeDuration: v.optional(Duration),
      metricsSummary: v.optional(
        v.object({
          caloriesKcal: v.optional(Double),
          distanceMillimeters: v.optional(Double),
          steps: v.optional(Int64),
          averageSpeedMillimetersPerSecond: v.optional(Double),
          averagePaceSecondsPerMeter: v.optional(Double),
          averageHeartRateBeatsPerMinute: v.optional(Int64),
          elevationGainMillimeters: v.optional(Double),
          activeZoneMinutes: v.optional(Int64),
        }),
        {},
      ),
      exerciseMetadata: v.optional(v.unknown()),
      notes: v.optional(v.string()),
      createTime: v.optional(Timestamp),
      updateTime: v.optional(Timestamp),
    }),
  }),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const name = dataset.value.name ?? dataset.value.dataPointName ?? '';
    const m = EXERCISE_NAME.exec(name);
    if (!m) {
      addIssue({ message: `exercise name ${JSON.stringify(name)} is not users/{user}/dataTypes/exercise/dataPoints/{id}` });
      return NEVER;
    }
    return { id: m[1]!, ...dataset.value.exercise, dataSource: dataset.value.dataSource };
  }),
);
export type GhExercise = v.InferOutput<typeof Exercise>;

const CivilDate = v.object({
  date: v.object({ year: v.pipe(v.number(), v.integer()), month: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(12)), day: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(31)) }),
});

/** One day of a :dailyRollUp answer; a value the day does not have stays undefined (absent, not 0). */
export const DailyRollup = v.pipe(
  v.object({
    civilStartTime: CivilDate,
    steps: v.optional(v.object({ countSum: v.optional(Int64) })),
    distance: v.optional(v.object({ millimetersSum: v.optional(Int64) })),
    totalCalories: v.optional(v.object({ kcalSum: v.optional(Double) })),
  }),
  v.transform((o) => {
    const d = o.civilStartTime.date;
    return {
      date: `${String(d.year).padStart(4, '0')}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`,
      steps: o.steps?.countSum,
      distanceMm: o.distance?.millimetersSum,
      kcal: o.totalCalories?.kcalSum,
    };
  }),
);
export type GhDailyRollup = v.InferOutput<typeof DailyRollup>;

export const RollupPage = v.object({ rollupDataPoints: v.optional(v.array(v.unknown()), []) });

export const Identity = v.object({
  legacyUserId: v.optional(v.pipe(v.string(), v.minLength(1))),
  healthUserId: v.pipe(v.string(), v.regex(/^[A-Za-z0-9-]{1,63}$/, 'healthUserId of 1-63 letters, digits and hyphens')),
});
export type GhIdentity = v.InferOutput<typeof Identity>;

export const Settings = v.object({ timeZone: v.optional(v.string()), utcOffset: v.optional(Duration) });
export type GhSettings = v.InferOutput<typeof Settings>;

export const TokenResponse = v.object({
  access_token: v.pipe(v.string(), v.minLength(1)),
  refresh_token: v.optional(v.pipe(v.string(), v.minLength(1))),
  expires_in: v.optional(v.number()),
});

/** Google's error body: `{"error": {"code", "message", "status", "details": [{"reason"}]}}`. */
export const ErrorBody = v.object({
  error: v.object({
    code: v.optional(v.number()),
    message: v.optional(v.string()),
    status: v.optional(v.string()),
    details: v.optional(v.array(v.object({ reason: v.optional(v.string()) }))),
  }),
});

/** The OAuth error body: `{"error": "invalid_grant", "error_description": "…"}`. */
export const OAuthErrorBody = v.object({ error: v.string(), error_description: v.optional(v.string()) });

/** A record that failed its schema: the reason in one line, and what was sent. */
export interface InvalidRecord {
  reason: string;
  raw: unknown;
}

/** Validates one record; the reason is valibot's issues in one line. */
export function check<T>(schema: v.GenericSchema<unknown, T>, raw: unknown): { ok: true; value: T } | { ok: false; reason: string } {
  const r = v.safeParse(schema, raw);
  if (r.success) return { ok: true, value: r.output };
  return { ok: false, reason: r.issues.map((i) => `${v.getDotPath(i) ?? '(record)'}: ${i.message}`).join('; ').slice(0, 500) };
}
