// Fitbit intraday dataset (one user, resource and local date) → `intraday` rows.
//
// Hot path: millions of points. Per day we build a 24-entry hour table (time.ts) with luxon;
// per point we only parse "HH:mm:ss" from char codes, add a precomputed delta and reuse the
// hour's precomputed tzOffset string. The day is written straight into its columns (one
// answer is one partition), so nothing is allocated per point but two entries in the id parts.
//
// DST rules (time.ts has the details; they agree with DuckDB/ICU `AT TIME ZONE`):
// - spring-forward day: a wall time in the missing hour (02:30 in Los Angeles) is read with the
//   offset before the change, so it lands on the same instant as the wall time one hour later.
//   Ids stay unique because they are built from the local wall time, not the instant.
// - fall-back day: a wall time of the repeated hour that occurs once maps to the LATER instant
//   (standard time). If the dataset holds the repeated hour twice (times run backwards), the
//   first occurrence maps to the earlier instant and the second to the later one. Ids in the
//   repeated range carry the offset (`…T01:30:00-07:00` / `…T01:30:00-08:00`), so they are
//   unique and a re-fetch maps the same instant to the same id.
import type { DailySummaryRecord, DeadLetter, IntradayRecord, IntradayType } from '../lib/schema.js';
import { COLUMNS, INTRADAY_TYPES } from '../lib/schema.js';
import { packedRecords } from '../lib/batch.js';
import type { PackedColumn, PackedTable, PartitionColumns } from '../lib/batch.js';
import type { FitbitUserContext, IntradayDay, IntradayDetail, UnitSystem } from '../sources/fitbit/types.js';
import { FEET_TO_METRES, MILES_TO_METRES, isFlatBmrCalories } from './formulas.js';
import { buildDayHourTable, formatOffset, resolveInDay, type DayHourTable } from './time.js';

export const INTRADAY_SOURCE = 'fitbit';

/** The `unit` column per resource (values are converted to it). */
export const INTRADAY_UNITS: { readonly [T in IntradayType]: string } = {
  steps: 'count',
  calories: 'kcal',
  distance: 'm',
  elevation: 'm',
  floors: 'count',
  'swimming-strokes': 'count',
};

const DETAIL_SECONDS: { readonly [D in IntradayDetail]: number } = { '1min': 60, '5min': 300, '15min': 900 };
const DATASET_TYPE_SECONDS: Readonly<Record<string, number>> = { second: 1, minute: 60, hour: 3600 };

/** Bucket length in seconds from datasetInterval/datasetType, else from the requested detail. */
export function intervalSeconds(day: Pick<IntradayDay, 'datasetInterval' | 'datasetType' | 'detail'>): number | null {
  const per = typeof day.datasetType === 'string' ? DATASET_TYPE_SECONDS[day.datasetType.toLowerCase()] : undefined;
  const n = day.datasetInterval;
  if (per !== undefined && typeof n === 'number' && Number.isInteger(n) && n > 0) return n * per;
  return DETAIL_SECONDS[day.detail] ?? null;
}

/** Factor from the response's unit to the column's unit, or null for an unknown unit system. */
export function intradayFactor(resource: IntradayType, units: UnitSystem): number | null {
  if (units !== 'metric' && units !== 'en_US' && units !== 'en_GB') return null;
  if (resource === 'distance') return units === 'en_US' ? MILES_TO_METRES : 1000;
  if (resource === 'elevation') return units === 'en_US' ? FEET_TO_METRES : 1;
  return 1;
}

export interface IntradayResult {
  records: IntradayRecord[];
  deadLetters: DeadLetter[];
}

export interface IntradayColumnsResult {
  /** The day's rows in COLUMNS.intraday order, or null when no point could be read. */
  columns: PartitionColumns | null;
  deadLetters: DeadLetter[];
}

/**
 * The id of an intraday point: `fitbit:<humanId>:<type>:<local date>T<HH:mm:ss>`, plus the offset
 * (`-07:00`) when the wall time occurs twice in the user's zone (a fall-back hour). Every source
 * of the same minute (legacy Fitbit, Google Health, Takeout) builds it here, so their rows merge.
 */
export function intradayId(humanId: string, type: string, date: string, time: string, repeatedOffset?: string): string {
  return intradayIdPrefix(humanId, type, date) + time + (repeatedOffset ?? '');
}

/** The id up to the time of day (`fitbit:<humanId>:<type>:<date>T`), joined flat for the hot path. */
export function intradayIdPrefix(humanId: string, type: string, date: string): string {
  // Joined, not concatenated: a flat string, which the id text copies from ~3x faster than a
  // concatenation (a rope V8 walks on every copy; measured in bench/intraday-normalizer).
  return [INTRADAY_SOURCE, humanId, type, `${date}T`].join(':');
}

