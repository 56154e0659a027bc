// The partitioned sink: takes batches of records (or one partition's columns, as the intraday
// normalizer builds them), places each in its partition
// (<dataset>/date=YYYY-MM-DD/user=<escaped humanId>), buffers rows up to a high-water mark
// and a number of open partitions, and flushes the least recently used partition by
// merging it with the partition's file (if any), sorting, encoding and renaming the new
// file over the old one. A record that cannot be placed goes to the dead-letter file.
// A partition is written by one function, writePartition (write-partition.ts): on the calling
// thread, or past the first 50,000 rows of a run on a writer thread (pool.ts).
import { rmdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { EtlError, errorMessage } from '../lib/errors.js';
import type { Compression, DatasetSummary, DeadLetterWriter, OutputFormat, PartitionColumns, Sink, SinkBatch, SinkOptions } from '../lib/sink.js';
import type { ColumnSpec, Dataset } from '../lib/schema.js';
import { COLUMNS, DATASET_ORDER, SCHEMA_VERSION } from '../lib/schema.js';
import { batchChecker, packedValuesFit, toColumns } from './columns.js';
import type { Row } from './columns.js';
import { loadCodec } from './compression.js';
import { createDeadLetterWriter } from './dead-letter.js';
import { TMP_DIR, runTmpDir } from './files.js';
import { PARQUET_ENGINES, fileFormat } from './formats.js';
import type { FileFormat, ParquetEngine } from './formats.js';
import { writeManifest } from './manifest.js';
import type { ManifestFile } from './manifest.js';
import { WritePool } from './pool.js';
import type { SharedWriters } from './pool.js';
import { packTable, packedAllEqual, packedRecords, packedShapeProblem, transferList } from './transfer.js';
import type { Packed, PackedColumn } from './transfer.js';
import { storageConfig } from './storage.js';
import type { StorageConfig } from './storage.js';
import { writePartition } from './write-partition.js';
import type { PartitionJob, PartitionWritten } from './write-partition.js';
import type { MergeCounts } from './merge.js';
import { assertDataset, escapePartitionValue, validateDate } from './partition.js';

export const DEFAULT_HIGH_WATER_ROWS = 50_000;
export const DEFAULT_MAX_OPEN_PARTITIONS = 256;
export const DEFAULT_ROW_GROUP_ROWS = 1_000_000;
/** Partition files being written while the next ones are encoded. */
const MAX_PENDING_WRITES = 4;
/** Checkpoints on their way at most before the sink waits for the oldest. */
const MAX_PENDING_CHECKPOINTS = 64;
/** Writer threads by default: one next to the main thread when there is a second core. */
export const DEFAULT_WORKERS = availableParallelism() > 1 ? 1 : 0;
/** Rows a run must bring before its writer threads start: small runs are not worth a thread. */
export const DEFAULT_WORKER_START_ROWS = 50_000;

/** What a sink measured about itself; pass one in `stats` to watch memory bounds in tests. */
export interface SinkStats {
  /** Most rows held in buffers at once. */
  maxBufferedRows: number;
  /** Most partition buffers open at once. */
  maxOpenPartitions: number;
  /** Partition files written (a partition flushed twice counts twice). */
  partitionWrites: number;
  /** Partition writes that read and merged an existing file. */
  mergedWithExisting: number;
  /** Rows seen again with the same id: kept as they were, or replaced. */
  merge: MergeCounts;
  /** Of the partition writes, those done on a writer thread (`workers`). */
  threadWrites: number;
}

export function createSinkStats(): SinkStats {
  return { maxBufferedRows: 0, maxOpenPartitions: 0, partitionWrites: 0, mergedWithExisting: 0, merge: { added: 0, replaced: 0, unchanged: 0 }, threadWrites: 0 };
}

/** Options beyond the shared SinkOptions contract. */
export interface SinkExtras {
  /** 'fast' (default): our column encoder; 'hyparquet-writer': the library (a devDependency), for comparison. */
  parquetEngine?: ParquetEngine;
  /** fsync each file before its rename and its folder after (default false; see the bench). */
  fsync?: boolean;
  /** Rows per Parquet row group / Arrow record batch (default 1,000,000). */
  rowGroupRows?: number;
  /** Where unplaceable records go; default: a writer of the sink's own, closed when it ends. */
  deadLetters?: DeadLetterWriter;
  stats?: SinkStats;
  /**
   * Worker threads that merge, encode and write partition files (pool.ts); 0 does it all on
   * the calling thread. Default: 1 with two or more cores, else 0. Output is the same either way.
   */
  workers?: number;
  /** Rows a run must bring before its writer threads start (default 50,000; 0: at once). */
  workerStartRows?: number;
  /** Writer threads shared with the run's other sinks (used once running, left running at the end). */
  writers?: SharedWriters;
  /**
   * Runs each read-merge-write of the dataset's manifest alone among every process writing the
   * same output (several workers: a PostgreSQL advisory lock, pipelines/state/shared.ts);
   * without it, writes are only serialized within this sink.
   */
  manifestLock?: ManifestLock;
}

/** Runs `write` while holding the dataset manifest's lock. */
export type ManifestLock = (dataset: Dataset, write: () => Promise<unknown>) => Promise<void>;

export type SinkConfig = SinkOptions & SinkExtras;

interface ResolvedConfig {
  outDir: string;
  format: OutputFormat;
  runId: string;
  compression: Compression;
  highWaterRows: number;
  maxOpenPartitions: number;
  parquetEngine: ParquetEngine;
  fsync: boolean;
  rowGroupRows: number;
  deadLetters: DeadLetterWriter | null;
  stats: SinkStats;
  workers: number;
  workerStartRows: number;
  writers: SharedWriters | null;
  manifestLock: ManifestLock | null;
}

const KNOWN_OPTIONS = new Set([
  'outDir',
  'format',
  'runId',
  'compression',
  'highWaterRows',
  'maxOpenPartitions',
  'parquetEngine',
  'fsync',
  'rowGroupRows',
  'deadLetters',
  'stats',
  'workers',
  'workerStartRows',
  'writers',
  'manifestLock',
]);

function positiveInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new EtlError('USAGE', `sink option ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new EtlError('USAGE', `sink option ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
}

/** Validates sink options once; unknown keys are rejected. */
export function resolveSinkConfig(options: SinkConfig): ResolvedConfig {
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new EtlError('USAGE', `unknown sink option ${JSON.stringify(key)}`);
  }
  if (typeof options.outDir !== 'string' || options.outDir === '') throw new EtlError('USAGE', 'sink option outDir must be a folder path');
  if (typeof options.runId !== 'string' || options.runId === '') throw new EtlError('USAGE', 'sink option runId must be a non-empty string');
  return {
    outDir: options.outDir,
    format: oneOf('format', options.format, ['parquet', 'arrow'] as const, 'parquet'),
    runId: options.runId,
    compression: oneOf('compression', options.compression, ['snappy', 'zstd', 'none'] as const, 'snappy'),
    highWaterRows: positiveInt('highWaterRows', options.highWaterRows, DEFAULT_HIGH_WATER_ROWS),
    maxOpenPartitions: positiveInt('maxOpenPartitions', options.maxOpenPartitions, DEFAULT_MAX_OPEN_PARTITIONS),
    parquetEngine: oneOf('parquetEngine', options.parquetEngine, PARQUET_ENGINES, 'fast'),
    fsync: options.fsync ?? false,
    rowGroupRows: positiveInt('rowGroupRows', options.rowGroupRows, DEFAULT_ROW_GROUP_ROWS),
    deadLetters: options.deadLetters ?? null,
    stats: options.stats ?? createSinkStats(),
    workers: options.workers === 0 ? 0 : positiveInt('workers', options.workers, DEFAULT_WORKERS),
    workerStartRows: options.workerStartRows === 0 ? 0 : positiveInt('workerStartRows', options.workerStartRows, DEFAULT_WORKER_START_ROWS),
    writers: options.writers ?? null,
    manifestLock: options.manifestLock ?? null,
  };
}

