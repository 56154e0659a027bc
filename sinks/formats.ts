// The file formats a sink can write: how to encode a partition and how to read it back.
import type { Compression, OutputFormat } from '../lib/sink.js';
import type { ColumnSpec } from '../lib/schema.js';
import type { ColumnTable, Row } from './columns.js';
import { encodeArrow, readArrowRows } from './arrow/index.js';
import { encodeParquet, encodeParquetWithParquetjs, readParquetRows } from './parquet/index.js';

export type ParquetEngine = 'fast' | 'parquetjs';

export interface FileMeta {
  keyValueMetadata: readonly (readonly [string, string])[];
  sortedBy: readonly string[];
}

export interface FileFormat {
  readonly format: OutputFormat;
  /** File name of a partition's data file. */
  readonly fileName: string;
  encode(specs: readonly ColumnSpec[], table: ColumnTable, meta: FileMeta): Buffer | Promise<Buffer>;
  read(path: string, specs: readonly ColumnSpec[]): Promise<Row[]>;
}

export const CREATED_BY = 'wearable-etl';

export function fileFormat(format: OutputFormat, compression: Compression, engine: ParquetEngine, rowGroupRows: number): FileFormat {
  if (format === 'arrow') {
    return {
      format,
      fileName: 'data.arrow',
      encode: (specs, table, meta) => encodeArrow(specs, table, { compression, keyValueMetadata: meta.keyValueMetadata, batchRows: rowGroupRows }),
      read: readArrowRows,
    };
  }
  return {
    format,
    fileName: 'data.parquet',
    encode: (specs, table, meta) => {
      const options = { compression, keyValueMetadata: meta.keyValueMetadata, createdBy: CREATED_BY, rowGroupRows, sortedBy: meta.sortedBy };
      return engine === 'fast' ? encodeParquet(specs, table, options) : encodeParquetWithParquetjs(specs, table, options);
    },
    read: readParquetRows,
  };
}
