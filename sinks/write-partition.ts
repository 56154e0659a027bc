// Writing one partition file: the partition's incoming rows (packed chunks in arrival order)
// merged by id with its file if it has one, sorted (partition-table.ts), encoded, and committed
// whole (storage.ts). The one path from buffered rows to a file: the sink runs it on the calling
// thread, or sends the job to a writer thread (pool.ts, write-worker.ts) that runs it there.
import type { ColumnTable, PackedTable } from '../lib/batch.js';
import type { Compression, OutputFormat } from '../lib/sink.js';
import type { Dataset } from '../lib/schema.js';
import { COLUMNS } from '../lib/schema.js';
import { loadCodec } from './compression.js';
import { fileFormat } from './formats.js';
import type { FileFormat, FileMeta, ParquetEngine } from './formats.js';
import type { MergeCounts } from './merge.js';
import { FACTS_KEY, tableFacts } from './partition-facts.js';
import { partitionTable } from './partition-table.js';
import { openStorage } from './storage.js';
import type { Storage, StorageConfig } from './storage.js';

/** Everything a partition write needs, as plain data (it may cross to a writer thread). */
export interface PartitionJob {
  dataset: Dataset;
  format: OutputFormat;
  compression: Compression;
  engine: ParquetEngine;
  rowGroupRows: number;
  meta: FileMeta;
  storage: StorageConfig;
  /** The file, relative to the output root: <dataset>/date=…/user=…/data.parquet */
  relPath: string;
  /** The partition's incoming rows, in arrival order: one packed table, or chunks of it. */
  tables: readonly PackedTable[];
}

export interface PartitionWritten {
  /** Rows in the file written (after merging with the partition's file, if any). */
  rows: number;
  bytes: number;
  /** Whether the partition had a file that was merged. */
  merged: boolean;
  counts: MergeCounts;
}

// Per thread: formats (and their codecs) and storages are made once.
const formats = new Map<string, FileFormat>();
const storages = new Map<string, Storage>();

async function formatOf(job: PartitionJob): Promise<FileFormat> {
  const key = `${job.format}|${job.compression}|${job.engine}|${job.rowGroupRows}`;
  let format = formats.get(key);
  if (format === undefined) {
    await loadCodec(job.compression);
    format = fileFormat(job.format, job.compression, job.engine, job.rowGroupRows);
    formats.set(key, format);
  }
  return format;
}

function storageOf(cfg: StorageConfig): Storage {
  const key = JSON.stringify(cfg);
  let storage = storages.get(key);
  if (storage === undefined) {
    if (storages.size >= 8) storages.clear(); // one per sink run; a long process starts many
    storages.set(key, (storage = openStorage(cfg)));
  }
  return storage;
}

/** The bytes of a partition file holding `table` (sorted), with the report's facts of its rows in its metadata (partition-facts.ts). */
export async function encodePartition(format: FileFormat, dataset: Dataset, table: ColumnTable, meta: FileMeta): Promise<Buffer> {
  const specs = COLUMNS[dataset];
  const facts = JSON.stringify(tableFacts(dataset, specs, table));
  return format.encode(specs, table, { ...meta, keyValueMetadata: [...meta.keyValueMetadata, [FACTS_KEY, facts]] });
}

/** Writes one partition file. Two writes of one partition must not overlap (the sink waits). */
export async function writePartition(job: PartitionJob): Promise<PartitionWritten> {
  const format = await formatOf(job);
  const storage = storageOf(job.storage);
  const specs = COLUMNS[job.dataset];
  const counts: MergeCounts = { added: 0, replaced: 0, unchanged: 0 };
  const existing = await storage.read(job.relPath);
  const table = await partitionTable(job.dataset, specs, format, job.tables, existing === null ? null : { bytes: existing, label: job.relPath }, counts);
  const bytes = await encodePartition(format, job.dataset, table, job.meta);
  await storage.commit(job.relPath, bytes);
  return { rows: table.rowCount, bytes: bytes.length, merged: existing !== null, counts };
}