interface PartitionBuffer {
  /** The record's own date and humanId (the keys of SinkRun.buffers). */
  date: string;
  user: string;
  /** Relative to outDir: <dataset>/date=…/user=… (escaped) */
  dir: string;
  /** Rows in arrival order: the packed chunks first, then the rows not packed yet. */
  chunks: Packed[];
  rows: Row[];
  count: number;
  lastUsed: number;
  /** Brought rows in the batch being added. */
  touched: boolean;
}

/**
 * Rows of one partition from one batch, from this many on, are packed into columns at once
 * (an intraday day: 1,440). Row objects then die young instead of being held until the
 * partition is flushed: measured in bench/intraday-e2e, holding them grew the main thread's
 * heap to ~150 MB for ~25 MB live, and made its garbage collection the third largest cost.
 */
const CHUNK_ROWS = 256;

/** Time column declared as the files' sort order (lib/schema.ts DATASET_ORDER). */
export function declaredSortOrder(dataset: Dataset): string[] {
  const time = DATASET_ORDER[dataset].timeColumn;
  return time === null ? [] : [time];
}

/** The key-value metadata of every file a sink writes (write-partition.ts adds the report's facts). */
export function fileMetadata(dataset: Dataset, specs: readonly ColumnSpec[], runId: string): [string, string][] {
  const units: Record<string, string> = {};
  for (const spec of specs) if (spec.unit !== undefined) units[spec.name] = spec.unit;
  return [
    ['wearable-etl.schema_version', String(SCHEMA_VERSION)],
    ['wearable-etl.run_id', runId],
    ['wearable-etl.dataset', dataset],
    ['wearable-etl.units', JSON.stringify(units)],
  ];
}

