// Time helpers for the normalizers: strict ISO parsing with offsets, "±hh:mm" formatting, and
// the conversion of a local wall-clock time in an IANA zone to a UTC instant (zone offsets from
// the built-in Intl, i.e. ICU).
//
// Wall-clock rule (the one ICU applies, and so DuckDB's `TIMESTAMP … AT TIME ZONE zone`;
// Temporal calls it disambiguation 'later'):
// - a repeated wall time (fall-back day) maps to the LATER of its two instants, i.e. it is read
//   with the offset in force after the transition (2016-11-06 01:30 America/Los_Angeles →
//   09:30Z, -08:00);
// - a skipped wall time (spring-forward day) is read with the offset in force BEFORE the
//   transition, which moves it forward by the gap (2016-03-13 02:30 America/Los_Angeles →
//   10:30Z, the same instant as 03:30 PDT).
// Both cases are "the later of the candidate instants w − offsetBefore and w − offsetAfter".
// The intraday normalizer departs from this only when a dataset holds the repeated hour twice:
// then the first pass is the earlier instant (see intraday.ts).

const MS_PER_MINUTE = 60_000;
const MS_PER_HOUR = 3_600_000;
const MS_PER_DAY = 86_400_000;

export interface LocalDate {
  year: number;
  month: number;
  day: number;
}

/** Parses a strict `YYYY-MM-DD` calendar date; null when malformed or not a real date. */
export function parseLocalDate(text: unknown): LocalDate | null {
  if (typeof text !== 'string') return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  return { year, month, day };
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function pad4(n: number): string {
  return String(n).padStart(4, '0');
}

/** `YYYY-MM-DD` of the UTC calendar day that contains `ms` (callers shift by the offset first). */
export function utcDateString(ms: number): string {
  const d = new Date(ms);
  return `${pad4(d.getUTCFullYear())}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
}

/** Offset in minutes → `±hh:mm` (UTC is `+00:00`). Sub-minute offsets (old LMT) are rounded. */
export function formatOffset(offsetMinutes: number): string {
  const total = Math.round(offsetMinutes);
  const sign = total < 0 ? '-' : '+';
  const abs = Math.abs(total);
  return `${sign}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

/** `Z`, `±hh:mm`, `±hhmm` or `±hh` → minutes east of UTC; null when malformed. */
export function parseOffset(text: unknown): number | null {
  if (typeof text !== 'string') return null;
  if (text === 'Z' || text === 'z') return 0;
  const m = /^([+-])(\d{2})(?::?(\d{2}))?$/.exec(text);
  if (!m) return null;
  const hours = Number(m[2]);
  const minutes = m[3] === undefined ? 0 : Number(m[3]);
  if (hours > 18 || minutes > 59) return null;
  const total = hours * 60 + minutes;
  return m[1] === '-' ? -total : total;
}

export interface ParsedInstant {
  /** UTC instant, ms since the epoch. */
  epochMs: number;
  /** The offset written in the text, minutes east of UTC. */
  offsetMinutes: number;
  /** The offset as `±hh:mm`. */
  tzOffset: string;
  /** The calendar date of the wall-clock part (the local date in that offset). */
  localDate: string;
}

const ISO_WITH_OFFSET =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)$/;

/**
 * Strict ISO-8601 date-time that carries its own offset (`…Z` or `…±hh:mm`). A text without an
 * offset is rejected: it would otherwise be read in the machine's zone.
 */
export function parseIsoWithOffset(text: unknown): ParsedInstant | null {
  if (typeof text !== 'string') return null;
  const m = ISO_WITH_OFFSET.exec(text);
  if (!m) return null;
  const date = parseLocalDate(`${m[1]}-${m[2]}-${m[3]}`);
  if (!date) return null;
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (hour > 23 || minute > 59 || second > 59) return null;
  // Fractions finer than a millisecond are truncated: timestamps are integer ms.
  const millis = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  const offsetMinutes = parseOffset(m[8]);
  if (offsetMinutes === null) return null;
  const wall = Date.UTC(date.year, date.month - 1, date.day, hour, minute, second, millis);
  return {
    epochMs: wall - offsetMinutes * MS_PER_MINUTE,
    offsetMinutes,
    tzOffset: formatOffset(offsetMinutes),
    localDate: `${m[1]}-${m[2]}-${m[3]}`,
  };
}

/** The epoch ms of an ISO text with an offset, or null. */
export function parseIsoInstant(text: unknown): number | null {
  const parsed = parseIsoWithOffset(text);
  return parsed === null ? null : parsed.epochMs;
}

// Offsets come from Intl's "longOffset" zone name ("GMT-08:00"): the ICU data that luxon reads
// too, but about four times faster than luxon's formatToParts path (≈3 µs against ≈13 µs here).
// One formatter per zone, created on first use and kept: a memo that never changes a result.
const offsetFormatters = new Map<string, Intl.DateTimeFormat | null>();

function offsetFormatter(zone: string): Intl.DateTimeFormat | null {
  let f = offsetFormatters.get(zone);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset', hour: 'numeric' });
    } catch {
      f = null; // RangeError: not a zone this runtime knows
    }
    offsetFormatters.set(zone, f);
  }
  return f;
}

