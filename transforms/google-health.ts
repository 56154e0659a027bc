// Google Health API v4 records → the existing datasets (CONTRACTS.md "Google Health API v4").
// Pure functions; bad records come back as dead letters, never as exceptions.
//
// - Time: every point carries its UTC instant and its own UTC offset (§1.6). The local date and
//   wall time are instant + that offset, never the user's current zone: history recorded while
//   travelling lands on the local day it was recorded in. timeZone is the user's zone (settings,
//   or the users file's) when its offset at that instant is the point's; otherwise a fixed zone
//   of that offset (`Etc/GMT+4` is −04:00; `GMT+05:30` for offsets of part hours), so that
//   `timezone(timeZone, timestamp)` always gives the point's wall time back.
// - Ids: the legacy Fitbit point of the same user, type and local minute has the same id
//   (transforms/intraday.ts intradayId), so both sources merge into one row per minute.
// - Absent is not zero (§1.11): a minute the API did not serve has no row; a day without a
//   roll-up value has nulls; a served 0 is a row with 0.
import { packedRecords, type PartitionColumns } from '../lib/batch.js';
import { type ActivityRecord, type DailySummaryRecord, type DeadLetter, type IntradayRecord, type IntradayRowType } from '../lib/schema.js';
import type { GhPointPage } from '../sources/google-health/points.js';
import type { GhDailyRollup, GhExercise, GhIntradayType, GhPoint, InvalidRecord } from '../sources/google-health/types.js';
import { activityType, exactLogId, stableStringify, type ActivityType } from './activities.js';
import { cleanFloat, paceAndSpeed } from './formulas.js';
import { dictIndex, intradayBuffers, intradayIdPrefix, packIntradayTable } from './intraday.js';
import { buildDayHourTable, formatOffset, resolveInDay, utcDateString, zoneOffsetMinutes, type DayHourTable } from './time.js';

export const GOOGLE_HEALTH_SOURCE = 'google-health';

/** Google's data type → the intraday `type` and `unit`, and the factor from Google's unit. */
export const GH_INTRADAY: { readonly [T in GhIntradayType]: { type: IntradayRowType; unit: string; factor: number } } = {
  steps: { type: 'steps', unit: 'count', factor: 1 },
  distance: { type: 'distance', unit: 'm', factor: 1 / 1000 },
  floors: { type: 'floors', unit: 'count', factor: 1 },
  altitude: { type: 'elevation', unit: 'm', factor: 1 / 1000 },
  'active-energy-burned': { type: 'active-calories', unit: 'kcal', factor: 1 },
  'heart-rate': { type: 'heart-rate', unit: 'bpm', factor: 1 },
};

/** Who the records belong to. */
export interface GhUserContext {
  humanId: string;
  /** The source's own id: healthUserId. */
  userId: string;
  /** IANA zone: the users file's, else the settings'. */
  timeZone: string;
}

const DURATION = /^(-?\d+(?:\.\d{1,9})?)s$/;

/** "-25200s" → seconds; null when malformed or beyond ±18 h. */
export function parseDurationSeconds(text: string): number | null {
  const m = DURATION.exec(text);
  if (!m) return null;
  const s = Number(m[1]);
  return Number.isFinite(s) ? s : null;
}

