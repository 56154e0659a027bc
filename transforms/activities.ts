// Fitbit activity-log record (API-REFERENCE.md §A.1) → `activities` row (§E).
//
// Choices, in the order of the columns:
// The source has validated the record (types, numbers ≥ 0, whole steps, known distanceUnit,
// an exact 64-bit logId); this parses its times and computes the columns.
// - id `fitbit-<logId>`: logId arrives as a decimal string (unsigned 64-bit) and stays one.
// - startTime is read with its own offset; tzOffset is that offset; date is its local date.
//   timeZone is the user's zone (users-file override, else profile): the record does not say.
// - duration is elapsed seconds (Fitbit `duration` ms / 1000) so that endTime − startTime =
//   duration; active time (activeDuration) is kept in sourceData and drives pace and speed.
// - distance in metres from distanceUnit. With unit "Steps" the logged value is a step count
//   and becomes steps × stride. Without a distance, on-foot activities (walking, hiking: walking
//   stride; running: running stride) get steps × stride and sourceData says so; other types
//   (a spin class also counts steps) get none.
// - pace (s/km) and speed (km/h) over active time, Fitbit's own formulas in metric.
import type { ActivityRecord, DeadLetter } from '../lib/schema.js';
import type { Checked } from '../lib/validate.js';
import type { DistanceUnit, FitbitUserContext, RawActivity, UnitSystem } from '../sources/fitbit/types.js';
import { FEET_TO_METRES, MILES_TO_METRES, cleanFloat, paceAndSpeed, strideMetres, type StrideKind } from './formulas.js';
import { parseIsoInstant, parseIsoWithOffset } from './time.js';

export const ACTIVITY_SOURCE = 'fitbit';

/** The `type` vocabulary of the activities dataset. */
export const ACTIVITY_TYPES = [
  'walking', 'running', 'cycling', 'swimming', 'hiking', 'elliptical', 'rowing', 'stair-climbing',
  'workout', 'yoga', 'pilates', 'dancing', 'martial-arts', 'skiing', 'skating', 'sport', 'other',
] as const;
export type ActivityType = (typeof ACTIVITY_TYPES)[number];

/**
 * activityName keywords, tried in order on the lower-cased name (whole words or word starts).
 * Order matters: "Treadmill Walk" is walking, "Walk/Run" counts as running (the faster part).
 */
export const ACTIVITY_NAME_KEYWORDS: ReadonlyArray<readonly [RegExp, ActivityType]> = [
  [/\b(run|running|jog|jogging|trail run)/, 'running'],
  [/\b(hike|hiking)\b/, 'hiking'],
  [/\b(walk|walking|stroll)/, 'walking'],
  [/\b(bike|biking|cycl|spinning|spin class|indoor cycling|mountain bik|bmx)/, 'cycling'],
  [/\b(swim)/, 'swimming'],
  [/\b(elliptical)/, 'elliptical'],
  [/\b(row|rowing|rower|kayak|canoe)/, 'rowing'],
  [/\b(stair|stairmaster|stairclimber|step machine)/, 'stair-climbing'],
  [/\b(yoga)/, 'yoga'],
  [/\b(pilates)/, 'pilates'],
  [/\b(danc|zumba)/, 'dancing'],
  [/\b(martial|karate|judo|taekwondo|kickbox|boxing|kung fu)/, 'martial-arts'],
  [/\b(ski|skiing|snowboard\w*)\b/, 'skiing'],
  [/\b(skat)/, 'skating'],
  [/\b(workout|weights|weight lifting|weight training|strength|circuit|interval|hiit|bootcamp|crossfit|aerobic|calisthenics|fitstar|core)/, 'workout'],
  [/\b(sport|tennis|soccer|football|basketball|volleyball|golf|badminton|squash|baseball|hockey|rugby|cricket)/, 'sport'],
];

/**
 * activityTypeId → type, used when the name has no keyword. 90013, 90009, 90001, 20047 and
 * 17589491 are confirmed (§A.8); the others are the commonly quoted ids, UNCONFIRMED.
 */