class SinkRun {
  private readonly specs: readonly ColumnSpec[];
  private readonly format: FileFormat;
  /** Open partition buffers by raw date, then raw humanId. */
  private readonly buffers = new Map<string, Map<string, PartitionBuffer>>();
  private last: PartitionBuffer | null = null;
  private open = 0;
  private buffered = 0;
  private readonly check: (batch: readonly unknown[]) => Map<number, string> | null;
  private readonly pendingWrites = new Map<string, Promise<void>>();
  private writeError: unknown = null;
  /**
   * Told the first failure of a write or a checkpoint, which run apart from the intake: the
   * sink's loop stops on it at once instead of waiting for batches that may never come (a
   * checkpoint that lost the state database leaves its user's stream, and so the input, hanging).
   */
  onFail: ((err: unknown) => void) | null = null;
  private tick = 0;
  private readonly dates = new Map<string, string | EtlError>();
  private readonly users = new Map<string, string | EtlError>();
  private readonly written = new Map<string, ManifestFile>();
  /** Checkpoints (commitUser): the user of each written partition, and the users committed. */
  private readonly writtenBy = new Map<string, string>();
  private readonly committedUsers = new Set<string>();
  /** Checkpoints on their way (commitUser); each settles, a failure lands in writeError. */
  private readonly checkpoints = new Set<Promise<void>>();
  /** Checkpoints whose files are in place, for the next manifest write (commitReady). */
  private ready: Array<{ commit: UserCommit; resolve: () => void; reject: (err: unknown) => void }> = [];
  /** commitReady is running; it clears this in the same step as it finds nothing more to do. */
  private committing = false;
  /** Users with a partition file that could not be written: no checkpoint for them. */
  private readonly failedUsers = new Set<string>();
  private readonly deadLetters: DeadLetterWriter;
  private readonly ownDeadLetters: boolean;
  private rowsIn = 0;
  private deadLetterCount = 0;
  private readonly keyValueMetadata: [string, string][];
  private readonly sortedBy: string[];
  private pool: WritePool | null = null;
  private readonly touched: PartitionBuffer[] = [];
  private readonly humanIdColumn: number;
  private readonly storage: StorageConfig;