/** Whether `zone` is an IANA zone name this runtime knows. */
export function isValidTimeZone(zone: unknown): zone is string {
  return typeof zone === 'string' && zone.length > 0 && offsetFormatter(zone) !== null;
}

/**
 * The offset (minutes east of UTC, fractional for the odd pre-1900 LMT offset with seconds)
 * in force in `zone` at the instant `epochMs`; NaN for an unknown zone.
 */
export function zoneOffsetMinutes(zone: string, epochMs: number): number {
  const f = offsetFormatter(zone);
  if (f === null) return Number.NaN;
  const text = f.format(epochMs);
  const at = text.lastIndexOf('GMT');
  if (at < 0) return Number.NaN;
  if (at + 3 === text.length) return 0; // "GMT" alone
  const m = /^([+\-\u2212])(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?$/.exec(text.slice(at + 3));
  if (m === null) return Number.NaN;
  const minutes = Number(m[2]) * 60 + (m[3] === undefined ? 0 : Number(m[3])) + (m[4] === undefined ? 0 : Number(m[4]) / 60);
  return m[1] === '+' ? minutes : -minutes;
}

export interface ResolvedWallTime {
  /** The instant by the ICU rule above (the later candidate). */
  epochMs: number;
  /** The offset in force at `epochMs`. */
  offsetMinutes: number;
  /** For a repeated wall time: the earlier instant and its offset; otherwise null. */
  earlier: { epochMs: number; offsetMinutes: number } | null;
  /** The wall time does not exist (spring-forward gap). */
  skipped: boolean;
}

/**
 * Resolves a wall-clock time, given as "wall ms" (the wall time's fields read as if they were
 * UTC), to UTC in `zone`. Assumes at most one offset change within a day either side, which
 * holds for every zone in the tz database since 1970.
 */
export function resolveWallTime(zoneName: string, wallMs: number): ResolvedWallTime {
  const before = zoneOffsetMinutes(zoneName, wallMs - MS_PER_DAY);
  const after = zoneOffsetMinutes(zoneName, wallMs + MS_PER_DAY);
  const tBefore = wallMs - before * MS_PER_MINUTE;
  const tAfter = wallMs - after * MS_PER_MINUTE;
  const offBefore = zoneOffsetMinutes(zoneName, tBefore);
  const beforeValid = offBefore === before;
  const afterValid = tAfter === tBefore ? beforeValid : zoneOffsetMinutes(zoneName, tAfter) === after;
  if (beforeValid && afterValid && tBefore !== tAfter) {
    // Repeated: both readings are real instants.
    const laterMs = Math.max(tBefore, tAfter);
    const earlierMs = Math.min(tBefore, tAfter);
    return {
      epochMs: laterMs,
      offsetMinutes: laterMs === tBefore ? before : after,
      earlier: { epochMs: earlierMs, offsetMinutes: earlierMs === tBefore ? before : after },
      skipped: false,
    };
  }
  if (beforeValid) return { epochMs: tBefore, offsetMinutes: before, earlier: null, skipped: false };
  if (afterValid) return { epochMs: tAfter, offsetMinutes: after, earlier: null, skipped: false };
  // Skipped: read with the offset before the change, which lands after the change.
  return { epochMs: tBefore, offsetMinutes: zoneOffsetMinutes(zoneName, tBefore), earlier: null, skipped: true };
}

/** One offset change: from `beforeMinutes` to `afterMinutes` at the instant `atMs`. */
export interface Transition {
  atMs: number;
  beforeMinutes: number;
  afterMinutes: number;
}

/** resolveWallTime for a wall time near a single known transition: arithmetic, no look-ups. */
export function resolveAroundTransition(tr: Transition, wallMs: number): ResolvedWallTime {
  const tBefore = wallMs - tr.beforeMinutes * MS_PER_MINUTE;
  const tAfter = wallMs - tr.afterMinutes * MS_PER_MINUTE;
  const beforeValid = tBefore < tr.atMs;
  const afterValid = tAfter >= tr.atMs;
  if (beforeValid && afterValid) {
    // Repeated (fall-back: tAfter > tBefore): the later reading wins.
    return { epochMs: tAfter, offsetMinutes: tr.afterMinutes, earlier: { epochMs: tBefore, offsetMinutes: tr.beforeMinutes }, skipped: false };
  }
  if (beforeValid) return { epochMs: tBefore, offsetMinutes: tr.beforeMinutes, earlier: null, skipped: false };
  if (afterValid) return { epochMs: tAfter, offsetMinutes: tr.afterMinutes, earlier: null, skipped: false };
  // Skipped: read with the offset before the change; that instant is after the change.
  return { epochMs: tBefore, offsetMinutes: tr.afterMinutes, earlier: null, skipped: true };
}

/**
 * How the 24 local hours of one date map to UTC. For a "uniform" hour every whole-second wall
 * time in it maps as `wallMs − deltaMs[h]` and carries `tzOffset[h]`; other hours (those that
 * hold a change that is not on the hour, e.g. Australia/Lord_Howe's 30-minute shift at 02:00)
 * go through resolveInDay point by point.
 */
export interface DayHourTable {
  zone: string;
  date: string;
  /** Wall ms of local midnight (the date's fields read as UTC). */
  wallMidnightMs: number;
  /** ms to subtract from wall ms, per local hour (offset × 60 000). */
  deltaMs: Float64Array;
  /** `±hh:mm` in force at the resulting instants, per local hour. */
  tzOffset: string[];
  /** 1 where the hour maps uniformly. */
  uniform: Uint8Array;
  /**
   * Per hour whose wall times all occur twice (fall-back): the delta and offset of the EARLIER
   * instant; NaN / '' elsewhere.
   */
  earlierDeltaMs: Float64Array;
  earlierTzOffset: string[];
  /** Some wall time of the day occurs twice (a fall-back day). */
  hasRepeated: boolean;
  /** Some wall time of the day does not exist (a spring-forward day). */
  hasSkipped: boolean;
  /** The offset changes near the day (only then may hours be non-uniform). */
  hasTransition: boolean;
  /** The change, when exactly one was found around the day; null otherwise. */
  transition: Transition | null;
}

/** Exact resolution of one wall time of the table's day (the slow path for non-uniform hours). */
export function resolveInDay(table: DayHourTable, wallMs: number): ResolvedWallTime {
  return table.transition !== null ? resolveAroundTransition(table.transition, wallMs) : resolveWallTime(table.zone, wallMs);
}

/** First whole second in (lo, hi] whose offset differs from `offLo` (bisection, ~18 look-ups). */
function findChange(zone: string, loMs: number, hiMs: number, offLo: number): number {
  let lo = Math.floor(loMs / 1000);
  let hi = Math.ceil(hiMs / 1000);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (zoneOffsetMinutes(zone, mid * 1000) === offLo) lo = mid;
    else hi = mid;
  }
  return hi * 1000;
}