export const ACTIVITY_TYPE_IDS: Readonly<Record<number, ActivityType>> = {
  90013: 'walking',
  90009: 'running',
  90001: 'cycling',
  1071: 'cycling', // Outdoor Bike
  55001: 'cycling', // Spinning
  20047: 'elliptical',
  17589491: 'workout', // FitStar
  90024: 'swimming',
  90012: 'hiking',
  3000: 'workout',
  52000: 'yoga',
  15000: 'sport',
};

/** Maps a Fitbit activity to the vocabulary: name keywords first, then the type id, else other. */
export function activityType(activityName: unknown, activityTypeId?: unknown): ActivityType {
  if (typeof activityName === 'string') {
    const name = activityName.toLowerCase();
    for (const [pattern, type] of ACTIVITY_NAME_KEYWORDS) if (pattern.test(name)) return type;
  }
  if (typeof activityTypeId === 'number') {
    const byId = ACTIVITY_TYPE_IDS[activityTypeId];
    if (byId !== undefined) return byId;
  }
  return 'other';
}

/** Which stride turns steps into distance for a type, or null where steps say nothing of it. */
function strideKindFor(type: ActivityType): StrideKind | null {
  if (type === 'running') return 'running';
  if (type === 'walking' || type === 'hiking') return 'walking';
  return null;
}

/** distanceUnit (trimmed, lower-cased) → metres per unit, or 'steps' for a step count. */
const DISTANCE_UNITS: { readonly [U in DistanceUnit]: number | 'steps' } = {
  kilometer: 1000, kilometers: 1000, kilometre: 1000, kilometres: 1000, km: 1000,
  mile: MILES_TO_METRES, miles: MILES_TO_METRES, mi: MILES_TO_METRES,
  meter: 1, meters: 1, metre: 1, metres: 1, m: 1,
  yard: 0.9144, yards: 0.9144, yd: 0.9144,
  steps: 'steps', step: 'steps',
};
const PER_UNIT: ReadonlyMap<string, number | 'steps'> = new Map(Object.entries(DISTANCE_UNITS));

export type ActivityResult = { ok: true; record: ActivityRecord } | { ok: false; deadLetter: DeadLetter };

/** Fields that become columns (or the id) and so stay out of sourceData, with the *Link URLs. */
const COLUMN_FIELDS = new Set([
  'logId', 'startTime', 'duration', 'distance', 'steps', 'calories', 'pace', 'speed', 'lastModified',
]);

/** JSON with object keys sorted at every level: the same record always gives the same text. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/**
 * An id as an exact unsigned 64-bit decimal string, or null. Fitbit's logIds are checked by the
 * source's schema; sources whose ids arrive otherwise (Google Health exercise ids) use this.
 */
export function exactLogId(logId: unknown): string | null {
  let text: string;
  if (typeof logId === 'string') text = logId.trim();
  else if (typeof logId === 'bigint') text = logId.toString();
  else if (typeof logId === 'number' && Number.isSafeInteger(logId)) text = String(logId);
  else return null;
  if (!/^\d{1,20}$/.test(text)) return null;
  if (BigInt(text) > 0xffff_ffff_ffff_ffffn) return null;
  return BigInt(text).toString(); // drops leading zeros, keeps every digit that matters
}

function activityDeadLetter(reason: string, raw: unknown, user: FitbitUserContext, logId = logIdOf(raw)): DeadLetter {
  return {
    dataset: 'activities',
    reason,
    context: { stream: 'fitbit-activities', userId: user.userId, humanId: user.humanId, logId },
    raw,
  };
}

/** The logId of a record as sent, for the dead letter's context ('' when it has none). */
function logIdOf(raw: unknown): string {
  if (typeof raw !== 'object' || raw === null || !('logId' in raw)) return '';
  return typeof raw.logId === 'string' || typeof raw.logId === 'number' ? String(raw.logId) : '';
}

/**
 * Normalizes one activity-log record as the source checked it (types, numbers, units, logId).
 * Never throws: a record the source rejected, or whose times do not parse, comes back as a
 * dead letter with the reason.
 */