  constructor(
    private readonly dataset: Dataset,
    private readonly cfg: ResolvedConfig,
  ) {
    this.specs = COLUMNS[dataset];
    this.check = batchChecker(this.specs);
    this.format = fileFormat(cfg.format, cfg.compression, cfg.parquetEngine, cfg.rowGroupRows);
    this.ownDeadLetters = cfg.deadLetters === null;
    this.deadLetters = cfg.deadLetters ?? createDeadLetterWriter(cfg.outDir, dataset, cfg.runId);
    this.keyValueMetadata = fileMetadata(dataset, this.specs, cfg.runId);
    this.sortedBy = declaredSortOrder(dataset);
    this.humanIdColumn = this.specs.findIndex((spec) => spec.name === 'humanId');
    this.storage = storageConfig(cfg.outDir, cfg.runId, cfg.fsync);
  }

  private reject(record: unknown, reason: string, code: string): void {
    const context: Record<string, string | number> = { stage: 'sink', code };
    if (record !== null && typeof record === 'object') {
      const r = record as Row;
      if (typeof r['id'] === 'string') context['id'] = r['id'].slice(0, 200);
      if (typeof r['date'] === 'string') context['date'] = r['date'].slice(0, 40);
    }
    this.deadLetters.write({ dataset: this.dataset, reason, context, raw: record });
    this.deadLetterCount++;
  }

  private escaped(cache: Map<string, string | EtlError>, value: string, escape: (v: string) => string): string | EtlError {
    let result = cache.get(value);
    if (result === undefined) {
      try {
        result = escape(value);
      } catch (err) {
        result = err instanceof EtlError ? err : new EtlError('PARTITION', errorMessage(err));
      }
      // Keeps the caches bounded however many distinct bad values arrive.
      if (cache.size > 100_000) cache.clear();
      cache.set(value, result);
    }
    return result;
  }

  async add(batch: readonly unknown[] | PartitionColumns): Promise<void> {
    if (!Array.isArray(batch)) {
      const part = batch as Partial<PartitionColumns> | null;
      if (part?.kind !== 'columns' || typeof part.table !== 'object' || part.table === null) {
        throw new EtlError('SINK', `a ${this.dataset} batch must be an array of records or one partition's columns, got ${part === null ? 'null' : typeof part}`, { dataset: this.dataset });
      }
      return this.addColumns(batch as PartitionColumns);
    }
    const cfg = this.cfg;
    const stats = cfg.stats;
    const problems = this.check(batch);
    this.startWriters(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const record = batch[i];
      this.rowsIn++;
      const problem = problems?.get(i);
      if (problem !== undefined) {
        this.reject(record, problem, 'BAD_RECORD');
        continue;
      }
      const row = record as Row;
      const date = row['date'];
      const user = row['humanId'] as string;
      if (this.buffered >= cfg.highWaterRows) await this.flushLeastRecentlyUsed();
      let buffer = this.last;
      if (buffer === null || buffer.date !== date || buffer.user !== user) {
        buffer = this.buffers.get(date as string)?.get(user) ?? null;
        if (buffer === null) {
          const dir = this.placeOf(record, date, user);
          if (dir === null) continue;
          buffer = await this.openBuffer(date as string, user, dir);
        }
        this.last = buffer;
      }
      buffer.rows.push(row);
      buffer.count++;
      buffer.lastUsed = ++this.tick;
      if (!buffer.touched) {
        buffer.touched = true;
        this.touched.push(buffer);
      }
      this.buffered++;
      if (this.buffered > stats.maxBufferedRows) stats.maxBufferedRows = this.buffered;
    }
    for (const b of this.touched) {
      b.touched = false;
      if (b.rows.length >= CHUNK_ROWS) this.packRows(b);
    }
    this.touched.length = 0;
  }