/** Digit value of a char code, or -1. */
function digit(code: number): number {
  const d = code - 48;
  return d >= 0 && d <= 9 ? d : -1;
}

/** "HH:mm:ss" → seconds of the day, or -1 when it is not a valid time of day. */
export function parseTimeOfDay(time: unknown): number {
  if (typeof time !== 'string' || time.length !== 8) return -1;
  if (time.charCodeAt(2) !== 58 || time.charCodeAt(5) !== 58) return -1; // ':'
  const h1 = digit(time.charCodeAt(0));
  const h2 = digit(time.charCodeAt(1));
  const m1 = digit(time.charCodeAt(3));
  const m2 = digit(time.charCodeAt(4));
  const s1 = digit(time.charCodeAt(6));
  const s2 = digit(time.charCodeAt(7));
  if ((h1 | h2 | m1 | m2 | s1 | s2) < 0) return -1;
  const h = h1 * 10 + h2;
  const m = m1 * 10 + m2;
  const s = s1 * 10 + s2;
  if (h > 23 || m > 59 || s > 59) return -1;
  return h * 3600 + m * 60 + s;
}

/**
 * Normalizes one intraday response into rows. The pipelines use normalizeIntradayColumns; this
 * is the same work, read back as records.
 */
export function normalizeIntraday(day: IntradayDay, user: FitbitUserContext, seenAt: number): IntradayResult {
  const { columns, deadLetters } = normalizeIntradayColumns(day, user, seenAt);
  const records = columns === null ? [] : packedRecords('intraday', columns.date, columns.table);
  return { records, deadLetters };
}

/**
 * Normalizes one intraday response into the columns of its one partition (its local date and
 * the user), for the sink to take as they are: one answer of 1,440 points would otherwise be
 * 1,440 row objects that the sink packs into these same columns again.
 * Never throws for bad data: a day that cannot be read at all (bad date, zone, resource, unit
 * system, interval, dataset) becomes one dead letter; a bad point becomes a dead letter of its
 * own and the rest of the day goes on.
 */