export function normalizeActivity(checked: Checked<RawActivity>, user: FitbitUserContext, seenAt: number): ActivityResult {
  if (!checked.ok) return { ok: false, deadLetter: activityDeadLetter(checked.reason, checked.raw, user) };
  const raw = checked.value;
  const fail = (reason: string): ActivityResult => ({ ok: false, deadLetter: activityDeadLetter(reason, checked.raw, user, raw.logId) });
  const start = parseIsoWithOffset(raw.startTime);
  if (start === null) return fail(`startTime ${JSON.stringify(raw.startTime)} is not an ISO date-time with an offset`);

  const durationMs = raw.duration;
  // Without activeDuration there is no pause information: elapsed time is the moving time.
  const activeMs = raw.activeDuration ?? durationMs;

  let updatedAt = seenAt;
  if (raw.lastModified !== undefined) {
    const t = parseIsoInstant(raw.lastModified);
    if (t === null) return fail(`lastModified ${JSON.stringify(raw.lastModified)} is not an ISO date-time with an offset`);
    updatedAt = t;
  }

  const type = activityType(raw.activityName, raw.activityTypeId);
  const units: UnitSystem = unitSystemOf(raw.distanceUnit, user.profileUnits);

  // Distance in metres.
  let distance: number | null = null;
  let distanceEstimate: string | null = null;
  const perUnit = raw.distanceUnit === undefined ? undefined : PER_UNIT.get(raw.distanceUnit.trim().toLowerCase());
  if (raw.distance !== undefined) {
    if (perUnit === 'steps') {
      // The logged value is a step count (distanceUnit "Steps" on manual walks/runs).
      const kind: StrideKind = type === 'running' ? 'running' : 'walking';
      const stride = strideMetres(user.profile, user.profileUnits, kind);
      if (stride === null) return fail(`distance is given in Steps but the profile has no ${kind} stride length`);
      distance = cleanFloat(raw.distance * stride);
      distanceEstimate = `distance ${raw.distance} Steps × ${kind} stride ${stride} m`;
    } else {
      // No distanceUnit: the unit system of the request (en_US miles, else km).
      const factor = perUnit ?? (user.profileUnits === 'en_US' ? MILES_TO_METRES : 1000);
      distance = cleanFloat(raw.distance * factor);
    }
  } else if (raw.steps !== undefined && raw.steps > 0) {
    const kind = strideKindFor(type);
    const stride = kind === null ? null : strideMetres(user.profile, user.profileUnits, kind);
    if (kind !== null && stride !== null) {
      distance = cleanFloat(raw.steps * stride);
      distanceEstimate = `steps × ${kind} stride ${stride} m`;
    }
  }

  // Fitbit's formulas over active time (§C.1).
  const activeSeconds = activeMs / 1000;
  const { pace, speed } = paceAndSpeed(distance, activeSeconds);

  const sourceData: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (COLUMN_FIELDS.has(key) || key.endsWith('Link') || value === undefined) continue;
    sourceData[key] = value;
  }
  if (raw.elevationGain !== undefined) {
    // Metres: en_US responses give feet.
    sourceData.elevationGain = cleanFloat(units === 'en_US' ? raw.elevationGain * FEET_TO_METRES : raw.elevationGain);
  }
  if (distanceEstimate !== null) sourceData.distanceEstimate = distanceEstimate;
  if (raw.distance !== undefined) sourceData.originalDistance = raw.distance;

  const startTime = start.epochMs;
  const record: ActivityRecord = {
    date: start.localDate,
    id: `${ACTIVITY_SOURCE}-${raw.logId}`,
    humanId: user.humanId,
    userId: user.userId,
    source: ACTIVITY_SOURCE,
    type,
    startTime,
    endTime: startTime + Math.round(durationMs),
    tzOffset: start.tzOffset,
    timeZone: typeof user.timeZone === 'string' && user.timeZone !== '' ? user.timeZone : null,
    duration: durationMs / 1000,
    distance,
    steps: raw.steps ?? null,
    calories: raw.calories ?? null,
    pace,
    speed,
    sourceData: stableStringify(sourceData),
    createdAt: seenAt,
    updatedAt,
  };
  return { ok: true, record };
}

/** The unit system of an activity record: its distanceUnit says it, else the request's. */
function unitSystemOf(distanceUnit: string | undefined, fallback: UnitSystem): UnitSystem {
  const u = distanceUnit?.trim().toLowerCase();
  if (u === 'mile' || u === 'miles' || u === 'mi') return 'en_US';
  if (u === 'kilometer' || u === 'kilometers' || u === 'km') return fallback === 'en_US' ? 'metric' : fallback;
  return fallback;
}
