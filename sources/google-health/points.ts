// One page of intraday data points (list / :reconcile), checked and laid out in columns. A page
// holds up to 10,000 points: a valibot parse of each (~15 % of the client's time in
// bench/api-bound --google) and an object per point were most of the cost of a page after
// JSON.parse. Each point is checked by hand instead, against the same schema (POINT_SCHEMAS):
// the hand check accepts only points the schema accepts and reads the same values from them
// (test/google-health-points.test.ts holds it to that); a point it does not accept goes through
// valibot, which either accepts it (an unusual but valid spelling: an offset in the instant,
// fractional seconds, a number for an int64) or gives the reason for its dead letter.
import { DURATION, POINT_SCHEMAS, check, type GhIntradayType, type InvalidRecord } from './types.js';

/**
 * The points of one page that passed their schema, in page order (newest first), as columns;
 * the page's JSON is not kept (a dead letter downstream carries the point as these columns say).
 */
export interface GhPointPage {
  readonly type: GhIntradayType;
  /** How many points passed. */
  readonly length: number;
  /** The UTC instant of each point's start (interval start, or sample time), in ms. */
  readonly startMs: Float64Array;
  /** Each point's start UTC offset as sent ("-25200s"), as an index into `offsets`. */
  readonly offsetIndex: Int32Array;
  readonly offsets: readonly string[];
  /** The value as a number: int64 decimal strings converted (as Number() does), kcal as sent. */
  readonly values: Float64Array;
  /** The points that failed their schema, with valibot's reason. */
  readonly invalid: InvalidRecord[];
}

/** Where each type keeps its time and value (§1.5): interval types, or heart rate's sample. */
interface PointShape {
  member: string;
  field: string;
  int64: boolean;
  sample: boolean;
}

const SHAPES: { readonly [T in GhIntradayType]: PointShape } = {
  steps: { member: 'steps', field: 'count', int64: true, sample: false },
  distance: { member: 'distance', field: 'millimeters', int64: true, sample: false },
  floors: { member: 'floors', field: 'count', int64: true, sample: false },
  altitude: { member: 'altitude', field: 'gainMillimeters', int64: true, sample: false },
  'active-energy-burned': { member: 'activeEnergyBurned', field: 'kcal', int64: false, sample: false },
  'heart-rate': { member: 'heartRate', field: 'beatsPerMinute', int64: true, sample: true },
};

type Obj = Record<string, unknown>;
const isObject = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let k = at; k < at + n; k++) {
    const d = s.charCodeAt(k) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/**
 * "YYYY-MM-DDTHH:MM:SSZ" → epoch ms, or NaN for anything else (left to the schema). Fields in
 * range only: then Date.UTC gives what Date.parse gives (V8 rolls "02-30" over alike).
 */
export function fastInstant(s: unknown): number {
  if (typeof s !== 'string' || s.length !== 20) return Number.NaN;
  if (s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58 || s.charCodeAt(19) !== 90) return Number.NaN;
  const y = digits(s, 0, 4);
  const mo = digits(s, 5, 2);
  const d = digits(s, 8, 2);
  const h = digits(s, 11, 2);
  const mi = digits(s, 14, 2);
  const sec = digits(s, 17, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) return Number.NaN;
  return Date.UTC(y, mo - 1, d, h, mi, sec);
}

/** An int64 decimal string (what the schema's regex takes) or a safe integer → its number; NaN otherwise. */
export function fastInt64(x: unknown): number {
  if (typeof x === 'number') return Number.isSafeInteger(x) ? x : Number.NaN;
  if (typeof x !== 'string') return Number.NaN;
  const neg = x.charCodeAt(0) === 45 ? 1 : 0;
  const len = x.length - neg;
  if (len < 1 || len > 19) return Number.NaN;
  for (let k = neg; k < x.length; k++) {
    const c = x.charCodeAt(k);
    if (c < 48 || c > 57) return Number.NaN;
  }
  return Number(x);
}

/** Checks the points of one page; the passed ones go into columns, the others are invalid records. */
export function checkPointPage(type: GhIntradayType, raws: readonly unknown[]): GhPointPage {
  const { member, field, int64, sample } = SHAPES[type];
  const n = raws.length;
  const startMs = new Float64Array(n);
  const offsetIndex = new Int32Array(n);
  const values = new Float64Array(n);
  const offsets: string[] = [];
  // Offsets seen on this page (a handful): whether each is a duration, and its index if a start offset.
  const durations = new Map<string, number>();
  const invalid: InvalidRecord[] = [];
  const duration = (x: unknown): number => {
    if (typeof x !== 'string') return -2;
    let k = durations.get(x);
    if (k === undefined) {
      k = DURATION.test(x) ? offsets.push(x) - 1 : -2;
      durations.set(x, k);
    }
    return k;
  };
  let length = 0;
  for (let i = 0; i < n; i++) {
    const raw = raws[i];
    let start = Number.NaN;
    let offset = -2;
    let value = Number.NaN;
    const inner = isObject(raw) ? raw[member] : undefined;
    if (isObject(inner)) {
      const v = inner[field];
      value = int64 ? fastInt64(v) : typeof v === 'number' && Number.isFinite(v) ? v : Number.NaN;
      if (sample) {
        const t = inner.sampleTime;
        if (isObject(t)) {
          start = fastInstant(t.physicalTime);
          offset = duration(t.utcOffset);
        }
      } else {
        const t = inner.interval;
        if (isObject(t) && !Number.isNaN(fastInstant(t.endTime)) && duration(t.endUtcOffset) >= 0) {
          start = fastInstant(t.startTime);
          offset = duration(t.startUtcOffset);
        }
      }
    }
    if (start !== start || offset < 0 || value !== value) {
      // Not the common spelling: the schema decides, and says why when it refuses.
      const r = check(POINT_SCHEMAS[type], raw);
      if (!r.ok) {
        invalid.push({ reason: r.reason, raw });
        continue;
      }
      start = Date.parse(r.value.startTime);
      offset = duration(r.value.startUtcOffset);
      value = typeof r.value.value === 'number' ? r.value.value : Number(r.value.value);
    }
    startMs[length] = start;
    offsetIndex[length] = offset;
    values[length] = value;
    length++;
  }
  return { type, length, startMs, offsetIndex, offsets, values, invalid };
}