  /**
   * The writer threads, once this run has brought enough rows to start them, or at once when
   * threads shared with another sink of the run are running.
   */
  private startWriters(rows: number): void {
    const cfg = this.cfg;
    if (this.pool !== null || cfg.workers === 0) return;
    const shared = cfg.writers;
    if (shared?.running) this.pool = shared.running;
    else if (this.rowsIn + rows >= cfg.workerStartRows) this.pool = shared ? shared.start(cfg.workers) : new WritePool(cfg.workers);
  }

  /** Stops the writer threads, unless they are shared (their maker stops them). */
  private async stopWriters(): Promise<void> {
    if (this.cfg.writers === null) await this.pool?.close();
  }

  /** A new buffer for a partition, after flushing the least recently used one if too many are open. */
  private async openBuffer(date: string, user: string, dir: string): Promise<PartitionBuffer> {
    if (this.open >= this.cfg.maxOpenPartitions) await this.flushLeastRecentlyUsed();
    const buffer: PartitionBuffer = { date, user, dir, chunks: [], rows: [], count: 0, lastUsed: 0, touched: false };
    let byUser = this.buffers.get(date);
    if (byUser === undefined) this.buffers.set(date, (byUser = new Map()));
    byUser.set(user, buffer);
    this.open++;
    if (this.open > this.cfg.stats.maxOpenPartitions) this.cfg.stats.maxOpenPartitions = this.open;
    return buffer;
  }

  /**
   * One partition's rows in columns: buffered as one packed chunk, without a row object each.
   * Columns with a value that does not fit, a humanId other than the partition's, or a
   * partition that cannot be named take the records path: each row is then placed, or sent to
   * the dead letters, as it would have been as a record.
   */
  private async addColumns(part: PartitionColumns): Promise<void> {
    const { table } = part;
    const shape = packedShapeProblem(this.specs, table);
    if (shape !== null) throw new EtlError('SINK', `columns for ${this.dataset} partition ${part.date} / ${part.humanId} do not fit the schema: ${shape}`, { dataset: this.dataset });
    const n = table.rowCount;
    if (n === 0) return;
    const dir = this.partitionDir(part.date, part.humanId);
    const users = table.columns[this.humanIdColumn] as Extract<PackedColumn, { type: 'string' }>;
    if (typeof dir !== 'string' || !packedAllEqual(users.strings, n, part.humanId) || !packedValuesFit(this.specs, table)) {
      return this.add(packedRecords(this.dataset, part.date, table));
    }
    const cfg = this.cfg;
    this.startWriters(n);
    this.rowsIn += n;
    while (this.buffered > 0 && this.buffered + n > cfg.highWaterRows) await this.flushLeastRecentlyUsed();
    let buffer = this.buffers.get(part.date)?.get(part.humanId) ?? null;
    if (buffer === null) buffer = await this.openBuffer(part.date, part.humanId, dir);
    this.last = buffer;
    this.packRows(buffer); // rows that came before stay before
    buffer.chunks.push({ packed: table, transfer: transferList(table) });
    buffer.count += n;
    buffer.lastUsed = ++this.tick;
    this.buffered += n;
    if (this.buffered > cfg.stats.maxBufferedRows) cfg.stats.maxBufferedRows = this.buffered;
  }

  /** Moves a buffer's unpacked rows into a packed chunk. */
  private packRows(buffer: PartitionBuffer): void {
    if (buffer.rows.length === 0) return;
    buffer.chunks.push(packTable(toColumns(this.specs, buffer.rows)));
    buffer.rows = [];
  }

  /** A buffer's rows as packed chunks in arrival order; empties the buffer. */
  private takeChunks(buffer: PartitionBuffer): Packed[] {
    this.packRows(buffer);
    const chunks = buffer.chunks;
    buffer.chunks = [];
    return chunks;
  }

