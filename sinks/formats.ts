// The file formats a sink can write: how to encode a partition and how to read it back.
import type { Compression, OutputFormat } from '../lib/sink.js';
import type { ColumnSpec } from '../lib/schema.js';
import type { ColumnTable, Row } from './columns.js';
import { encodeParquet } from './parquet/encoder.js';

// Loaded on first use, in each thread: apache-arrow (~19 MB of RSS), hyparquet (~7 MB, only to
// merge with a partition's file) and hyparquet-writer are not needed by most runs, and the
// writer thread would pay for them a second time (bench/intraday-e2e peak RSS).
const arrow = () => import('./arrow/index.js');
const hyparquetWriter = () => import('./parquet/hyparquet-writer.js');
const parquetReader = () => import('./parquet/reader.js');

/** 'fast': our encoder (parquet/encoder.ts); 'hyparquet-writer': the library, for comparison. */
export type ParquetEngine = 'fast' | 'hyparquet-writer';
export const PARQUET_ENGINES: readonly ParquetEngine[] = ['fast', 'hyparquet-writer'];

export interface FileMeta {
  keyValueMetadata: readonly (readonly [string, string])[];
  sortedBy: readonly string[];
}

export interface FileFormat {
  readonly format: OutputFormat;
  /** File name of a partition's data file. */
  readonly fileName: string;
  encode(specs: readonly ColumnSpec[], table: ColumnTable, meta: FileMeta): Buffer | Promise<Buffer>;
  /** The rows of a partition file (`label` names it in errors). */
  read(bytes: Uint8Array, specs: readonly ColumnSpec[], label: string): Promise<Row[]>;
}

export const CREATED_BY = 'wearable-etl';

export function fileFormat(format: OutputFormat, compression: Compression, engine: ParquetEngine, rowGroupRows: number): FileFormat {
  if (format === 'arrow') {
    return {
      format,
      fileName: 'data.arrow',
      encode: async (specs, table, meta) => (await arrow()).encodeArrow(specs, table, { compression, keyValueMetadata: meta.keyValueMetadata, batchRows: rowGroupRows }),
      read: async (bytes, specs, label) => (await arrow()).readArrowRows(bytes, specs, label),
    };
  }
  return {
    format,
    fileName: 'data.parquet',
    encode: (specs, table, meta) => {
      const options = { compression, keyValueMetadata: meta.keyValueMetadata, createdBy: CREATED_BY, rowGroupRows, sortedBy: meta.sortedBy };
      return engine === 'fast' ? encodeParquet(specs, table, options) : hyparquetWriter().then((m) => m.encodeParquetWithHyparquetWriter(specs, table, options));
    },
    read: async (bytes, specs, label) => (await parquetReader()).readParquetRows(bytes, specs, label),
  };
}
