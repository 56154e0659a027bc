// Reading one local date of a dataset for the run report: each partition file reduced to its
// facts (sinks/partition-facts.ts). Runs on the report's worker threads (report-worker.ts) or
// on the calling thread for small outputs.
//
// Cheapest first: (1) the cache: `_report/cache/<dataset>/date=…json` holds each file's facts
// keyed by its size, mtime, ctime and inode, so an untouched file costs one `stat`; (2) the
// footer: files this project wrote carry their facts in their metadata, so only the end of the
// file is read; (3) the columns the facts need, for files written by another tool.
import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { EtlError, errorMessage } from '../lib/errors.js';
import { YOUNG_GENERATION_MB, startModuleWorker } from '../lib/worker.js';
import { writeFileAtomicSync } from '../lib/fs.js';
import type { Dataset } from '../lib/schema.js';
import { decompressSnappy, decompressZstd, loadCodec } from '../sinks/compression.js';
import type { FileMetaData } from 'hyparquet';
import { FACTS_COLUMNS, FACTS_KEY, parseFacts, partitionFacts, type PartitionFacts } from '../sinks/index.js';

export const DATA_FILES = ['data.parquet', 'data.arrow'] as const;
/** Bytes read from a Parquet file's end at first: the footer of a partition file fits (most files are smaller). */
const TAIL_BYTES = 64 * 1024;
/** Bumped when the facts or the cache's layout change: an older cache is then ignored. */
const CACHE_VERSION = 1;
const CREATED_BY = 'wearable-etl';

export interface ScannedFile {
  /** `user=<id>` as on disk (escaped). */
  userDir: string;
  name: (typeof DATA_FILES)[number];
  bytes: number;
  facts: PartitionFacts;
}

export interface ScannedDate {
  dateDir: string;
  files: ScannedFile[];
  /** Files read (footer or columns), and files whose facts came from the cache. */
  read: number;
  cached: number;
}

export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}

export const cacheDir = (outDir: string, dataset: Dataset): string => path.join(outDir, '_report', 'cache', dataset);

// ------------------------------------------------------------------ reading one file

const toNumber = (v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : v);

/** Reads `length` bytes at `position` of an open file. */
function readAt(fd: number, length: number, position: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let at = 0; at < length; ) {
    const n = readSync(fd, bytes, at, length - at, position + at);
    if (n === 0) throw new Error('the file is shorter than its size (changed while read)');
    at += n;
  }
  return bytes;
}

/**
 * From a Parquet footer (the buffer ends with it): the row count, created_by and the value of
 * FACTS_KEY, walking the Thrift compact encoding without building the schema and row groups
 * (hyparquet's parquetMetadata does, at several times the cost). Null when the bytes are not a
 * footer this walk understands: the caller then reads the file with hyparquet.
 */
export function footerFacts(b: Buffer): { rows: number; createdBy: string | null; facts: string | null } | null {
  if (b.length < 8 || b.readUInt32LE(b.length - 4) !== 0x31524150) return null;
  let pos = b.length - 8 - b.readUInt32LE(b.length - 8);
  if (pos < 0) return null;
  const end = b.length - 8;
  const byte = (): number => {
    if (pos >= end) throw new RangeError('footer ends early');
    return b[pos++]!;
  };
  const varint = (): number => {
    let result = 0;
    for (let mul = 1; ; mul *= 128) {
      const v = byte();
      result += (v & 0x7f) * mul;
      if (v < 0x80) return result;
    }
  };
  const zigzag = (n: number): number => (n % 2 === 0 ? n / 2 : -(n + 1) / 2);
  const binary = (): string => {
    const n = varint();
    if (pos + n > end) throw new RangeError('footer ends early');
    pos += n;
    return b.toString('utf8', pos - n, pos);
  };
  const skip = (type: number): void => {
    if (type === 1 || type === 2) return; // booleans are in the field header
    if (type === 3) pos++;
    else if (type >= 4 && type <= 6) varint();
    else if (type === 7) pos += 8;
    else if (type === 8) {
      const n = varint(); // before the +=, which would read pos first
      pos += n;
    }
    else if (type === 9 || type === 10) {
      const h = byte();
      const size = h >> 4 === 15 ? varint() : h >> 4;
      for (let i = 0; i < size; i++) (h & 15) <= 2 ? pos++ : skip(h & 15);
    } else if (type === 11) {
      const size = varint();
      const kv = size > 0 ? byte() : 0;
      for (let i = 0; i < size; i++) {
        skip(kv >> 4);
        skip(kv & 15);
      }
    } else if (type === 12) fields(() => false);
    else throw new RangeError(`unknown thrift type ${type}`);
  };
  /** Walks a struct's fields; `take(id, type)` reads a field it wants and says so. */
  const fields = (take: (id: number, type: number) => boolean): void => {
    for (let id = 0; ; ) {
      const h = byte();
      if (h === 0) return;
      id = h >> 4 !== 0 ? id + (h >> 4) : zigzag(varint());
      if (!take(id, h & 15)) skip(h & 15);
    }
  };
  let rows = -1;
  let createdBy: string | null = null;
  let facts: string | null = null;
  try {
    fields((id, type) => {
      if (id === 3 && type === 6) rows = zigzag(varint());
      else if (id === 6 && type === 8) createdBy = binary();
      else if (id === 5 && type === 9) {
        const h = byte();
        const size = h >> 4 === 15 ? varint() : h >> 4;
        if ((h & 15) !== 12) throw new RangeError('key_value_metadata is not a list of structs');
        for (let i = 0; i < size; i++) {
          let key: string | null = null;
          let value: string | null = null;
          fields((f, t) => {
            if (f === 1 && t === 8) key = binary();
            else if (f === 2 && t === 8) value = binary();
            else return false;
            return true;
          });
          if (key === FACTS_KEY) facts = value;
        }
      } else return false;
      return true;
    });
  } catch {
    return null;
  }
  return rows < 0 ? null : { rows, createdBy, facts };
}