  /** The partition folder of a date and user, or why they cannot name one. */
  private partitionDir(date: unknown, user: string): string | EtlError {
    const safeDate = typeof date === 'string' ? this.escaped(this.dates, date, validateDate) : new EtlError('PARTITION', 'record has no partition date (date: YYYY-MM-DD)');
    if (safeDate instanceof EtlError) return safeDate;
    const safeUser = this.escaped(this.users, user, (v) => escapePartitionValue(v, 'user'));
    if (safeUser instanceof EtlError) return safeUser;
    return `${this.dataset}/date=${safeDate}/user=${safeUser}`;
  }

  /** The partition folder of a record, or null after sending it to the dead letters. */
  private placeOf(record: unknown, date: unknown, user: string): string | null {
    const dir = this.partitionDir(date, user);
    if (typeof dir === 'string') return dir;
    this.reject(record, dir.message, dir.code);
    return null;
  }

  private async flushLeastRecentlyUsed(): Promise<void> {
    let oldest: PartitionBuffer | null = null;
    for (const byUser of this.buffers.values()) {
      for (const buffer of byUser.values()) if (oldest === null || buffer.lastUsed < oldest.lastUsed) oldest = buffer;
    }
    if (oldest !== null) await this.flush(oldest);
  }

  private async flush(buffer: PartitionBuffer): Promise<void> {
    const byUser = this.buffers.get(buffer.date)!;
    byUser.delete(buffer.user);
    if (byUser.size === 0) this.buffers.delete(buffer.date);
    if (this.last === buffer) this.last = null;
    this.open--;
    this.buffered -= buffer.count;
    buffer.count = 0;
    await this.writePartition(buffer);
  }

  private async writePartition(buffer: PartitionBuffer): Promise<void> {
    const cfg = this.cfg;
    const relPath = `${buffer.dir}/${this.format.fileName}`;
    // A partition flushed again while its previous file is still being written waits for it.
    const pending = this.pendingWrites.get(relPath);
    if (pending !== undefined) await pending;
    const chunks = this.takeChunks(buffer);
    this.writtenBy.set(relPath, buffer.user);
    const job: PartitionJob = {
      dataset: this.dataset,
      format: cfg.format,
      compression: cfg.compression,
      engine: cfg.parquetEngine,
      rowGroupRows: cfg.rowGroupRows,
      meta: { keyValueMetadata: this.keyValueMetadata, sortedBy: this.sortedBy },
      storage: this.storage,
      relPath,
      tables: chunks.map((c) => c.packed),
    };
    const pool = this.pool;
    // On the writer thread, or here; the write overlaps with buffering the next partitions.
    return this.startWrite(relPath, async () => {
      const written = pool === null ? await writePartition(job) : await pool.write(job, chunks.flatMap((c) => c.transfer));
      const stats = cfg.stats;
      if (pool !== null) stats.threadWrites++;
      if (written.merged) stats.mergedWithExisting++;
      stats.merge.added += written.counts.added;
      stats.merge.replaced += written.counts.replaced;
      stats.merge.unchanged += written.counts.unchanged;
      return written;
    });
  }

  /**
   * Starts a partition file's write, a few at a time to bound the memory; once the file is in
   * place it gets its manifest entry. The first failure is kept and fails the run.
   */
  private async startWrite(relPath: string, write: () => Promise<PartitionWritten>): Promise<void> {
    while (this.pendingWrites.size >= MAX_PENDING_WRITES) await Promise.race(this.pendingWrites.values());
    const tracked = write().then(
      ({ rows, bytes }) => {
        this.pendingWrites.delete(relPath);
        this.written.set(relPath, { path: relPath.slice(this.dataset.length + 1), format: this.format.format, rows, bytes, runId: this.cfg.runId });
        this.cfg.stats.partitionWrites++;
      },
      (err: unknown) => {
        this.pendingWrites.delete(relPath);
        this.fail(err);
        const user = this.writtenBy.get(relPath);
        if (user !== undefined) this.failedUsers.add(user);
      },
    );
    this.pendingWrites.set(relPath, tracked);
    if (this.writeError !== null) throw this.writeError;
  }

