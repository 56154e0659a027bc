// Fitbit / Google Takeout export rows → `intraday` and `activities` rows (reference §2.3–§2.8).
// Pure: no I/O. The source reads the members; this decides what their stamps and units mean.
//
// Choices (UNCONFIRMED facts of the reference handled defensively, README "Takeout archives"):
// - JSON `MM/DD/YY HH:MM:SS` stamps carry no zone. They are read as UTC by default (§2.5: the
//   measured 2026 evidence); a users-file entry can say "local" or name a zone (`jsonTimeZone`).
//   Where a stream exists in both JSON and CSV, a self-check compares rows under both readings
//   and its verdict goes to the run summary.
// - CSV stamps (`…Z`) are instants. Rows whose `data source` ends in "Health Connect" are
//   copies that came back from a phone (§2.4) and are left out.
// - Local date, wall time and offset come from the user's zone (users file, else Profile.csv).
// - Units: JSON distance is centimetres, CSV distance metres (§2.6); JSON altitude is read as
//   feet of climb (10 ft a floor, UNCONFIRMED) into `elevation` metres.
// - Ids are the API's (transforms/intraday.ts intradayIdPrefix; `fitbit-<logId>`), so an
//   archive and API runs over the same days merge into one row per minute or activity.
import type { ActivityRecord, DeadLetter, IntradayRowType } from '../lib/schema.js';
import { COLUMNS } from '../lib/schema.js';
import type { PartitionColumns } from '../lib/sink.js';
import type { PackedColumn, PackedTable } from '../lib/batch.js';
import type { FitbitUserContext, RawActivity } from '../sources/fitbit/types.js';
import type { CsvMinuteRow, ExerciseRecord, JsonMinuteRow } from '../sources/takeout/read.js';
import type { TakeoutStream } from '../sources/takeout/layout.js';
import { normalizeActivity } from './activities.js';
import { FEET_TO_METRES } from './formulas.js';
import { INTRADAY_UNITS, intradayIdPrefix } from './intraday.js';
import { buildDayHourTable, formatOffset, parseIsoWithOffset, resolveInDay, resolveWallTime, utcDateString, zoneOffsetMinutes, type DayHourTable } from './time.js';

export const TAKEOUT_SOURCE = 'takeout';

export interface TakeoutUserContext {
  humanId: string;
  /** The legacy Fitbit user id from Profile.csv, else the humanId. */
  userId: string;
  /** IANA zone of the local dates and offsets. */
  timeZone: string;
  /** How the JSON US stamps are read: "UTC", "local" (= timeZone) or an IANA zone. */
  jsonTimeZone: string;
}

/** The intraday type and factor to its unit, per stream and encoding. */
export interface StreamMapping {
  type: IntradayRowType;
  factor: number;
  /** Bucket length in seconds (the `interval` column). */
  interval: number;
}

/** The `unit` of the types the Fitbit intraday resources do not have. */
const OTHER_UNITS: Readonly<Record<string, string>> = { 'heart-rate': 'bpm', 'active-calories': 'kcal' };

