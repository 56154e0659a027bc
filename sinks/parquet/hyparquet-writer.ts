// The hyparquet-writer engine (parquetEngine: 'hyparquet-writer'): the same files through a
// maintained library, measured against our encoder in bench/intraday-e2e (bench/README.md has
// the figures and the decision). hyparquet-writer is a devDependency: this engine is for that
// comparison, loaded only when chosen.
import { ByteWriter, parquetWrite } from 'hyparquet-writer';
import type { ColumnSource } from 'hyparquet-writer/src/types.js';
import type { SchemaElement } from 'hyparquet';
import type { ColumnSpec } from '../../lib/schema.js';
import type { ColumnData, ColumnTable } from '../columns.js';
import { compressBlock } from '../compression.js';
import { MAX_STAT_BYTES } from './encoder.js';
import type { ParquetEncodeOptions } from './encoder.js';

const CODEC = { none: 'UNCOMPRESSED', snappy: 'SNAPPY', zstd: 'ZSTD' } as const;

function leaf(spec: ColumnSpec): SchemaElement {
  const repetition_type = spec.nullable ? 'OPTIONAL' : 'REQUIRED';
  switch (spec.type) {
    case 'string':
      return { name: spec.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' }, repetition_type };
    case 'timestamp':
      return { name: spec.name, type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' }, repetition_type };
    case 'int64':
      return { name: spec.name, type: 'INT64', repetition_type };
    case 'int32':
      return { name: spec.name, type: 'INT32', repetition_type };
    case 'double':
      return { name: spec.name, type: 'DOUBLE', repetition_type };
    case 'boolean':
      return { name: spec.name, type: 'BOOLEAN', repetition_type };
  }
}

/** A column as hyparquet-writer takes it: typed arrays where there are no nulls, else arrays with nulls. */
function values(spec: ColumnSpec, col: ColumnData, n: number): ColumnSource['data'] {
  if (col.type === 'string') return col.values.slice(0, n);
  const { valid } = col;
  if (spec.type === 'int64') {
    if (valid === null) return BigInt64Array.from(col.values.subarray(0, n), (v) => BigInt(v));
    return Array.from(col.values.subarray(0, n), (v, i) => (valid[i] ? BigInt(v) : null));
  }
  if (spec.type === 'boolean') return Array.from(col.values.subarray(0, n), (v, i) => (valid === null || valid[i] ? v === 1 : null));
  if (valid === null) return col.values.subarray(0, n);
  return Array.from(col.values.subarray(0, n), (v, i) => (valid[i] ? v : null));
}

export function encodeParquetWithHyparquetWriter(specs: readonly ColumnSpec[], table: ColumnTable, options: ParquetEncodeOptions): Buffer {
  const writer = new ByteWriter();
  const compress = (codec: 'snappy' | 'zstd') => (input: Uint8Array) => compressBlock(codec, input);
  const result = parquetWrite({
    writer,
    columnData: specs.map((spec, c) => ({ name: spec.name, data: values(spec, table.columns[c]!, table.rowCount), nullable: spec.nullable })),
    schema: [{ name: 'schema', num_children: specs.length }, ...specs.map(leaf)],
    codec: CODEC[options.compression],
    compressors: { SNAPPY: compress('snappy'), ZSTD: compress('zstd') },
    statisticsTruncateLength: MAX_STAT_BYTES,
    rowGroupSize: options.rowGroupRows ?? 1_000_000,
    kvMetadata: options.keyValueMetadata.map(([key, value]) => ({ key, value })),
    createdBy: `${options.createdBy} via hyparquet-writer`,
  });
  if (result instanceof Promise) throw new Error('hyparquet-writer wrote asynchronously to a buffer writer');
  return Buffer.from(writer.getBuffer());
}