  private fail(err: unknown): void {
    if (this.writeError !== null) return;
    this.writeError = err;
    this.onFail?.(err);
  }

  /** The first failure of a write or a checkpoint, or null. */
  get failure(): unknown {
    return this.writeError;
  }

  private async drainWrites(): Promise<void> {
    while (this.pendingWrites.size > 0) await Promise.all(this.pendingWrites.values());
    if (this.writeError !== null) throw this.writeError;
  }

  /**
   * A checkpoint: every open partition of `humanId` is written and renamed into place, the
   * manifest lists every file of this run so far, then `commit.committed()` runs. It completes
   * in the background while the sink takes other users' batches (waiting here stalled every
   * stream: in bench/api-bound the sink spent most of the run inside checkpoints, behind other
   * users' writes, the manifest and the state's fsync).
   */
  async commitUser(commit: UserCommit): Promise<void> {
    const mine = [...this.buffers.values()].flatMap((byUser) => {
      const b = byUser.get(commit.humanId);
      return b === undefined ? [] : [b];
    });
    for (const buffer of mine) await this.flush(buffer);
    const writes = [...this.pendingWrites].filter(([rel]) => this.writtenBy.get(rel) === commit.humanId).map(([, write]) => write);
    while (this.checkpoints.size >= MAX_PENDING_CHECKPOINTS) await Promise.race(this.checkpoints);
    const step: Promise<void> = Promise.all(writes)
      .then(
        () =>
          new Promise<void>((resolve, reject) => {
            this.ready.push({ commit, resolve, reject });
            if (!this.committing) void this.commitReady();
          }),
      )
      .catch((err: unknown) => this.fail(err))
      .finally(() => this.checkpoints.delete(step));
    this.checkpoints.add(step);
  }

  /**
   * Checkpoints whose files are in place, a group at a time: one manifest write lists the whole
   * group, then each user's `committed()` runs (the state store saves them together), and only
   * then the next group's manifest is written. So the manifest is never more than one group
   * ahead of the state, as it was one user ahead when checkpoints ran one by one.
   */
  private async commitReady(): Promise<void> {
    this.committing = true;
    while (this.ready.length > 0) {
      const group = this.ready.splice(0);
      // A user one of whose files failed gets no checkpoint (the run fails at its end); the
      // others' files are in place and their checkpoints go on, so nothing fetched is lost.
      const ok = group.filter(({ commit, reject }) => {
        if (!this.failedUsers.has(commit.humanId)) return true;
        reject(this.writeError);
        return false;
      });
      try {
        for (const { commit } of ok) this.committedUsers.add(commit.humanId);
        await this.updateManifest(false);
        await Promise.all(ok.map(({ commit }) => commit.committed()));
        for (const { resolve } of ok) resolve();
      } catch (err) {
        for (const { reject } of ok) reject(err);
      }
    }
    this.committing = false;
  }

  /**
   * Reads, merges and replaces the manifest (under the workers' lock when there is one). `all`:
   * every file of the run (at its end), else only those of users at their checkpoint: a file
   * of a user still going (flushed early to bound memory) is listed once its user is committed,
   * so the manifest never runs ahead of the state.
   */
  private async updateManifest(all: boolean): Promise<void> {
    const listed = all ? [...this.written.values()] : [...this.written].filter(([rel]) => this.committedUsers.has(this.writtenBy.get(rel) as string)).map(([, f]) => f);
    if (listed.length === 0) return;
    const write = (): Promise<unknown> => writeManifest(this.cfg.outDir, this.dataset, this.cfg.runId, listed, this.cfg.fsync);
    if (this.cfg.manifestLock) await this.cfg.manifestLock(this.dataset, write);
    else await write();
  }

  private async drainCheckpoints(): Promise<void> {
    while (this.checkpoints.size > 0) await Promise.all(this.checkpoints);
  }