export function normalizeIntradayColumns(day: IntradayDay, user: FitbitUserContext, seenAt: number): IntradayColumnsResult {
  const deadLetters: DeadLetter[] = [];
  const context = (extra: Record<string, string | number>): Record<string, string | number> => ({
    stream: 'fitbit-intraday',
    userId: user.userId,
    humanId: user.humanId,
    resource: String(day.resource),
    date: String(day.date),
    ...extra,
  });
  // Points the source could not read: dead letters, the rest of the day goes on.
  for (const r of day.rejected ?? []) deadLetters.push({ dataset: 'intraday', reason: r.reason, context: context({ index: r.index }), raw: r.raw });
  const rejectDay = (reason: string): IntradayColumnsResult => {
    deadLetters.push({ dataset: 'intraday', reason, context: context({}), raw: day });
    return { columns: null, deadLetters };
  };

  const type = day.resource;
  if (!(INTRADAY_TYPES as readonly string[]).includes(type)) return rejectDay(`unknown intraday resource "${String(type)}"`);
  const factor = intradayFactor(type, day.units);
  if (factor === null) return rejectDay(`unknown unit system "${String(day.units)}" (expected metric, en_US or en_GB)`);
  const interval = intervalSeconds(day);
  if (interval === null) {
    return rejectDay(`cannot tell the bucket length: datasetInterval ${String(day.datasetInterval)}, datasetType "${String(day.datasetType)}", detail "${String(day.detail)}"`);
  }
  const table = buildDayHourTable(user.timeZone, day.date);
  if (table === null) return rejectDay(`cannot place the day: date "${String(day.date)}" or time zone "${String(user.timeZone)}" is invalid`);

  const unit = INTRADAY_UNITS[type];
  const isCalories = type === 'calories';
  const convert = factor !== 1;
  const timeZone = user.timeZone;
  const humanId = user.humanId;
  const userId = user.userId;
  const date = day.date;
  const idPrefix = intradayIdPrefix(humanId, type, date);
  const wallMidnightMs = table.wallMidnightMs;
  const deltaMs = table.deltaMs;
  const tzOffsets = table.tzOffset;
  const uniform = table.uniform;
  const earlierDeltaMs = table.earlierDeltaMs;
  const earlierTzOffsets = table.earlierTzOffset;
  const dataset = day.dataset;
  const n = dataset.length;
  // Calories of a day the tracker was not worn are Fitbit's flat BMR fill: say so on each row.
  const estimated = isCalories ? isFlatBmrCalories(dataset, { intervalSeconds: interval }) : null;

  // Occurrences seen per second of the day: a second repeat is allowed only inside a repeated
  // (fall-back) range; anything else repeated would duplicate an id.
  const seen = new Uint8Array(86_400);
  // On a fall-back day, count occurrences first, so that the first of two occurrences can be
  // given the earlier instant.
  const twice = table.hasRepeated ? countRepeated(dataset, table) : null;

  // The columns that vary by point; the ids as one text (prefix and time, pushed as parts).
  const idParts: string[] = [];
  const idLengths = new Int32Array(n);
  const timestamps = new Float64Array(n);
  const values = new Float64Array(n);
  const offsetIndex = new Int32Array(n);
  const offsetDict: string[] = [];
  const levels = new Int32Array(n);
  const levelValid = new Uint8Array(n);
  const metsValues = new Float64Array(n);
  const metsValid = new Uint8Array(n);
  let levelNulls = 0;
  let metsNulls = 0;
  let lastOffset = '';
  let lastOffsetIndex = -1;
  const prefixLength = idPrefix.length;
  let rows = 0;

  for (let i = 0; i < n; i++) {
    const point = dataset[i];
    // The time's format is checked here, where it is parsed; the source has checked the types.
    const sec = parseTimeOfDay(point.time);
    if (sec < 0) {
      deadLetters.push({ dataset: 'intraday', reason: `bad time ${JSON.stringify(point.time)} (expected HH:mm:ss)`, context: context({ index: i }), raw: point });
      continue;
    }
    let value = point.value;
    if (convert) value = Math.round(value * factor * 1e6) / 1e6; // metres; drop float noise below 1 µm

    const hour = (sec / 3600) | 0;
    const wallMs = wallMidnightMs + sec * 1000;
    // The later (default) reading, and for a repeated wall time the earlier one.
    let timestamp: number;
    let tzOffset: string;
    let earlierTimestamp = Number.NaN;
    let earlierOffset = '';
    if (uniform[hour] === 1) {
      timestamp = wallMs - deltaMs[hour]!;
      tzOffset = tzOffsets[hour]!;
      const earlierDelta = earlierDeltaMs[hour]!;
      if (earlierDelta === earlierDelta) {
        earlierTimestamp = wallMs - earlierDelta;
        earlierOffset = earlierTzOffsets[hour]!;
      }
    } else {
      // An hour that holds a change not on the hour: exact, point by point.
      const resolved = resolveInDay(table, wallMs);
      timestamp = resolved.epochMs;
      tzOffset = formatOffset(resolved.offsetMinutes);
      if (resolved.earlier !== null) {
        earlierTimestamp = resolved.earlier.epochMs;
        earlierOffset = formatOffset(resolved.earlier.offsetMinutes);
      }
    }
    const count = seen[sec]!;
    const time = point.time;
    let idLength = prefixLength + 8;
    if (earlierOffset === '') {
      if (count !== 0) {
        deadLetters.push({ dataset: 'intraday', reason: `time ${time} occurs more than once in the dataset`, context: context({ index: i, time }), raw: point });
        continue;
      }
      idParts.push(idPrefix, time);
    } else {
      if (count >= 2) {
        deadLetters.push({ dataset: 'intraday', reason: `time ${time} occurs more than twice in the dataset (a fall-back day repeats it at most once)`, context: context({ index: i, time }), raw: point });
        continue;
      }
      if (count === 0 && twice !== null && twice[sec] === 2) {
        timestamp = earlierTimestamp;
        tzOffset = earlierOffset;
      }
      idParts.push(idPrefix, time, tzOffset);
      idLength += tzOffset.length;
    }
    seen[sec] = count + 1;

    if (tzOffset !== lastOffset) {
      lastOffset = tzOffset;
      lastOffsetIndex = offsetDict.indexOf(tzOffset);
      if (lastOffsetIndex < 0) lastOffsetIndex = offsetDict.push(tzOffset) - 1;
    }
    idLengths[rows] = idLength;
    timestamps[rows] = timestamp;
    offsetIndex[rows] = lastOffsetIndex;
    values[rows] = value;
    const level = point.level;
    if (isCalories && level !== undefined) {
      levels[rows] = level;
      levelValid[rows] = 1;
    } else levelNulls++;
    const mets = point.mets;
    if (isCalories && mets !== undefined) {
      metsValues[rows] = mets;
      metsValid[rows] = 1;
    } else metsNulls++;
    rows++;
  }
  if (rows === 0) return { columns: null, deadLetters };

  const constant = (value: string): PackedColumn => ({ type: 'string', strings: { kind: 'dict', dict: [value], index: new Int32Array(rows) } });
  const filled = (value: number): Float64Array => new Float64Array(rows).fill(value);
  // Cut to the rows kept (a copy only when a point was a dead letter).
  const cut = <T extends Float64Array | Int32Array | Uint8Array>(a: T): T => (rows === n ? a : (a.slice(0, rows) as T));
  const byName: Record<string, PackedColumn> = {
    id: { type: 'string', strings: { kind: 'joined', text: idParts.join(''), lengths: cut(idLengths) } },
    humanId: constant(humanId),
    userId: constant(userId),
    source: constant(INTRADAY_SOURCE),
    type: constant(type),
    timestamp: { type: 'timestamp', values: cut(timestamps), valid: null },
    tzOffset: { type: 'string', strings: { kind: 'dict', dict: offsetDict, index: cut(offsetIndex) } },
    timeZone: constant(timeZone),
    value: { type: 'double', values: cut(values), valid: null },
    unit: constant(unit),
    interval: { type: 'int32', values: new Int32Array(rows).fill(interval), valid: null },
    // As the sink packs records: a validity mask only for a column that holds a null.
    level: { type: 'int32', values: cut(levels), valid: levelNulls === 0 ? null : cut(levelValid) },
    mets: { type: 'double', values: cut(metsValues), valid: metsNulls === 0 ? null : cut(metsValid) },
    estimated: estimated === null ? { type: 'boolean', values: new Int32Array(rows), valid: new Uint8Array(rows) } : { type: 'boolean', values: new Int32Array(rows).fill(estimated ? 1 : 0), valid: null },
    createdAt: { type: 'timestamp', values: filled(seenAt), valid: null },
    updatedAt: { type: 'timestamp', values: filled(seenAt), valid: null },
  };
  const packed: PackedTable = { rowCount: rows, columns: COLUMNS.intraday.map((spec) => byName[spec.name]!) };
  return { columns: { kind: 'columns', date, humanId, table: packed }, deadLetters };
}

