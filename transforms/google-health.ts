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
import type { ActivityRecord, DailySummaryRecord, DeadLetter, IntradayRecord, IntradayRowType } from '../lib/schema.js';
import type { GhDailyRollup, GhExercise, GhIntradayType, GhPoint, InvalidRecord } from '../sources/google-health/types.js';
import { activityType, exactLogId, stableStringify, type ActivityType } from './activities.js';
import { cleanFloat, paceAndSpeed } from './formulas.js';
import { intradayId } from './intraday.js';
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
    let table = this.tables.get(date);
    if (table === undefined) {
      table = buildDayHourTable(this.zone, date);
      this.tables.set(date, table);
    }
    if (table === null || !table.hasRepeated) return false;
    const hour = Math.floor((wallMs - table.wallMidnightMs) / 3_600_000);
    if (table.uniform[hour] === 1) return table.earlierTzOffset[hour] !== '';
    return resolveInDay(table, wallMs).earlier !== null;
  }

  /** The zone's offset per quarter hour (every offset change since 1970 falls on one): one Intl look-up per 15 minutes of points. */
  private readonly quarters = new Map<number, number>();

  /** The zone to write for an instant seen in `offsetMinutes`. */
  zoneFor(epochMs: number, offsetMinutes: number): string {
    const q = Math.floor(epochMs / 900_000);
    let zoneOffset = this.quarters.get(q);
    if (zoneOffset === undefined) {
      zoneOffset = zoneOffsetMinutes(this.zone, q * 900_000);
      this.quarters.set(q, zoneOffset);
    }
    return zoneOffset === offsetMinutes ? this.zone : fixedOffsetZone(offsetMinutes);
  }
}

export interface GhIntradayResult {
  records: IntradayRecord[];
  deadLetters: DeadLetter[];
}

/**
 * Points of one type → intraday rows. `seen` holds the ids already produced for this user and
 * window: a second point of the same local minute (two offsets, one wall time) is a dead letter
 * rather than a silent overwrite.
 */
export function normalizeGhPoints(points: readonly GhPoint[], user: GhUserContext, zone: ZoneDays, seenAt: number, seen: Set<string>): GhIntradayResult {
  const records: IntradayRecord[] = [];
  const deadLetters: DeadLetter[] = [];
  const fail = (p: GhPoint, reason: string): void => {
    deadLetters.push({ dataset: 'intraday', reason, context: { stream: 'google-health-intraday', humanId: user.humanId, userId: user.userId, dataType: p.type }, raw: p });
  };
  // A page holds a handful of distinct offsets: parse each once.
  const offsets = new Map<string, number | null>();
  for (const p of points) {
    const spec = GH_INTRADAY[p.type];
    const instant = Date.parse(p.startTime);
    let offset = offsets.get(p.startUtcOffset);
    if (offset === undefined) {
      offset = parseOffsetMinutes(p.startUtcOffset);
      offsets.set(p.startUtcOffset, offset);
    }
    if (Number.isNaN(instant)) {
      fail(p, `startTime ${JSON.stringify(p.startTime)} is not an instant`);
      continue;
    }
    if (offset === null) {
      fail(p, `UTC offset ${JSON.stringify(p.startUtcOffset)} is not whole minutes within ±18 h`);
      continue;
    }
    const raw = typeof p.value === 'number' ? p.value : Number(p.value);
    if (!Number.isFinite(raw)) {
      fail(p, `value ${JSON.stringify(p.value)} is not a number`);
      continue;
    }
    const { date, time, wallMs } = localParts(instant, offset);
    const tzOffset = formatOffset(offset);
    const id = intradayId(user.humanId, spec.type, date, time, zone.repeated(date, wallMs) ? tzOffset : undefined);
    if (seen.has(id)) {
      fail(p, `a second point for local time ${date}T${time} (${tzOffset}): the id ${id} is taken`);
      continue;
    }
    seen.add(id);
    records.push({
      date,
      id,
      humanId: user.humanId,
      userId: user.userId,
      source: GOOGLE_HEALTH_SOURCE,
      type: spec.type,
      timestamp: instant,
      tzOffset,
      timeZone: zone.zoneFor(instant, offset),
      // mm → m: an exact decimal, no float noise (3590400 mm → 3590.4).
      value: spec.factor === 1 ? raw : cleanFloat(raw * spec.factor),
      unit: spec.unit,
      interval: p.type === 'heart-rate' ? 0 : 60,
      level: null,
      mets: null,
      estimated: null,
      createdAt: seenAt,
      updatedAt: seenAt,
    });
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