  /** Flushes every open partition, then dead letters, then the manifest. */
  async finish(): Promise<DatasetSummary> {
    const remaining = [...this.buffers.values()].flatMap((byUser) => [...byUser.values()]);
    remaining.sort((a, b) => (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0));
    for (const buffer of remaining) await this.flush(buffer);
    await this.drainWrites();
    await this.drainCheckpoints();
    if (this.writeError !== null) throw this.writeError;
    await this.stopWriters();
    if (this.ownDeadLetters) await this.deadLetters.close();
    await this.updateManifest(true);
    // Leaves no empty temporary folders behind (other sinks of the run may still use them).
    if (this.storage.kind === 'folder') {
      await rmdir(runTmpDir(this.cfg.outDir, this.cfg.runId)).catch(() => undefined);
      await rmdir(join(this.cfg.outDir, TMP_DIR)).catch(() => undefined);
    }
    const paths = [...this.written.keys()].sort();
    let rows = 0;
    for (const f of this.written.values()) rows += f.rows;
    return {
      dataset: this.dataset,
      rows,
      rowsIn: this.rowsIn,
      files: paths.length,
      partitions: paths.length,
      deadLetters: this.deadLetterCount,
      paths,
    };
  }

  /** After a failure: dead letters still become visible; buffered rows are dropped. */
  async abort(): Promise<void> {
    await Promise.allSettled(this.pendingWrites.values());
    await this.drainCheckpoints(); // checkpoints whose files are in place still save their users' state
    await this.stopWriters();
    this.buffers.clear();
    this.last = null;
    this.open = 0;
    this.buffered = 0;
    if (this.ownDeadLetters) await this.deadLetters.close().catch(() => null);
  }
}

/**
 * A checkpoint in a sink's input (pipelines/user-streams.ts): when the sink reaches it, the
 * rows of `humanId` that came before are committed — files in place, listed in the manifest —
 * and then `committed` is awaited (the pipeline saves that user's state).
 */
export class UserCommit {
  constructor(
    readonly humanId: string,
    readonly committed: () => Promise<void>,
  ) {}
}

/** A sink that also takes checkpoints. */
export type CheckpointingSink<D extends Dataset> = (batches: AsyncIterable<SinkBatch<D> | UserCommit>) => Promise<DatasetSummary>;

/**
 * A sink for one dataset. Each call of the returned function is one run: it resolves when
 * every record is in a complete, visible file (or in the dead-letter file).
 */
export function createSink<D extends Dataset>(dataset: D, options: SinkConfig): CheckpointingSink<D> {
  assertDataset(dataset);
  const cfg = resolveSinkConfig(options);
  runTmpDir(cfg.outDir, cfg.runId); // rejects a run id that cannot name files, now rather than mid-run
  return async (batches: AsyncIterable<SinkBatch<D> | UserCommit>): Promise<DatasetSummary> => {
    await loadCodec(cfg.compression);
    const run = new SinkRun(dataset, cfg);
    const input = batches[Symbol.asyncIterator]();
    // The next batch, or the run's first failure if it comes first. A fresh promise per batch:
    // racing one long-lived promise would keep every batch reachable from its reactions.
    const nextOrFailure = (): Promise<IteratorResult<SinkBatch<D> | UserCommit>> =>
      new Promise((resolve, reject) => {
        if (run.failure !== null) return reject(run.failure);
        run.onFail = reject;
        input.next().then(resolve, reject);
      });
    try {
      for (;;) {
        const next = await nextOrFailure();
        run.onFail = null;
        if (next.done) break;
        const batch = next.value;
        if (batch instanceof UserCommit) await run.commitUser(batch);
        else await run.add(batch);
      }
      return await run.finish();
    } catch (err) {
      void input.return?.(undefined)?.catch(() => undefined); // not awaited: the input may be stuck in an await
      await run.abort();
      if (err instanceof EtlError) throw err;
      throw new EtlError('SINK', `writing ${dataset} failed: ${errorMessage(err)}`, { dataset }, { cause: err });
    }
  };
}
