// Arrow IPC *file* format from column buffers (apache-arrow), with the same schema as the
// Parquet files: Utf8, Float64, Int64, Int32 and Timestamp<MILLISECOND, "UTC">.
// Units go into each field's metadata; schema version, run id and dataset into the schema's.
import {
  Bool,
  CompressionType,
  Data,
  Field,
  Float64,
  Int32,
  Int64,
  RecordBatch,
  RecordBatchFileWriter,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  Utf8,
  compressionRegistry,
  makeData,
} from 'apache-arrow';
import type { DataType } from 'apache-arrow';
import type { Compression } from '../../lib/sink.js';
import type { ColumnSpec } from '../../lib/schema.js';
import type { ColumnData, ColumnTable } from '../columns.js';
import { compressBlock, decompressZstd } from '../compression.js';

export interface ArrowEncodeOptions {
  /** 'zstd' compresses the record batch bodies (IPC ZSTD); Arrow IPC has no snappy, so 'snappy' and 'none' write plain buffers. */
  compression: Compression;
  keyValueMetadata: readonly (readonly [string, string])[];
  /** Rows per record batch (default 1,000,000). */
  batchRows?: number;
}

export function arrowType(spec: ColumnSpec): DataType {
  switch (spec.type) {
    case 'string':
      return new Utf8();
    case 'double':
      return new Float64();
    case 'int32':
      return new Int32();
    case 'boolean':
      return new Bool();
    case 'int64':
      return new Int64();
    case 'timestamp':
      return new TimestampMillisecond('UTC');
  }
}

export function arrowSchema(specs: readonly ColumnSpec[], keyValueMetadata: readonly (readonly [string, string])[]): Schema {
  const fields = specs.map((spec) => new Field(spec.name, arrowType(spec), spec.nullable, spec.unit === undefined ? null : new Map([['unit', spec.unit]])));
  return new Schema(fields, new Map(keyValueMetadata.map(([k, v]) => [k, v] as [string, string])));
}

let zstdRegistered = false;
/** Registers the ZSTD codec with apache-arrow (after loadCodec('zstd')). */
export function registerArrowZstd(): void {
  if (zstdRegistered) return;
  compressionRegistry.set(CompressionType.ZSTD, {
    encode: (data: Uint8Array) => compressBlock('zstd', data),
    decode: (data: Uint8Array) => decompressZstd(data),
  });
  zstdRegistered = true;
}

function validityBitmap(valid: Uint8Array | null, start: number, end: number): { bitmap: Uint8Array | undefined; nullCount: number } {
  if (valid === null) return { bitmap: undefined, nullCount: 0 };
  const bitmap = new Uint8Array(((end - start + 63) >> 6) << 3);
  let nullCount = 0;
  for (let i = start; i < end; i++) {
    if (valid[i]) bitmap[(i - start) >> 3]! |= 1 << ((i - start) & 7);
    else nullCount++;
  }
  return nullCount === 0 ? { bitmap: undefined, nullCount: 0 } : { bitmap, nullCount };
}

function columnData(spec: ColumnSpec, col: ColumnData, start: number, end: number): Data {
  const length = end - start;
  if (col.type === 'string') {
    const valid = new Uint8Array(length);
    const offsets = new Int32Array(length + 1);
    const parts: string[] = [];
    let ascii = true;
    for (let i = start; i < end; i++) {
      const v = col.values[i];
      if (v !== null && v !== undefined) {
        valid[i - start] = 1;
        parts.push(v);
      }
    }
    const joined = parts.join('');
    const bytes = Buffer.from(joined, 'utf8');
    ascii = bytes.length === joined.length;
    let pos = 0;
    let k = 0;
    for (let i = 0; i < length; i++) {
      if (valid[i]) pos += ascii ? parts[k++]!.length : Buffer.byteLength(parts[k++]!, 'utf8');
      offsets[i + 1] = pos;
    }
    const { bitmap, nullCount } = validityBitmap(valid, 0, length);
    return makeData({ type: new Utf8(), length, nullCount, nullBitmap: bitmap, valueOffsets: offsets, data: bytes });
  }
  const { bitmap, nullCount } = validityBitmap(col.valid, start, end);
  switch (col.type) {
    case 'double':
      return makeData({ type: new Float64(), length, nullCount, nullBitmap: bitmap, data: (col.values as Float64Array).subarray(start, end) });
    case 'int32':
      return makeData({ type: new Int32(), length, nullCount, nullBitmap: bitmap, data: (col.values as Int32Array).subarray(start, end) });
    case 'boolean': {
      // Arrow booleans are a bitmap, least significant bit first.
      const data = new Uint8Array((length + 7) >> 3);
      const src = col.values;
      for (let i = start; i < end; i++) if (src[i]) data[(i - start) >> 3]! |= 1 << ((i - start) & 7);
      return makeData({ type: new Bool(), length, nullCount, nullBitmap: bitmap, data });
    }
    case 'int64':
    case 'timestamp': {
      const data = new BigInt64Array(length);
      const src = col.values as Float64Array;
      for (let i = start; i < end; i++) {
        if (col.valid === null || col.valid[i]) data[i - start] = BigInt(src[i]!);
      }
      return spec.type === 'int64'
        ? makeData({ type: new Int64(), length, nullCount, nullBitmap: bitmap, data })
        : makeData({ type: new TimestampMillisecond('UTC'), length, nullCount, nullBitmap: bitmap, data });
    }
  }
}

/** Encodes a whole Arrow IPC file. */
export function encodeArrow(specs: readonly ColumnSpec[], table: ColumnTable, options: ArrowEncodeOptions): Buffer {
  const schema = arrowSchema(specs, options.keyValueMetadata);
  const batchRows = Math.max(1, options.batchRows ?? 1_000_000);
  const batches: RecordBatch[] = [];
  for (let start = 0; start < table.rowCount; start += batchRows) {
    const end = Math.min(table.rowCount, start + batchRows);
    const children = specs.map((spec, c) => columnData(spec, table.columns[c]!, start, end));
    const struct = makeData({ type: new Struct(schema.fields), length: end - start, nullCount: 0, children });
    batches.push(new RecordBatch(schema, struct));
  }
  const arrowTable = batches.length > 0 ? new Table(batches) : new Table(schema);
  const compressionType = options.compression === 'zstd' ? CompressionType.ZSTD : null;
  if (compressionType !== null) registerArrowZstd();
  const writer = RecordBatchFileWriter.writeAll(arrowTable, { compressionType });
  const bytes = writer.toUint8Array(true);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
