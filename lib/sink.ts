// The contract between pipelines and sinks.
import type { PartitionColumns } from './batch.js';
import type { Dataset, DatasetRecords, DeadLetter } from './schema.js';

export type { PartitionColumns } from './batch.js';

export type OutputFormat = 'parquet' | 'arrow';
export type Compression = 'snappy' | 'zstd' | 'none';

export interface SinkOptions {
  /** Output root; every file lands below it. */
  outDir: string;
  format: OutputFormat;
  /** Identifies this run in file metadata, the manifest and temporary names. */
  runId: string;
  compression?: Compression;
  /** Rows buffered across all open partitions before the least recently used are flushed. */
  highWaterRows?: number;
  /** Open partitions (buffers) at most; the least recently used is flushed past it. */
  maxOpenPartitions?: number;
}

export interface DatasetSummary {
  dataset: Dataset;
  /** Rows in the partitions this run wrote (after merging with what was there). */
  rows: number;
  /** Rows this run brought. */
  rowsIn: number;
  files: number;
  partitions: number;
  deadLetters: number;
  /** Output files written, relative to outDir. */
  paths: string[];
}

/** One batch: records of any partitions, or the columns of one partition. */
export type SinkBatch<D extends Dataset> = readonly DatasetRecords[D][] | PartitionColumns;

/**
 * A sink takes batches (records of any number of partitions, or one partition's columns)
 * and commits them. When the promise resolves, every record is in a visible, complete file.
 */
export type Sink<D extends Dataset> = (batches: AsyncIterable<SinkBatch<D>>) => Promise<DatasetSummary>;

export interface DeadLetterWriter {
  write(letter: DeadLetter): void;
  readonly count: number;
  /** Makes the dead letters visible (atomically) and returns the file path, or null if none. */
  close(): Promise<string | null>;
}