async function parquetFacts(file: string, size: number, dataset: Dataset): Promise<PartitionFacts> {
  const { parquetMetadata, parquetRead } = await import('hyparquet');
  const fd = openSync(file, 'r');
  let bytes: Buffer;
  let metadata: FileMetaData | null = null;
  try {
    // The footer's length is in the 4 bytes before the closing magic: a partition file's
    // footer fits in the tail read first (a small file is read whole at once).
    bytes = readAt(fd, Math.min(size, TAIL_BYTES), size - Math.min(size, TAIL_BYTES));
    const footerFits = bytes.length >= 8 && bytes.readUInt32LE(bytes.length - 8) + 8 <= bytes.length;
    if (footerFits) {
      const footer = footerFacts(bytes);
      if (footer !== null && footer.facts !== null && footer.createdBy?.startsWith(CREATED_BY)) {
        const facts = parseFacts(footer.facts, footer.rows);
        if (facts !== null) return facts;
      }
    }
    // No facts (another tool wrote the file): its columns are needed.
    if (bytes.length < size) bytes = readAt(fd, size, 0);
  } finally {
    closeSync(fd);
  }
  metadata ??= parquetMetadata(bytes); // a footer that did not fit in the tail (or no footer: its error)
  const rows = Number(metadata.num_rows);
  const present = new Set(metadata.schema.slice(1).map((s) => s.name));
  const wanted = FACTS_COLUMNS[dataset].filter((n) => present.has(n));
  const columns = new Map<string, unknown[]>(wanted.map((n) => [n, new Array<unknown>(rows)]));
  if (wanted.length > 0 && rows > 0) {
    if (metadata.row_groups.some((rg) => rg.columns.some((c) => c.meta_data?.codec === 'ZSTD'))) await loadCodec('zstd');
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    await parquetRead({
      file: { byteLength: ab.byteLength, slice: (start: number, end?: number) => ab.slice(start, end) },
      metadata,
      columns: wanted,
      compressors: { SNAPPY: (input: Uint8Array) => decompressSnappy(input), ZSTD: (input: Uint8Array) => decompressZstd(input) },
      onChunk: (chunk) => {
        const target = columns.get(chunk.columnName);
        if (target === undefined) return;
        const data = chunk.columnData;
        for (let i = 0; i < data.length; i++) target[chunk.rowStart + i] = toNumber(data[i]);
      },
    });
  }
  return partitionFacts(dataset, rows, (name) => columns.get(name) ?? null);
}

async function arrowFacts(file: string, dataset: Dataset): Promise<PartitionFacts> {
  const bytes = readFileSync(file);
  const { tableFromIPC } = await import('apache-arrow');
  await loadCodec('zstd');
  const { registerArrowZstd } = await import('../sinks/arrow/encoder.js');
  registerArrowZstd();
  const table = tableFromIPC(bytes);
  const text = table.schema.metadata.get(FACTS_KEY);
  const facts = text === undefined ? null : parseFacts(text, table.numRows);
  if (facts !== null) return facts;
  return partitionFacts(dataset, table.numRows, (name) => {
    const child = table.getChild(name);
    return child ? Array.from(child, toNumber) : null;
  });
}

/** The facts of one partition file (`size` from its stat). */
export function readFacts(file: string, size: number, dataset: Dataset): Promise<PartitionFacts> {
  return file.endsWith('.arrow') ? arrowFacts(file, dataset) : parquetFacts(file, size, dataset);
}

// ------------------------------------------------------------------ the cache of one date

/** A file as its stat sees it: what must be equal for its cached facts to hold. */
type CacheKey = [size: number, mtimeMs: number, ctimeMs: number, ino: number];
type CacheEntry = [...CacheKey, rows: number, facts: string];

const keyOf = (st: Stats): CacheKey => [st.size, st.mtimeMs, st.ctimeMs, st.ino];

function readCache(file: string): Map<string, CacheEntry> {
  const entries = new Map<string, CacheEntry>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return entries; // none yet, or unreadable: the files are read again
  }
  if (parsed === null || typeof parsed !== 'object') return entries;
  const o = parsed as Record<string, unknown>;
  const files = o['files'];
  if (o['version'] !== CACHE_VERSION || files === null || typeof files !== 'object') return entries;
  for (const [key, e] of Object.entries(files)) {
    if (Array.isArray(e) && e.length === 6 && e.slice(0, 5).every((x) => typeof x === 'number') && typeof e[5] === 'string') {
      entries.set(key, [e[0], e[1], e[2], e[3], e[4], e[5]] as CacheEntry);
    }
  }
  return entries;
}