export function streamMapping(stream: TakeoutStream, encoding: 'json' | 'csv'): StreamMapping {
  switch (stream) {
    case 'steps':
      return { type: 'steps', factor: 1, interval: 60 };
    case 'distance':
      return { type: 'distance', factor: encoding === 'json' ? 0.01 : 1, interval: 60 };
    case 'calories':
      return { type: 'calories', factor: 1, interval: 60 };
    case 'floors':
      return { type: 'floors', factor: 1, interval: 60 };
    case 'altitude':
      return { type: 'elevation', factor: FEET_TO_METRES, interval: 60 };
    case 'heart-rate':
      // Samples, not buckets: one row per sample, interval 1 s (the stamps' resolution).
      return { type: 'heart-rate', factor: 1, interval: 1 };
  }
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

const d2 = (text: string, at: number): number => {
  const a = text.charCodeAt(at) - 48;
  const b = text.charCodeAt(at + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
};

/**
 * `MM/DD/YY HH:MM:SS` → the wall time's fields read as UTC (ms), NaN when malformed. Two-digit
 * years are 20YY (Fitbit trackers date from 2009).
 */
export function parseUsStamp(text: string): number {
  if (text.length !== 17 || text.charCodeAt(2) !== 47 || text.charCodeAt(5) !== 47 || text.charCodeAt(8) !== 32 || text.charCodeAt(11) !== 58 || text.charCodeAt(14) !== 58) return Number.NaN;
  const mo = d2(text, 0);
  const d = d2(text, 3);
  const y = d2(text, 6);
  const h = d2(text, 9);
  const mi = d2(text, 12);
  const s = d2(text, 15);
  if ((mo | d | y | h | mi | s) < 0 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return Number.NaN;
  // No 31 April nor 29 February 2023 (20YY: every fourth year is a leap year).
  if (d > (mo === 2 ? (y % 4 === 0 ? 29 : 28) : DAYS_IN_MONTH[mo - 1]!)) return Number.NaN;
  return Date.UTC(2000 + y, mo - 1, d, h, mi, s);
}

/** The instant of a JSON stamp's wall time, by the user's jsonTimeZone. */
export function jsonInstant(wallMs: number, user: TakeoutUserContext): number {
  const zone = user.jsonTimeZone === 'local' ? user.timeZone : user.jsonTimeZone;
  if (zone === 'UTC' || zone === 'Etc/UTC') return wallMs;
  return resolveWallTime(zone, wallMs).epochMs;
}

/** A number from a JSON number or numeric string; NaN otherwise. */
function toNumber(value: unknown): number {
  if (typeof value === 'number') return Number.isFinite(value) ? value : Number.NaN;
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  return Number.NaN;
}

/** A JSON row's value: the string or number, or `bpm` of a heart-rate object. */
export function jsonRowValue(row: JsonMinuteRow): number {
  const value = row.value;
  return typeof value === 'object' ? toNumber(value.bpm) : toNumber(value);
}

const MS_PER_DAY = 86_400_000;
const OFFSET_BLOCK_MS = 900_000; // offsets change on a quarter hour in every zone since 1970

/** The offset (minutes) of a zone at an instant, memoized per quarter hour. */
class OffsetCache {
  private block = Number.NaN;
  private minutes = 0;
  constructor(private readonly zone: string) {}
  at(epochMs: number): number {
    const block = Math.floor(epochMs / OFFSET_BLOCK_MS);
    if (block !== this.block) {
      this.block = block;
      this.minutes = zoneOffsetMinutes(this.zone, epochMs);
    }
    return this.minutes;
  }
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** `HH:MM:SS` of a second of the day, made once per second ever used (86,400 at most). */
const TIME_OF_DAY: string[] = [];
function timeOfDay(sec: number): string {
  return (TIME_OF_DAY[sec] ??= `${pad2(Math.floor(sec / 3600))}:${pad2(Math.floor(sec / 60) % 60)}:${pad2(sec % 60)}`);
}

/** Typed arrays twice as long, the old values first. */
function grownF64(a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}
function grownI32(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

export interface BuilderStats {
  rows: number;
  /** Points outside --since/--until. */
  filtered: number;
  /** Second and later points of one id (the first is kept). */
  duplicates: number;
}

/**
 * Collects one stream's points (instants in time order, mostly) into the columns of their
 * partitions: a partition is handed out when the local date moves on, so memory holds one
 * local day of one stream. A point is kept as numbers in typed arrays; its id text is made
 * when the day is handed out (strings made per point and held for a day were most of the
 * thread's garbage collection: bench/takeout.ts).
 */
export class IntradayColumnsBuilder {
  private readonly offsets: OffsetCache;
  private date = '';
  private dayStartWallMs = Number.NaN;
  private table: DayHourTable | null = null;
  private idPrefix = '';
  private rows = 0;
  /** Per point: second of the local day, + 86,400 when the id carries the offset (a repeated wall time). */
  private seconds = new Int32Array(2048);
  private timestamps = new Float64Array(2048);
  private values = new Float64Array(2048);
  private offsetIndex = new Int32Array(2048);
  private offsetDict: string[] = [];
  private lastOffsetMin = Number.NaN;
  private lastOffsetIndex = -1;
  /** Seconds of the day seen (+86,400 for the earlier pass of a repeated wall time). */
  private seen = new Uint8Array(2 * 86_400);
  readonly stats: BuilderStats = { rows: 0, filtered: 0, duplicates: 0 };

  constructor(
    private readonly user: TakeoutUserContext,
    private readonly mapping: StreamMapping,
    private readonly seenAt: number,
    private readonly since: string | null,
    private readonly until: string | null,
  ) {
    this.offsets = new OffsetCache(user.timeZone);
  }

  /** Adds a point; returns a finished partition when this point starts another local date. */
  add(epochMs: number, rawValue: number): PartitionColumns | null {
    const offsetMin = this.offsets.at(epochMs);
    const wallMs = epochMs + offsetMin * 60_000;
    let done: PartitionColumns | null = null;
    if (!(wallMs >= this.dayStartWallMs && wallMs < this.dayStartWallMs + MS_PER_DAY)) {
      done = this.flush();
      this.dayStartWallMs = Math.floor(wallMs / MS_PER_DAY) * MS_PER_DAY;
      this.date = utcDateString(this.dayStartWallMs);
      this.table = null;
      this.idPrefix = intradayIdPrefix(this.user.humanId, this.mapping.type, this.date);
    }
    if ((this.since !== null && this.date < this.since) || (this.until !== null && this.date > this.until)) {
      this.stats.filtered++;
      return done;
    }
    const sec = Math.floor((wallMs - this.dayStartWallMs) / 1000);
    // Inside a repeated (fall-back) range the id carries the offset, as the API's does.
    this.table ??= buildDayHourTable(this.user.timeZone, this.date);
    let repeated = false;
    let earlier = false;
    if (this.table !== null && this.table.hasRepeated) {
      const r = resolveInDay(this.table, wallMs - (wallMs % 1000));
      if (r.earlier !== null) {
        repeated = true;
        earlier = r.earlier.epochMs === epochMs - (epochMs % 1000);
      }
    }
    const slot = earlier ? sec + 86_400 : sec;
    if (this.seen[slot] === 1) {
      this.stats.duplicates++;
      return done;
    }
    this.seen[slot] = 1;
    if (offsetMin !== this.lastOffsetMin) {
      const tzOffset = formatOffset(offsetMin);
      let oi = this.offsetDict.indexOf(tzOffset);
      if (oi < 0) oi = this.offsetDict.push(tzOffset) - 1;
      this.lastOffsetMin = offsetMin;
      this.lastOffsetIndex = oi;
    }
    const i = this.rows;
    if (i === this.timestamps.length) {
      this.seconds = grownI32(this.seconds);
      this.timestamps = grownF64(this.timestamps);
      this.values = grownF64(this.values);
      this.offsetIndex = grownI32(this.offsetIndex);
    }
    this.seconds[i] = repeated ? sec + 86_400 : sec;
    this.timestamps[i] = epochMs;
    this.offsetIndex[i] = this.lastOffsetIndex;
    // Metres and feet: drop float noise below 1 µm, as the API normalizer does.
    this.values[i] = this.mapping.factor === 1 ? rawValue : Math.round(rawValue * this.mapping.factor * 1e6) / 1e6;
    this.rows = i + 1;
    this.stats.rows++;
    return done;
  }

  /** The current local date's columns (or null), and a fresh start. */
  flush(): PartitionColumns | null {
    const rows = this.rows;
    if (rows === 0) return null;
    // The ids: the day's prefix, the local time, and the offset where the wall time repeats.
    const parts: string[] = [];
    const idLengths = new Int32Array(rows);
    const prefix = this.idPrefix;
    for (let i = 0; i < rows; i++) {
      const s = this.seconds[i]!;
      parts.push(prefix, timeOfDay(s % 86_400));
      let length = prefix.length + 8;
      if (s >= 86_400) {
        const tzOffset = this.offsetDict[this.offsetIndex[i]!]!;
        parts.push(tzOffset);
        length += tzOffset.length;
      }
      idLengths[i] = length;
    }
    const constant = (value: string): PackedColumn => ({ type: 'string', strings: { kind: 'dict', dict: [value], index: new Int32Array(rows) } });
    const filled = (value: number): Float64Array => new Float64Array(rows).fill(value);
    const nulls = (type: 'int32' | 'double' | 'boolean'): PackedColumn =>
      type === 'double' ? { type, values: new Float64Array(rows), valid: new Uint8Array(rows) } : { type, values: new Int32Array(rows), valid: new Uint8Array(rows) };
    const unit = (INTRADAY_UNITS as Readonly<Record<string, string>>)[this.mapping.type] ?? OTHER_UNITS[this.mapping.type] ?? '';
    const byName: Record<string, PackedColumn> = {
      id: { type: 'string', strings: { kind: 'joined', text: parts.join(''), lengths: idLengths } },
      humanId: constant(this.user.humanId),
      userId: constant(this.user.userId),
      source: constant(TAKEOUT_SOURCE),
      type: constant(this.mapping.type),
      timestamp: { type: 'timestamp', values: this.timestamps.slice(0, rows), valid: null },
      tzOffset: { type: 'string', strings: { kind: 'dict', dict: this.offsetDict, index: this.offsetIndex.slice(0, rows) } },
      timeZone: constant(this.user.timeZone),
      value: { type: 'double', values: this.values.slice(0, rows), valid: null },
      unit: constant(unit),
      interval: { type: 'int32', values: new Int32Array(rows).fill(this.mapping.interval), valid: null },
      level: nulls('int32'),
      mets: nulls('double'),
      estimated: nulls('boolean'),
      createdAt: { type: 'timestamp', values: filled(this.seenAt), valid: null },
      updatedAt: { type: 'timestamp', values: filled(this.seenAt), valid: null },
    };
    const table: PackedTable = { rowCount: rows, columns: COLUMNS.intraday.map((spec) => byName[spec.name]!) };
    const out: PartitionColumns = { kind: 'columns', date: this.date, humanId: this.user.humanId, table };
    this.rows = 0;
    this.offsetDict = [];
    this.lastOffsetMin = Number.NaN;
    this.lastOffsetIndex = -1;
    this.seen.fill(0);
    return out;
  }
}

export interface RowContext {
  member: string;
  humanId: string;
}

function rowLetter(reason: string, ctx: RowContext, index: number, raw: unknown): DeadLetter {
  return { dataset: 'intraday', reason, context: { stream: 'takeout', humanId: ctx.humanId, member: ctx.member, index }, raw };
}

/** Adds a batch of JSON rows; returns finished partitions and dead letters. */
export function addJsonRows(builder: IntradayColumnsBuilder, rows: readonly JsonMinuteRow[], user: TakeoutUserContext, ctx: RowContext, firstIndex: number, check: ZoneSelfCheck | null): { partitions: PartitionColumns[]; deadLetters: DeadLetter[] } {
  const partitions: PartitionColumns[] = [];
  const deadLetters: DeadLetter[] = [];
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const wallMs = parseUsStamp(row.dateTime);
    if (wallMs !== wallMs) {
      deadLetters.push(rowLetter(`dateTime ${JSON.stringify(row.dateTime)} is not MM/DD/YY HH:MM:SS`, ctx, firstIndex + i, row));
      continue;
    }
    const value = jsonRowValue(row);
    if (value !== value) {
      deadLetters.push(rowLetter(`value ${JSON.stringify(row.value)} is not a number`, ctx, firstIndex + i, row));
      continue;
    }
    check?.observe(wallMs, value);
    const p = builder.add(jsonInstant(wallMs, user), value);
    if (p !== null) partitions.push(p);
  }
  return { partitions, deadLetters };
}

/** Whether a CSV row is a copy that came back through Health Connect (§2.4): left out. */
export function isHealthConnectCopy(dataSource: string | null): boolean {
  return dataSource !== null && /health connect\s*$/i.test(dataSource);
}

/** Adds a batch of CSV rows (ISO stamps with `Z` or an offset). */
export function addCsvRows(builder: IntradayColumnsBuilder, rows: readonly CsvMinuteRow[], ctx: RowContext, firstIndex: number): { partitions: PartitionColumns[]; deadLetters: DeadLetter[]; healthConnect: number } {
  const partitions: PartitionColumns[] = [];
  const deadLetters: DeadLetter[] = [];
  let healthConnect = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    if (isHealthConnectCopy(row.dataSource)) {
      healthConnect++;
      continue;
    }
    const parsed = parseIsoWithOffset(row.timestamp);
    if (parsed === null) {
      deadLetters.push(rowLetter(`timestamp ${JSON.stringify(row.timestamp)} is not an ISO date-time with Z or an offset`, ctx, firstIndex + i, row));
      continue;
    }
    const value = toNumber(row.value);
    if (value !== value) {
      deadLetters.push(rowLetter(`value ${JSON.stringify(row.value)} is not a number`, ctx, firstIndex + i, row));
      continue;
    }
    const p = builder.add(parsed.epochMs, value);
    if (p !== null) partitions.push(p);
  }
  return { partitions, deadLetters, healthConnect };
}

// ---------------------------------------------------------------------------------------------
// The self-check of §2.5: do the JSON stamps read as UTC or as local time?

export interface ZoneCheckVerdict {
  stream: string;
  /** CSV rows (non-zero values) sampled. */
  sampled: number;
  /** Of those, rows whose JSON twin has the same value at the same instant read as UTC / as local. */
  matchesAsUtc: number;
  matchesAsLocal: number;
  verdict: 'utc' | 'local' | 'inconclusive';
  /** How this import read them (the users file's jsonTimeZone). */
  readAs: string;
  /** The verdict disagrees with how they were read. */
  disagrees: boolean;
}

/** Rows of the CSV twin kept for the comparison. */
export const SELF_CHECK_SAMPLE = 256;

export class ZoneSelfCheck {
  private readonly sample = new Map<number, number>();
  private asUtc = 0;
  private asLocal = 0;
  private readonly offsets: OffsetCache;
  constructor(
    private readonly stream: TakeoutStream,
    private readonly user: TakeoutUserContext,
    /** JSON value × this = CSV value (distance: cm → m). */
    private readonly jsonToCsv: number,
  ) {
    this.offsets = new OffsetCache(user.timeZone);
  }

  /** Takes CSV rows until the sample is full; false once it is. */
  addSample(rows: readonly CsvMinuteRow[]): boolean {
    for (const row of rows) {
      if (this.sample.size >= SELF_CHECK_SAMPLE) return false;
      if (isHealthConnectCopy(row.dataSource)) continue;
      const t = parseIsoWithOffset(row.timestamp);
      const value = toNumber(row.value);
      if (t !== null && value === value && value !== 0) this.sample.set(t.epochMs, value);
    }
    return this.sample.size < SELF_CHECK_SAMPLE;
  }

  get sampled(): number {
    return this.sample.size;
  }

  observe(wallMs: number, jsonValue: number): void {
    if (this.sample.size === 0) return;
    const value = Math.round(jsonValue * this.jsonToCsv * 1e6) / 1e6;
    const utc = this.sample.get(wallMs);
    if (utc !== undefined && utc === value) this.asUtc++;
    // The local reading: the offset at the instant is close enough to find the candidate.
    const localMs = wallMs - this.offsets.at(wallMs) * 60_000;
    const local = localMs === wallMs ? undefined : this.sample.get(localMs);
    if (local !== undefined && local === value) this.asLocal++;
  }

  verdict(): ZoneCheckVerdict {
    const n = this.sample.size;
    const zoneIsUtc = zoneOffsetMinutes(this.user.timeZone, Date.UTC(2020, 0, 1)) === 0 && zoneOffsetMinutes(this.user.timeZone, Date.UTC(2020, 6, 1)) === 0;
    let verdict: ZoneCheckVerdict['verdict'] = 'inconclusive';
    // A clear majority one way and little the other (steps repeat, so some chance matches occur).
    if (n > 0 && !zoneIsUtc) {
      if (this.asUtc >= 0.8 * n && this.asLocal <= 0.2 * n) verdict = 'utc';
      else if (this.asLocal >= 0.8 * n && this.asUtc <= 0.2 * n) verdict = 'local';
    }
    const readAs = this.user.jsonTimeZone;
    const readLocal = readAs === 'local' || readAs === this.user.timeZone;
    const disagrees = (verdict === 'utc' && readAs !== 'UTC' && readAs !== 'Etc/UTC') || (verdict === 'local' && !readLocal);
    return { stream: this.stream, sampled: n, matchesAsUtc: this.asUtc, matchesAsLocal: this.asLocal, verdict, readAs, disagrees };
  }
}

// ---------------------------------------------------------------------------------------------
// Exercise logs → activities.

/** An instant as the API writes startTime: local wall time with its offset. */
function localIso(epochMs: number, zone: string): string {
  const offset = zoneOffsetMinutes(zone, epochMs);
  const wall = new Date(epochMs + Math.round(offset) * 60_000).toISOString().slice(0, 23);
  return `${wall}${formatOffset(offset)}`;
}

export type ExerciseResult = { ok: true; record: ActivityRecord } | { ok: false; deadLetter: DeadLetter };

/**
 * One `exercise-N.json` log → an `activities` row, through the API's normalizer (same id
 * `fitbit-<logId>`, distance by distanceUnit, duration ms, end = start + duration, pace and
 * speed by the same formulas), with `source` takeout. startTime is a JSON US stamp (read by
 * jsonTimeZone); an `originalStartTime` that carries its own offset wins (UNCONFIRMED, §2.3).
 */
export function normalizeExercise(raw: ExerciseRecord, user: TakeoutUserContext, seenAt: number, member: string): ExerciseResult {
  const fail = (reason: string): ExerciseResult => ({
    ok: false,
    deadLetter: { dataset: 'activities', reason, context: { stream: 'takeout', humanId: user.humanId, member, logId: String(raw.logId) }, raw },
  });
  let startMs: number;
  const withOffset = raw.originalStartTime === undefined ? null : parseIsoWithOffset(raw.originalStartTime);
  if (withOffset !== null) startMs = withOffset.epochMs;
  else {
    const wall = parseUsStamp(raw.startTime);
    if (wall !== wall) {
      const iso = parseIsoWithOffset(raw.startTime);
      if (iso === null) return fail(`startTime ${JSON.stringify(raw.startTime)} is not MM/DD/YY HH:MM:SS`);
      startMs = iso.epochMs;
    } else startMs = jsonInstant(wall, user);
  }
  let lastModified: string | undefined;
  if (raw.lastModified !== undefined) {
    const wall = parseUsStamp(raw.lastModified);
    if (wall === wall) lastModified = new Date(jsonInstant(wall, user)).toISOString();
    else if (parseIsoWithOffset(raw.lastModified) !== null) lastModified = raw.lastModified;
  }
  const num = (x: number | string | undefined): number | undefined => (x === undefined ? undefined : Number(x));
  const { logId, startTime, lastModified: _lm, originalStartTime, duration, activeDuration, distance, steps, calories, ...rest } = raw;
  void startTime; void _lm;
  const api: RawActivity = {
    ...(rest as Omit<RawActivity, 'logId' | 'startTime' | 'duration' | 'activityName'>),
    logId: String(logId),
    activityName: raw.activityName ?? '',
    startTime: localIso(startMs, user.timeZone),
    duration: Number(duration),
    ...(originalStartTime !== undefined ? { originalStartTime } : {}),
    ...(activeDuration !== undefined ? { activeDuration: num(activeDuration)! } : {}),
    ...(distance !== undefined ? { distance: num(distance)! } : {}),
    ...(steps !== undefined ? { steps: num(steps)! } : {}),
    ...(calories !== undefined ? { calories: num(calories)! } : {}),
    ...(lastModified !== undefined ? { lastModified } : {}),
  };
  const ctx: FitbitUserContext = { userId: user.userId, humanId: user.humanId, timeZone: user.timeZone, profile: { timezone: user.timeZone, offsetFromUTCMillis: 0 }, profileUnits: 'metric' };
  const r = normalizeActivity({ ok: true, value: api, raw }, ctx, seenAt);
  if (!r.ok) return { ok: false, deadLetter: { ...r.deadLetter, context: { ...r.deadLetter.context, stream: 'takeout', member } } };
  return { ok: true, record: { ...r.record, source: TAKEOUT_SOURCE } };
}
