// Reading the members an import needs, each as a stream: the JSON arrays element by element
// (stream-json), the CSVs row by row (csv-parse), in batches so the caller's loop is not a
// promise per point. Shapes are checked here, at the source edge: a row of the wrong shape is
// reported as such; a member that cannot be parsed at all throws, naming the member.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import streamJsonParser from 'stream-json/Parser.js';
import StreamArray from 'stream-json/streamers/StreamArray.js';
import * as v from 'valibot';
import { EtlError, errorMessage } from '../../lib/errors.js';
import type { ArchiveMember } from './archive.js';
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

// A minute (or heart-rate sample) row of the JSON exports (§2.3), checked with valibot. Measured
// (500k rows, 64 KiB chunks, a loaded 2-core machine): ~1.9 µs per row for the check against
// ~16 µs per row for the whole read, stream-json's parsing most of it: the check costs ~12 %.
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

/** Passes the tokens through, making the number after a `logId` key a string (exact int64). */
class ExactLogIds extends Transform {
  private lastKey: string | null = null;
  constructor() {
    super({ objectMode: true });
  }
  override _transform(token: { name: string; value?: unknown }, _enc: BufferEncoding, done: TransformCallback): void {
    if (token.name === 'keyValue') this.lastKey = typeof token.value === 'string' ? token.value : null;
    else if (token.name === 'numberValue' && this.lastKey === 'logId') {
      this.lastKey = null;
      done(null, { name: 'stringValue', value: token.value });
      return;
    }
    done(null, token);
  }
}

/** The elements of a member's top-level JSON array, in batches. */
async function* jsonElements(member: ArchiveMember, exactLogIds: boolean): AsyncGenerator<unknown[]> {
  if (await isEmptyMarker(member)) return;
  const source: Readable = await member.open();
  const parser = streamJsonParser.parser({ packKeys: true, packStrings: true, packNumbers: true, streamKeys: false, streamStrings: false, streamNumbers: false });
  const array = StreamArray.streamArray();
  const fail = (err: unknown): void => {
    array.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  source.on('error', fail);
  parser.on('error', fail);
  let tail: Readable = source.pipe(parser);
  if (exactLogIds) {
    const fix = new ExactLogIds();
    fix.on('error', fail);
    tail = tail.pipe(fix);
  }
  tail.pipe(array);
  let batch: unknown[] = [];
  try {
    for await (const item of array as AsyncIterable<{ key: number; value: unknown }>) {
      batch.push(item.value);
      if (batch.length >= BATCH_ROWS) {
        yield batch;
        batch = [];
      }
    }
  } catch (err) {
    // What was read before the error is handed on (earlier batches were already); then the error.
    if (batch.length > 0) yield batch;
    throw memberError(member, err);
  } finally {
    source.destroy();
  }
  if (batch.length > 0) yield batch;
}

/** Minute rows of a JSON stream member (`steps-…json`, …), checked. */
export async function* readJsonMinutes(member: ArchiveMember): AsyncGenerator<RowBatch<JsonMinuteRow>> {
  let index = 0;
  for await (const elements of jsonElements(member, false)) {
    const rows: JsonMinuteRow[] = [];
    const bad: BadRow[] = [];
    for (const el of elements) {
      const r = v.safeParse(JsonMinuteRow, el);
      if (r.success) rows.push(r.output);
      else bad.push({ index, reason: `row is not {dateTime, value}: ${v.summarize(r.issues).split('\n')[0]}`, raw: el });
      index++;
    }
    yield { rows, bad };
  }
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
export async function* readExercises(member: ArchiveMember): AsyncGenerator<RowBatch<ExerciseRecord>> {
  let index = 0;
  for await (const elements of jsonElements(member, true)) {
    const rows: ExerciseRecord[] = [];
    const bad: BadRow[] = [];
    for (const el of elements) {
      const r = v.safeParse(ExerciseRecord, el);
      if (r.success) rows.push(r.output);
      else bad.push({ index, reason: `exercise log: ${v.summarize(r.issues).split('\n')[0]}`, raw: el });
      index++;
    }
    yield { rows, bad };
  }
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