function cachedFacts(entry: CacheEntry | undefined, key: CacheKey): PartitionFacts | null {
  if (entry === undefined || key.some((k, i) => entry[i] !== k)) return null;
  return parseFacts(entry[5], entry[4]);
}

// ------------------------------------------------------------------ one date

/** Reads every partition of <out>/<dataset>/<dateDir>/, through its cache (and updates it). */
export async function scanDate(outDir: string, dataset: Dataset, dateDir: string): Promise<ScannedDate> {
  const dir = path.join(outDir, dataset, dateDir);
  const cacheFile = path.join(cacheDir(outDir, dataset), `${dateDir}.json`);
  const cache = readCache(cacheFile);
  const next = new Map<string, CacheEntry>();
  const result: ScannedDate = { dateDir, files: [], read: 0, cached: 0 };
  for (const userDir of listDir(dir)) {
    if (!userDir.startsWith('user=')) continue;
    // The sink names a partition's file data.parquet or data.arrow: looked up by name, since
    // listing every partition folder cost more than reading its file (bench/report.ts).
    for (const name of DATA_FILES) {
      const file = path.join(dir, userDir, name);
      const st = statSync(file, { throwIfNoEntry: false });
      if (st === undefined || !st.isFile()) continue;
      const rel = `${userDir}/${name}`;
      const key = keyOf(st);
      const cached = cache.get(rel);
      let facts = cachedFacts(cached, key);
      let entry: CacheEntry;
      if (facts !== null && cached !== undefined) {
        result.cached++;
        entry = cached;
      } else {
        try {
          facts = await readFacts(file, st.size, dataset);
        } catch (err) {
          throw new EtlError('SINK', `report: cannot read ${file}: ${errorMessage(err)}`, { path: file }, { cause: err });
        }
        result.read++;
        entry = [...key, facts.rows, JSON.stringify(facts)];
      }
      next.set(rel, entry);
      result.files.push({ userDir, name, bytes: st.size, facts });
    }
  }
  if (result.read > 0 || next.size !== cache.size) {
    writeFileAtomicSync(cacheFile, Buffer.from(JSON.stringify({ version: CACHE_VERSION, files: Object.fromEntries(next) })), 0o644, { durable: false });
  }
  return result;
}

// ------------------------------------------------------------------ on worker threads

export interface ScanRequest {
  outDir: string;
  dataset: Dataset;
  dateDir: string;
}

export type ScanReply = { ok: true; scanned: ScannedDate } | { ok: false; dateDir: string; error: { message: string; context: Record<string, string | number> } };

/** Results waiting to be taken, per worker, at most: bounds what is held when the taker is slower. */
const AHEAD_PER_WORKER = 4;

/** Starts the report's worker threads (each reads dates with scanDate). */
export function startScanWorkers(count: number): Worker[] {
  return Array.from({ length: count }, () => startModuleWorker(new URL('./report-worker.js', import.meta.url), import.meta.url, { resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } }));
}

/** scanDate of each date in turn, here (no workers) or spread over the workers; yielded in the order given. */
export async function* scanDates(outDir: string, dataset: Dataset, dateDirs: readonly string[], workers: readonly Worker[]): AsyncGenerator<ScannedDate> {
  if (workers.length === 0) {
    for (const dateDir of dateDirs) yield await scanDate(outDir, dataset, dateDir);
    return;
  }
  const results = new Map<number, ScannedDate>();
  const working = new Map<Worker, number>();
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  let sent = 0;
  let taken = 0;
  const feed = (): void => {
    for (const w of workers) {
      if (working.has(w) || sent >= dateDirs.length || sent >= taken + AHEAD_PER_WORKER * workers.length) continue;
      working.set(w, sent);
      w.postMessage({ outDir, dataset, dateDir: dateDirs[sent++]! } satisfies ScanRequest);
    }
  };
  const listeners = workers.map((w) => {
    const onMessage = (reply: ScanReply): void => {
      const i = working.get(w)!;
      working.delete(w);
      if (reply.ok) results.set(i, reply.scanned);
      else failure ??= new EtlError('SINK', reply.error.message, reply.error.context);
      feed();
      wake?.();
    };
    const onError = (err: Error): void => {
      failure ??= err;
      wake?.();
    };
    w.on('message', onMessage);
    w.on('error', onError);
    return { w, onMessage, onError };
  });
  try {
    feed();
    for (; taken < dateDirs.length; ) {
      while (!results.has(taken) && failure === null) await new Promise<void>((resolve) => (wake = resolve));
      if (failure !== null) throw failure;
      const scanned = results.get(taken)!;
      results.delete(taken);
      taken++;
      feed();
      yield scanned;
    }
  } finally {
    for (const { w, onMessage, onError } of listeners) {
      w.off('message', onMessage);
      w.off('error', onError);
    }
  }
}