/** An offset duration → whole minutes east of UTC; null when malformed, not whole minutes or beyond ±18 h. */
export function parseOffsetMinutes(text: string): number | null {
  const s = parseDurationSeconds(text);
  if (s === null || !Number.isInteger(s) || s % 60 !== 0 || Math.abs(s) > 18 * 3600) return null;
  return s / 60;
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** The local date and HH:mm:ss of an instant in a fixed offset. */
export function localParts(epochMs: number, offsetMinutes: number): { date: string; time: string; wallMs: number } {
  const wallMs = epochMs + offsetMinutes * 60_000;
  const d = new Date(wallMs);
  return { date: utcDateString(wallMs), time: `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`, wallMs };
}

/** A zone whose offset is always `offsetMinutes`: `Etc/GMT+4` for −04:00 (POSIX sign), `GMT+05:30` otherwise. */
export function fixedOffsetZone(offsetMinutes: number): string {
  if (offsetMinutes === 0) return 'UTC';
  if (offsetMinutes % 60 === 0 && Math.abs(offsetMinutes) <= 12 * 60) return `Etc/GMT${offsetMinutes > 0 ? '-' : '+'}${Math.abs(offsetMinutes) / 60}`;
  return `GMT${formatOffset(offsetMinutes)}`;
}

/** Per user and local date: the hour table of the user's zone (for repeated wall times). */
export class ZoneDays {
  private readonly tables = new Map<string, DayHourTable | null>();
  constructor(readonly zone: string) {}

  /** Whether a wall time (date + seconds of the day) occurs twice in the zone (a fall-back hour). */
  repeated(date: string, wallMs: number): boolean {
    const check = this.repeatedOn(date);
    return check !== null && check(wallMs);
  }

  /** The check of `repeated` for one date, or null when no wall time of that date occurs twice. */
  repeatedOn(date: string): ((wallMs: number) => boolean) | null {
    let table = this.tables.get(date);
    if (table === undefined) {
      table = buildDayHourTable(this.zone, date);
      this.tables.set(date, table);
    }
    if (table === null || !table.hasRepeated) return null;
    const t = table;
    return (wallMs) => {
      const hour = Math.floor((wallMs - t.wallMidnightMs) / 3_600_000);
      if (t.uniform[hour] === 1) return t.earlierTzOffset[hour] !== '';
      return resolveInDay(t, wallMs).earlier !== null;
    };
  }

  /**
   * The zone's offset over each UTC day, or NaN for a day in which it changes: two Intl look-ups
   * a day instead of one per quarter hour of points (no zone changes its offset and back within
   * one day).
   */
  private readonly days = new Map<number, number>();
  private lastDay = Number.NaN;
  private lastDayOffset = Number.NaN;
  /** On a day of a change: the offset per quarter hour (every offset change since 1970 falls on one). */
  private readonly quarters = new Map<number, number>();

  /** The zone to write for an instant seen in `offsetMinutes`. */
  zoneFor(epochMs: number, offsetMinutes: number): string {
    const day = Math.floor(epochMs / 86_400_000);
    if (day !== this.lastDay) {
      let o = this.days.get(day);
      if (o === undefined) {
        const start = zoneOffsetMinutes(this.zone, day * 86_400_000);
        o = start === zoneOffsetMinutes(this.zone, (day + 1) * 86_400_000) ? start : Number.NaN;
        this.days.set(day, o);
      }
      this.lastDay = day;
      this.lastDayOffset = o;
    }
    let zoneOffset = this.lastDayOffset;
    if (Number.isNaN(zoneOffset)) {
      const q = Math.floor(epochMs / 900_000);
      const known = this.quarters.get(q);
      zoneOffset = known ?? zoneOffsetMinutes(this.zone, q * 900_000);
      if (known === undefined) this.quarters.set(q, zoneOffset);
    }
    return zoneOffset === offsetMinutes ? this.zone : fixedOffsetZone(offsetMinutes);
  }
}

export interface GhIntradayResult {
  records: IntradayRecord[];
  deadLetters: DeadLetter[];
}

export interface GhIntradayColumnsResult {
  /** The page's rows, one partition (local date) each, in COLUMNS.intraday order. */
  partitions: PartitionColumns[];
  deadLetters: DeadLetter[];
}

const DAY_MS = 86_400_000;

/** "HH:MM:00" of every minute of the day, built once: most points start on a minute. */
const MINUTE_TIMES: readonly string[] = Array.from({ length: 1440 }, (_, m) => `${pad2(Math.floor(m / 60))}:${pad2(m % 60)}:00`);

/**
 * The ids already produced for one user and window, per type: a second point of the same local
 * minute (two offsets, one wall time) is a dead letter rather than a silent overwrite. One flag
 * per second of each local day; ids that carry an offset (a fall-back day's repeated hour) by id.
 */
export class GhSeenIds {
  private readonly days = new Map<string, Uint8Array>();
  readonly withOffset = new Set<string>();

  day(type: string, date: string): Uint8Array {
    const key = `${type} ${date}`;
    let flags = this.days.get(key);
    if (flags === undefined) {
      flags = new Uint8Array(86_400);
      this.days.set(key, flags);
    }
    return flags;
  }
}

/**
 * One checked page of points → the columns of each local date it touches, for the sink to take
 * as they are (no row object per point; a page of 10,000 minutes spans about a week). The rows
 * are the ones `normalizeGhPoints` reads back as records. Never throws for bad data: a point
 * whose instant, offset or value cannot be read, or whose local minute is taken, is a dead
 * letter (its JSON as sent), and the rest of the page goes on.
 */
export function normalizeGhPointColumns(page: GhPointPage, user: GhUserContext, zone: ZoneDays, seenAt: number, seen: GhSeenIds): GhIntradayColumnsResult {
  const deadLetters: DeadLetter[] = [];
  const spec = GH_INTRADAY[page.type];
  // The point as the source read it (its JSON is not kept past the page check).
  const fail = (i: number, reason: string): void => {
    const startMs = page.startMs[i]!;
    const raw = { type: page.type, startTime: Number.isNaN(startMs) ? null : new Date(startMs).toISOString(), startUtcOffset: page.offsets[page.offsetIndex[i]!], value: page.values[i] };
    deadLetters.push({ dataset: 'intraday', reason, context: { stream: 'google-health-intraday', humanId: user.humanId, userId: user.userId, dataType: page.type }, raw });
  };
  for (const letter of invalidToDeadLetters('intraday', 'google-health-intraday', user, page.invalid, { dataType: page.type })) deadLetters.push(letter);
  // Each distinct offset (a page holds a handful) parsed and formatted once.
  const offsetMinutes = page.offsets.map(parseOffsetMinutes);
  const offsetText = offsetMinutes.map((m) => (m === null ? '' : formatOffset(m)));
  const { length: n, startMs, offsetIndex, values } = page;

  // Pass 1: each point's local day (days since 1970 of its wall time), or NaN for a dead letter;
  // the days in the order they come, with their counts.
  const dayOf = new Float64Array(n);
  const days: number[] = [];
  const counts: number[] = [];
  let lastDay = Number.NaN;
  let lastSlot = -1;
  for (let i = 0; i < n; i++) {
    dayOf[i] = Number.NaN;
    const instant = startMs[i]!;
    const offset = offsetMinutes[offsetIndex[i]!];
    if (Number.isNaN(instant)) {
      fail(i, 'startTime is not an instant');
      continue;
    }
    if (offset === null || offset === undefined) {
      fail(i, `UTC offset ${JSON.stringify(page.offsets[offsetIndex[i]!])} is not whole minutes within ±18 h`);
      continue;
    }
    if (!Number.isFinite(values[i]!)) {
      fail(i, `value ${values[i]} is not a number`);
      continue;
    }
    const day = Math.floor((instant + offset * 60_000) / DAY_MS);
    dayOf[i] = day;
    if (day !== lastDay) {
      lastDay = day;
      lastSlot = days.indexOf(day);
      if (lastSlot < 0) {
        lastSlot = days.push(day) - 1;
        counts.push(0);
      }
    }
    counts[lastSlot] = counts[lastSlot]! + 1;
  }

  // Pass 2: one partition per local day.
  const partitions: PartitionColumns[] = [];
  const interval = page.type === 'heart-rate' ? 0 : 60;
  for (let g = 0; g < days.length; g++) {
    const day = days[g]!;
    const date = utcDateString(day * DAY_MS);
    const wallMidnight = day * DAY_MS;
    const idPrefix = intradayIdPrefix(user.humanId, spec.type, date);
    const flags = seen.day(page.type, date);
    const repeated = zone.repeatedOn(date);
    const cap = counts[g]!;
    const buffers = intradayBuffers(cap);
    const { idParts, idLengths, timestamps, values: rowValues, offsetIndex: tzIndex, offsetDict: tzDict } = buffers;
    const zoneIndex = new Int32Array(cap);
    const zoneDict: string[] = [];
    let lastOffsetIndex = -1;
    let lastTz = -1;
    let lastZone = '';
    let lastZoneIndex = -1;
    let rows = 0;
    for (let i = 0; i < n; i++) {
      if (dayOf[i] !== day) continue;
      const instant = startMs[i]!;
      const oi = offsetIndex[i]!;
      const offset = offsetMinutes[oi]!;
      const wallMs = instant + offset * 60_000;
      const ms = wallMs - wallMidnight;
      const sec = Math.floor(ms / 1000);
      const time = ms % 60_000 === 0 ? MINUTE_TIMES[ms / 60_000]! : `${pad2(Math.floor(sec / 3600))}:${pad2(Math.floor(sec / 60) % 60)}:${pad2(sec % 60)}`;
      const tzOffset = offsetText[oi]!;
      let idLength = idPrefix.length + time.length;
      if (repeated !== null && repeated(wallMs)) {
        const id = idPrefix + time + tzOffset;
        if (seen.withOffset.has(id)) {
          fail(i, `a second point for local time ${date}T${time} (${tzOffset}): the id ${id} is taken`);
          continue;
        }
        seen.withOffset.add(id);
        idParts.push(idPrefix, time, tzOffset);
        idLength += tzOffset.length;
      } else {
        if (flags[sec] !== 0) {
          fail(i, `a second point for local time ${date}T${time} (${tzOffset}): the id ${idPrefix + time} is taken`);
          continue;
        }
        flags[sec] = 1;
        idParts.push(idPrefix, time);
      }
      if (oi !== lastOffsetIndex) {
        lastOffsetIndex = oi;
        lastTz = dictIndex(tzDict, tzOffset);
      }
      const timeZone = zone.zoneFor(instant, offset);
      if (timeZone !== lastZone) {
        lastZone = timeZone;
        lastZoneIndex = dictIndex(zoneDict, timeZone);
      }
      idLengths[rows] = idLength;
      timestamps[rows] = instant;
      // mm → m: an exact decimal, no float noise (3590400 mm → 3590.4).
      rowValues[rows] = spec.factor === 1 ? values[i]! : cleanFloat(values[i]! * spec.factor);
      tzIndex[rows] = lastTz;
      zoneIndex[rows] = lastZoneIndex;
      rows++;
    }
    if (rows === 0) continue;
    const table = packIntradayTable(rows, buffers, {
      humanId: user.humanId, userId: user.userId, source: GOOGLE_HEALTH_SOURCE, type: spec.type, unit: spec.unit,
      timeZone: { dict: zoneDict, index: zoneIndex }, interval, seenAt,
    });
    partitions.push({ kind: 'columns', date, humanId: user.humanId, table });
  }
  return { partitions, deadLetters };
}

/**
 * Points of one or more types → intraday rows: normalizeGhPointColumns read back as records
 * (tests and callers with a few points; the pipeline takes the columns). `seen` holds the ids
 * already produced for this user and window.
 */
export function normalizeGhPoints(points: readonly GhPoint[], user: GhUserContext, zone: ZoneDays, seenAt: number, seen: GhSeenIds): GhIntradayResult {
  const records: IntradayRecord[] = [];
  const deadLetters: DeadLetter[] = [];
  // Runs of one type, in the order given.
  for (let from = 0; from < points.length; ) {
    const type = points[from]!.type;
    let to = from;
    while (to < points.length && points[to]!.type === type) to++;
    const run = points.slice(from, to);
    const offsets: string[] = [];
    const page: GhPointPage = {
      type,
      length: run.length,
      startMs: Float64Array.from(run, (p) => Date.parse(p.startTime)),
      offsetIndex: Int32Array.from(run, (p) => (offsets.includes(p.startUtcOffset) ? offsets.indexOf(p.startUtcOffset) : offsets.push(p.startUtcOffset) - 1)),
      offsets,
      values: Float64Array.from(run, (p) => (typeof p.value === 'number' ? p.value : Number(p.value))),
      invalid: [],
    };
    const result = normalizeGhPointColumns(page, user, zone, seenAt, seen);
    for (const part of result.partitions) records.push(...packedRecords('intraday', part.date, part.table));
    deadLetters.push(...result.deadLetters);
    from = to;
  }
  return { records, deadLetters };
}

/** Records that failed their schema at the source → dead letters of a dataset. */
export function invalidToDeadLetters(dataset: DeadLetter['dataset'], stream: string, user: { humanId: string }, invalid: readonly InvalidRecord[], extra: Record<string, string> = {}): DeadLetter[] {
  return invalid.map((i) => ({ dataset, reason: i.reason, context: { stream, humanId: user.humanId, ...extra }, raw: i.raw }));
}

/** Google's exerciseType (§1.5.1: 182 values, more may come) → the activities vocabulary. */
export const EXERCISE_TYPES: Readonly<Record<string, ActivityType>> = {
  RUNNING: 'running', TREADMILL: 'running', WALKING: 'walking', HIKING: 'hiking',
  BIKING: 'cycling', OUTDOOR_BIKE: 'cycling', SPINNING: 'cycling', MOUNTAIN_BIKING: 'cycling', INDOOR_BIKE: 'cycling',
  SWIMMING: 'swimming', OPEN_WATER_SWIMMING: 'swimming', POOL_SWIMMING: 'swimming',
  ELLIPTICAL: 'elliptical', ROWING: 'rowing', ROWING_MACHINE: 'rowing', STAIR_CLIMBING: 'stair-climbing',
  YOGA: 'yoga', PILATES: 'pilates', DANCING: 'dancing', MARTIAL_ARTS: 'martial-arts', KICKBOXING: 'martial-arts',
  SKIING: 'skiing', SNOWBOARDING: 'skiing', SKATING: 'skating',
  WEIGHTLIFTING: 'workout', STRENGTH_TRAINING: 'workout', WORKOUT: 'workout', HIIT: 'workout', CIRCUIT_TRAINING: 'workout', CROSSFIT: 'workout',
  TENNIS: 'sport', SOCCER: 'sport', BASKETBALL: 'sport', GOLF: 'sport', VOLLEYBALL: 'sport',
};

/** exerciseType → type: the table, else the display name's keywords (OTHER holds the user's text), else the enum's words. */
export function exerciseActivityType(exerciseType: string, displayName?: string): ActivityType {
  const mapped = EXERCISE_TYPES[exerciseType];
  if (mapped !== undefined) return mapped;
  const byName = activityType(displayName);
  if (byName !== 'other') return byName;
  return activityType(exerciseType.toLowerCase().replace(/_/g, ' '));
}

export type GhActivityResult = { ok: true; record: ActivityRecord } | { ok: false; deadLetter: DeadLetter };

/** One exercise session → an activities row (pace and speed over the active duration). */
export function normalizeExercise(e: GhExercise, user: GhUserContext, zone: ZoneDays, seenAt: number): GhActivityResult {
  const fail = (reason: string): GhActivityResult => ({
    ok: false,
    deadLetter: { dataset: 'activities', reason, context: { stream: 'google-health-activities', humanId: user.humanId, userId: user.userId, exerciseId: e.id }, raw: e },
  });
  const start = Date.parse(e.interval.startTime);
  const end = Date.parse(e.interval.endTime);
  const offset = parseOffsetMinutes(e.interval.startUtcOffset);
  if (Number.isNaN(start) || Number.isNaN(end)) return fail('interval startTime/endTime is not an instant');
  if (end < start) return fail(`interval ends (${e.interval.endTime}) before it starts (${e.interval.startTime})`);
  if (offset === null) return fail(`startUtcOffset ${JSON.stringify(e.interval.startUtcOffset)} is not whole minutes within ±18 h`);
  const elapsed = (end - start) / 1000;
  const activeSeconds = e.activeDuration === undefined ? elapsed : parseDurationSeconds(e.activeDuration);
  if (activeSeconds === null || activeSeconds < 0) return fail(`activeDuration ${JSON.stringify(e.activeDuration)} is not a non-negative duration`);
  // Ids that look like the legacy logIds (decimal, ≤ 2^64) are written like them: `fitbit-<logId>`.
  const id = /^\d+$/.test(e.id) ? exactLogId(e.id) : e.id;
  if (id === null) return fail(`exercise id ${e.id} is beyond 64 bits`);
  const m = e.metricsSummary;
  const distance = m.distanceMillimeters === undefined ? null : cleanFloat(m.distanceMillimeters / 1000);
  const { pace, speed } = paceAndSpeed(distance, activeSeconds);
  const steps = m.steps === undefined ? null : Number(m.steps);
  let updatedAt = seenAt;
  if (e.updateTime !== undefined) updatedAt = Date.parse(e.updateTime);
  const sourceData: Record<string, unknown> = {
    exerciseType: e.exerciseType,
    activeDuration: activeSeconds,
    endUtcOffset: e.interval.endUtcOffset,
  };
  if (e.displayName !== undefined) sourceData.displayName = e.displayName;
  if (e.notes !== undefined) sourceData.notes = e.notes;
  if (e.createTime !== undefined) sourceData.createTime = e.createTime;
  if (e.exerciseMetadata !== undefined) sourceData.exerciseMetadata = e.exerciseMetadata;
  if (e.dataSource !== undefined) sourceData.dataSource = e.dataSource;
  const { distanceMillimeters: _d, steps: _s, caloriesKcal: _c, elevationGainMillimeters, ...rest } = m;
  if (Object.keys(rest).length > 0) sourceData.metricsSummary = rest;
  if (elevationGainMillimeters !== undefined) sourceData.elevationGain = cleanFloat(elevationGainMillimeters / 1000);
  const { date } = localParts(start, offset);
  return {
    ok: true,
    record: {
      date,
      id: `fitbit-${id}`,
      humanId: user.humanId,
      userId: user.userId,
      source: GOOGLE_HEALTH_SOURCE,
      type: exerciseActivityType(e.exerciseType, e.displayName),
      startTime: start,
      endTime: end,
      tzOffset: formatOffset(offset),
      timeZone: zone.zoneFor(start, offset),
      duration: elapsed,
      distance,
      steps,
      calories: m.caloriesKcal ?? null,
      pace,
      speed,
      sourceData: stableStringify(sourceData),
      createdAt: seenAt,
      updatedAt,
    },
  };
}

/** The three roll-ups of one local date, as far as they came. */
export interface GhDayRollups {
  steps?: GhDailyRollup;
  distance?: GhDailyRollup;
  'total-calories'?: GhDailyRollup;
}

/**
 * One local date's roll-ups → a daily_summaries row (id `google-health:<humanId>:<date>`). A value
 * the roll-up did not carry is null (no data that day), a carried 0 is 0.
 */
export function normalizeDailyRollups(date: string, r: GhDayRollups, user: GhUserContext, seenAt: number): DailySummaryRecord {
  const steps = r.steps?.steps;
  const mm = r.distance?.distanceMm;
  const kcal = r['total-calories']?.kcal;
  const sourceData: Record<string, unknown> = { rollup: 'dailyRollUp' };
  if (steps !== undefined) sourceData.stepsCountSum = steps;
  if (mm !== undefined) sourceData.distanceMillimetersSum = mm;
  if (kcal !== undefined) sourceData.totalCaloriesKcalSum = kcal;
  return {
    date,
    id: `${GOOGLE_HEALTH_SOURCE}:${user.humanId}:${date}`,
    humanId: user.humanId,
    userId: user.userId,
    source: GOOGLE_HEALTH_SOURCE,
    duration: null,
    distance: mm === undefined ? null : cleanFloat(Number(mm) / 1000),
    steps: steps === undefined ? null : Number(steps),
    calories: kcal ?? null,
    vigorous: null,
    moderate: null,
    light: null,
    sedentary: null,
    sourceData: stableStringify(sourceData),
    createdAt: seenAt,
    updatedAt: seenAt,
  };
}