/**
 * Builds the per-hour table for a local date. A day without an offset change costs three
 * offset look-ups; a day with one costs about twenty more (bisection for the instant).
 */
export function buildDayHourTable(zoneName: string, date: string): DayHourTable | null {
  const parsed = parseLocalDate(date);
  if (parsed === null || !isValidTimeZone(zoneName)) return null;
  const wallMidnightMs = Date.UTC(parsed.year, parsed.month - 1, parsed.day);
  const deltaMs = new Float64Array(24);
  const tzOffset: string[] = new Array<string>(24);
  const uniform = new Uint8Array(24);
  const earlierDeltaMs = new Float64Array(24).fill(Number.NaN);
  const earlierTzOffset: string[] = new Array<string>(24).fill('');

  // The instants of this local day lie within [midnight − 14 h, midnight + 1 day + 12 h];
  // probes a day before, in the middle and a day after find any change that could touch it.
  const loMs = wallMidnightMs - MS_PER_DAY;
  const hiMs = wallMidnightMs + 2 * MS_PER_DAY;
  const o1 = zoneOffsetMinutes(zoneName, loMs);
  const o2 = zoneOffsetMinutes(zoneName, wallMidnightMs + MS_PER_DAY / 2);
  const o3 = zoneOffsetMinutes(zoneName, hiMs);
  if (o1 === o2 && o2 === o3) {
    const text = formatOffset(o1);
    deltaMs.fill(o1 * MS_PER_MINUTE);
    tzOffset.fill(text);
    uniform.fill(1);
    return {
      zone: zoneName, date, wallMidnightMs, deltaMs, tzOffset, uniform, earlierDeltaMs, earlierTzOffset,
      hasRepeated: false, hasSkipped: false, hasTransition: false, transition: null,
    };
  }

  // One change (o1 ≠ o3, the middle probe agreeing with one side) is located exactly; two
  // changes within three days (never seen in the tz database since 1970) use resolveWallTime.
  let transition: Transition | null = null;
  if (o1 !== o3) {
    const atMs = findChange(zoneName, loMs, hiMs, o1);
    if (zoneOffsetMinutes(zoneName, atMs) === o3 && zoneOffsetMinutes(zoneName, hiMs - 1000) === o3) transition = { atMs, beforeMinutes: o1, afterMinutes: o3 };
  }
  const table: DayHourTable = {
    zone: zoneName, date, wallMidnightMs, deltaMs, tzOffset, uniform, earlierDeltaMs, earlierTzOffset,
    hasRepeated: false, hasSkipped: false, hasTransition: true, transition,
  };
  for (let h = 0; h < 24; h++) {
    const first = wallMidnightMs + h * MS_PER_HOUR;
    const last = first + MS_PER_HOUR - 1000; // points are whole seconds
    const a = resolveInDay(table, first);
    const b = resolveInDay(table, last);
    if (a.earlier !== null || b.earlier !== null) table.hasRepeated = true;
    if (a.skipped || b.skipped) table.hasSkipped = true;
    const da = first - a.epochMs;
    const db = last - b.epochMs;
    deltaMs[h] = da;
    tzOffset[h] = formatOffset(a.offsetMinutes);
    const sameEarlier =
      (a.earlier === null && b.earlier === null) ||
      (a.earlier !== null && b.earlier !== null && first - a.earlier.epochMs === last - b.earlier.epochMs &&
        a.earlier.offsetMinutes === b.earlier.offsetMinutes);
    // With one change per hour at most, equal readings at both ends mean equal readings inside.
    uniform[h] = da === db && a.offsetMinutes === b.offsetMinutes && a.skipped === b.skipped && sameEarlier ? 1 : 0;
    if (uniform[h] === 1 && a.earlier !== null) {
      earlierDeltaMs[h] = first - a.earlier.epochMs;
      earlierTzOffset[h] = formatOffset(a.earlier.offsetMinutes);
    }
  }
  return table;
}
