// Reading the members an import needs, each as a stream: the JSON arrays a few thousand
// elements at a time (json-array.ts), the CSVs row by row (csv-parse), in batches so the
// caller's loop is not a promise per point. Shapes are checked here, at the source edge: a row of the wrong shape is
// reported as such; a member that cannot be parsed at all throws, naming the member.
import type { Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import * as v from 'valibot';
import { EtlError, errorMessage } from '../../lib/errors.js';
import type { ArchiveMember } from './archive.js';
import { jsonArrayBatches } from './json-array.js';
import type { TakeoutStream } from './layout.js';

/** Rows per batch handed to the normalizer. */
export const BATCH_ROWS = 4096;

/** `no data` placeholder files (§2.2) are tiny: only members this small are looked at whole. */
const MARKER_MAX_BYTES = 64;

/** Whether a member is an empty-data marker (the literal text `no data`, or nothing at all). */
async function isEmptyMarker(member: ArchiveMember): Promise<boolean> {
  if (member.size > MARKER_MAX_BYTES) return false;
  const stream = await member.open();
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').replace(/^\uFEFF/, '').trim();
  return text === '' || /^no data$/i.test(text);
}

function memberError(member: ArchiveMember, err: unknown): EtlError {
  if (err instanceof EtlError) return err;
  return new EtlError('BAD_RESPONSE', `${member.name}: ${errorMessage(err)}`, { member: member.name, part: member.part });
}

// A minute (or heart-rate sample) row of the JSON exports (§2.3), checked with valibot. The
// usual shape passes a plain typeof test first (isPlainMinuteRow: it accepts only rows the
// schema accepts); valibot's ~1.9 µs a row would be three times the parsing's ~0.65 µs.
const JsonMinuteRow = v.object({
  dateTime: v.string(),
  value: v.union([v.string(), v.number(), v.object({ bpm: v.union([v.number(), v.string()]) })]),
});
export type JsonMinuteRow = v.InferOutput<typeof JsonMinuteRow>;

export interface BadRow {
  index: number;
  reason: string;
  raw: unknown;
}

export interface RowBatch<T> {
  rows: T[];
  bad: BadRow[];
}

/** The elements of a member's top-level JSON array, in batches (json-array.ts). */
async function* jsonElements(member: ArchiveMember, exactLogIds: boolean): AsyncGenerator<unknown[]> {
  if (await isEmptyMarker(member)) return;
  const source: Readable = await member.open();
  try {
    // What was read before an error has been handed on by then; then the member fails.
    yield* jsonArrayBatches(source, exactLogIds ? { exactNumberKeys: ['logId'] } : {});
  } catch (err) {
    throw memberError(member, err);
  } finally {
    source.destroy();
  }
}

/**
 * The elements of a JSON member checked against `schema`: the rows that pass, and the others
 * with the schema's reason. `plain` is a quicker test of the usual shape: a row it accepts is
 * one the schema accepts (it is kept as parsed, unknown keys included); any other row goes
 * through the schema, which gives the reason.
 */
async function* checkedElements<T>(
  member: ArchiveMember,
  exactLogIds: boolean,
  schema: v.GenericSchema<unknown, T>,
  plain: (el: unknown) => el is T,
  what: string,
): AsyncGenerator<RowBatch<T>> {
  let index = 0;
  for await (const elements of jsonElements(member, exactLogIds)) {
    const rows: T[] = [];
    const bad: BadRow[] = [];
    for (const el of elements) {
      if (plain(el)) rows.push(el);
      else {
        const r = v.safeParse(schema, el);
        if (r.success) rows.push(r.output);
        else bad.push({ index, reason: `${what}: ${v.summarize(r.issues).split('\n')[0]}`, raw: el });
      }
      index++;
    }
    yield { rows, bad };
  }
}

/** The usual minute row: both fields strings (or a number, or heart rate's `{bpm}` object). */
function isPlainMinuteRow(el: unknown): el is JsonMinuteRow {
  if (typeof el !== 'object' || el === null || !('dateTime' in el) || typeof el.dateTime !== 'string' || !('value' in el)) return false;
  const value = el.value;
  if (typeof value === 'string' || typeof value === 'number') return true;
  return typeof value === 'object' && value !== null && 'bpm' in value && (typeof value.bpm === 'number' || typeof value.bpm === 'string');
}

/** Minute rows of a JSON stream member (`steps-…json`, …), checked. */
export function readJsonMinutes(member: ArchiveMember): AsyncGenerator<RowBatch<JsonMinuteRow>> {
  return checkedElements(member, false, JsonMinuteRow, isPlainMinuteRow, 'row is not {dateTime, value}');
}

/** A CSV row of a stream: the stamp, the value text, the `data source` (when the file has one). */
export interface CsvMinuteRow {
  timestamp: string;
  value: string;
  dataSource: string | null;
}

/** The value column of each CSV stream (§2.4), lower-cased. */
const CSV_VALUE_COLUMNS: Readonly<Record<TakeoutStream, readonly string[]>> = {
  steps: ['steps'],
  distance: ['distance'],
  calories: ['calories'],
  'heart-rate': ['beats per minute', 'bpm'],
  floors: ['floors'],
  altitude: ['altitude'],
};

/** Rows of a CSV stream member; a header-only CSV yields nothing. */
export async function* readCsvMinutes(member: ArchiveMember, stream: TakeoutStream): AsyncGenerator<RowBatch<CsvMinuteRow>> {
  if (await isEmptyMarker(member)) return;
  const source = await member.open();
  const parser = parseCsv({ bom: true, skip_empty_lines: true, trim: true, relax_column_count: true });
  source.on('error', (err) => parser.destroy(err));
  source.pipe(parser);
  let header: string[] | null = null;
  let tsCol = -1;
  let valueCol = -1;
  let sourceCol = -1;
  let rows: CsvMinuteRow[] = [];
  let bad: BadRow[] = [];
  let index = 0;
  try {
    for await (const record of parser as AsyncIterable<string[]>) {
      if (header === null) {
        header = record.map((h) => h.trim().toLowerCase());
        tsCol = header.indexOf('timestamp');
        valueCol = header.findIndex((h) => CSV_VALUE_COLUMNS[stream].includes(h));
        sourceCol = header.indexOf('data source');
        if (tsCol < 0 || valueCol < 0) {
          throw new Error(`header ${JSON.stringify(record.join(','))} has no timestamp or ${CSV_VALUE_COLUMNS[stream][0]} column`);
        }
        continue;
      }
      const ts = record[tsCol];
      const value = record[valueCol];
      if (ts === undefined || value === undefined) bad.push({ index, reason: `row has ${record.length} fields, fewer than the header`, raw: record });
      else rows.push({ timestamp: ts, value, dataSource: sourceCol >= 0 ? (record[sourceCol] ?? null) : null });
      index++;
      if (rows.length + bad.length >= BATCH_ROWS) {
        yield { rows, bad };
        rows = [];
        bad = [];
      }
    }
  } catch (err) {
    throw memberError(member, err);
  } finally {
    source.destroy();
  }
  if (rows.length + bad.length > 0) yield { rows, bad };
}

// An exercise log (§2.3): only what the normalizer relies on is required; the rest passes through.
const Num = v.union([v.number(), v.pipe(v.string(), v.regex(/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/))]);
const ExerciseRecord = v.looseObject({
  logId: v.union([v.string(), v.number()]),
  startTime: v.string(),
  duration: Num,
  activityName: v.optional(v.string()),
  activityTypeId: v.optional(v.number()),
  activeDuration: v.optional(Num),
  distance: v.optional(Num),
  distanceUnit: v.optional(v.string()),
  steps: v.optional(Num),
  calories: v.optional(Num),
  lastModified: v.optional(v.string()),
  originalStartTime: v.optional(v.string()),
});
export type ExerciseRecord = v.InferOutput<typeof ExerciseRecord>;

/** The logs of an `exercise-N.json` member, logIds kept exact as decimal strings. */
export function readExercises(member: ArchiveMember): AsyncGenerator<RowBatch<ExerciseRecord>> {
  return checkedElements(member, true, ExerciseRecord, (_el): _el is ExerciseRecord => false, 'exercise log');
}

/** What the importer takes from Profile.csv (§2.7; exact header UNCONFIRMED: found by name). */
export interface TakeoutProfile {
  id: string | null;
  timezone: string | null;
}

export async function readProfile(member: ArchiveMember): Promise<TakeoutProfile> {
  if (await isEmptyMarker(member)) return { id: null, timezone: null };
  const source = await member.open();
  const parser = parseCsv({ bom: true, skip_empty_lines: true, trim: true, relax_column_count: true, to_line: 2 });
  source.on('error', (err) => parser.destroy(err));
  source.pipe(parser);
  const lines: string[][] = [];
  try {
    for await (const record of parser as AsyncIterable<string[]>) lines.push(record);
  } catch (err) {
    throw memberError(member, err);
  } finally {
    source.destroy();
  }
  const header = (lines[0] ?? []).map((h) => h.trim().toLowerCase());
  const row = lines[1] ?? [];
  const field = (name: string): string | null => {
    const i = header.indexOf(name);
    const value = i >= 0 ? row[i]?.trim() : undefined;
    return value === undefined || value === '' ? null : value;
  };
  return { id: field('id'), timezone: field('timezone') };
}
