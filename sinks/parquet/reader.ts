// Reads a partition file back (to merge a re-run with it) through hyparquet, an independent
// reader. Timestamps come back as ms numbers, int64 as exact numbers, nulls as null.
import { parquetMetadata, parquetRead } from 'hyparquet';
import type { AsyncBuffer } from 'hyparquet';
import { EtlError } from '../../lib/errors.js';
import type { ColumnSpec } from '../../lib/schema.js';
import { decompressSnappy, decompressZstd, loadCodec } from '../compression.js';
import { compatibleColumns, fromColumns, isInt32Backed } from '../columns.js';
import type { ColumnData, Row } from '../columns.js';

export function asyncBufferOf(bytes: Uint8Array): AsyncBuffer {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return { byteLength: ab.byteLength, slice: (start: number, end?: number) => ab.slice(start, end) };
}

function toNumber(value: unknown, column: string, path: string): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'bigint') {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new EtlError('SINK', `${path}: column ${column} holds ${value}, beyond ±2^53`, { path });
    return n;
  }
  throw new EtlError('SINK', `${path}: column ${column} holds a ${typeof value} where a number was expected`, { path });
}

/** Reads every row of a Parquet partition file (`path` names it in errors); throws EtlError('SINK') if its columns are not `specs`. */
export async function readParquetRows(bytes: Uint8Array, specs: readonly ColumnSpec[], path: string): Promise<Row[]> {
  const file = asyncBufferOf(bytes);
  const metadata = parquetMetadata(file.slice(0, file.byteLength) as ArrayBuffer);
  const missing = compatibleColumns(metadata.schema.slice(1).map((el) => el.name), specs, path);
  if (metadata.row_groups.some((rg) => rg.columns.some((c) => c.meta_data?.codec === 'ZSTD'))) await loadCodec('zstd');
  const rowCount = Number(metadata.num_rows);
  // Column-wise: hyparquet hands over decoded column chunks; rows are built once, below.
  const columns = new Map<string, unknown[]>(specs.map((s) => [s.name, new Array<unknown>(rowCount)]));
  await parquetRead({
    file,
    metadata,
    compressors: { SNAPPY: (input: Uint8Array) => decompressSnappy(input), ZSTD: (input: Uint8Array) => decompressZstd(input) },
    // Other writers (DuckDB, Spark) store micro- or nanoseconds: our columns are milliseconds.
    parsers: {
      timestampFromMilliseconds: (ms: bigint) => Number(ms),
      timestampFromMicroseconds: (us: bigint) => Number(us / 1000n),
      timestampFromNanoseconds: (ns: bigint) => Number(ns / 1_000_000n),
    },
    onChunk: (chunk) => {
      const target = columns.get(chunk.columnName);
      if (target === undefined) return;
      const data = chunk.columnData;
      for (let i = 0; i < data.length; i++) target[chunk.rowStart + i] = data[i];
    },
  });
  const table: ColumnData[] = specs.map((spec) => {
    const values = columns.get(spec.name)!;
    if (missing.has(spec.name)) values.fill(null);
    if (spec.type === 'string') {
      for (let i = 0; i < rowCount; i++) {
        const v = values[i];
        if (v === undefined) values[i] = null;
        else if (v !== null && typeof v !== 'string') throw new EtlError('SINK', `${path}: column ${spec.name} holds a ${typeof v} where a string was expected`, { path });
      }
      return { type: 'string', values: values as (string | null)[] };
    }
    const numbers = isInt32Backed(spec.type) ? new Int32Array(rowCount) : new Float64Array(rowCount);
    let valid: Uint8Array | null = null;
    for (let i = 0; i < rowCount; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        valid ??= new Uint8Array(rowCount).fill(1);
        valid[i] = 0;
      } else numbers[i] = toNumber(v, spec.name, path);
    }
    return { type: spec.type, values: numbers, valid };
  });
  return fromColumns(specs, { rowCount, columns: table });
}