/** Per second of the day, how often it occurs (capped at 2), for wall times that are repeated. */
function countRepeated(dataset: IntradayDay['dataset'], table: DayHourTable): Uint8Array {
  const counts = new Uint8Array(86_400);
  for (let i = 0; i < dataset.length; i++) {
    const point = dataset[i];
    const sec = parseTimeOfDay(point.time);
    if (sec < 0) continue; // a dead letter: not a pass
    const hour = (sec / 3600) | 0;
    if (table.uniform[hour] === 1 && table.earlierTzOffset[hour] === '') continue; // not repeated
    if (counts[sec]! < 2) counts[sec] = counts[sec]! + 1;
  }
  return counts;
}

/**
 * The day's own total of one intraday answer (`activities-<resource>[0].value`) in the column's
 * unit (distance and elevation in metres), or null when the answer has none or it cannot be
 * read. A day with no point and a zero total is no total: the tracker sent nothing that day.
 */
export function intradayDayTotal(day: IntradayDay): number | null {
  const total = day.dayTotal;
  if (total === undefined || total === null || !Number.isFinite(total)) return null;
  if (total === 0 && day.dataset.length === 0) return null;
  const factor = intradayFactor(day.resource, day.units);
  if (factor === null) return null;
  return factor === 1 ? total : Math.round(total * factor * 1e6) / 1e6;
}

/**
 * One `daily_summaries` row from the day totals the intraday answers of one user and local date
 * carried (steps, distance in m, calories in kcal; other resources' totals in sourceData), so
 * that minute sums can be reconciled with the day's own total without another request.
 * Null when no answer of the day carried a total.
 */
export function dailySummaryFromIntraday(user: Pick<FitbitUserContext, 'userId' | 'humanId'>, date: string, totals: ReadonlyMap<IntradayType, number>, seenAt: number): DailySummaryRecord | null {
  if (totals.size === 0) return null;
  const steps = totals.get('steps');
  const distance = totals.get('distance');
  const calories = totals.get('calories');
  return {
    id: `${INTRADAY_SOURCE}:${user.humanId}:${date}`,
    date,
    humanId: user.humanId,
    userId: user.userId,
    source: INTRADAY_SOURCE,
    duration: null,
    distance: distance ?? null,
    steps: steps === undefined ? null : Math.round(steps),
    calories: calories ?? null,
    vigorous: null,
    moderate: null,
    light: null,
    sedentary: null,
    sourceData: JSON.stringify({ from: 'fitbit-intraday', totals: Object.fromEntries(totals) }),
    createdAt: seenAt,
    updatedAt: seenAt,
  };
}
