// The parquetjs-lite engine (parquetEngine: 'parquetjs'), driven column-wise: the row-group
// buffer parquetjs-lite would build with shredRecord is filled straight from the columns,
// then parquetjs-lite encodes the pages. The footer is ours (footer.ts), because
// parquetjs-lite writes only the naive TIMESTAMP_MILLIS converted type, not the UTC
// logical type. One row group per file.
import parquetCompression from 'parquetjs-lite/lib/compression.js';
import parquetSchema from 'parquetjs-lite/lib/schema.js';
import parquetWriter from 'parquetjs-lite/lib/writer.js';
import type { Compression } from '../../lib/sink.js';
import type { ColumnSpec, ColumnType } from '../../lib/schema.js';
import { EtlError, errorMessage } from '../../lib/errors.js';
import { compressBlock, decompressZstd } from '../compression.js';
import type { ColumnTable } from '../columns.js';
import { encodeFooter } from './footer.js';
import type { ParquetEncodeOptions } from './encoder.js';

const PARQUETJS_TYPE: Record<ColumnType, string> = {
  string: 'UTF8',
  timestamp: 'TIMESTAMP_MILLIS',
  double: 'DOUBLE',
  int64: 'INT64',
  int32: 'INT32',
  boolean: 'BOOLEAN',
};
const PARQUETJS_CODEC: Record<Compression, string> = { none: 'UNCOMPRESSED', snappy: 'SNAPPY', zstd: 'ZSTD' };

function registerZstd(): void {
  const methods = parquetCompression.PARQUET_COMPRESSION_METHODS;
  if (methods['ZSTD']) return;
  methods['ZSTD'] = {
    deflate: (value: Buffer) => {
      const out = compressBlock('zstd', value);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
    inflate: (value: Buffer) => {
      const out = decompressZstd(value);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
  };
}

interface ColumnBuffer {
  values: unknown[];
  rlevels: number[];
  dlevels: number[];
  count: number;
  distinct_values: Set<unknown>;
}

/** Encodes a whole file through parquetjs-lite. Same input and output as encodeParquet. */
export async function encodeParquetWithParquetjs(specs: readonly ColumnSpec[], table: ColumnTable, options: ParquetEncodeOptions): Promise<Buffer> {
  if (options.compression === 'zstd') registerZstd();
  const definition: Record<string, Record<string, unknown>> = {};
  for (const spec of specs) {
    definition[spec.name] = {
      type: PARQUETJS_TYPE[spec.type],
      optional: spec.nullable,
      compression: PARQUETJS_CODEC[options.compression],
      // parquetjs-lite keeps a Set of every distinct value for statistics (skipped for strings),
      // and its timestamp statistics reject instants before 1970 (skipped for timestamps).
      statistics: spec.type === 'string' || spec.type === 'timestamp' ? false : undefined,
    };
  }
  const schema = new parquetSchema.ParquetSchema(definition);
  const chunks: Buffer[] = [];
  const envelope = new parquetWriter.ParquetEnvelopeWriter(
    schema,
    (buf: Buffer) => {
      chunks.push(buf);
    },
    () => undefined,
    0,
    { useDataPageV2: false, pageIndex: false },
  );
  // Our footer replaces parquetjs-lite's (which lacks logical types).
  (envelope as unknown as { writeFooter: () => void }).writeFooter = () => {
    chunks.push(
      encodeFooter({
        specs,
        numRows: envelope.rowCount,
        rowGroups: envelope.rowGroups,
        keyValueMetadata: options.keyValueMetadata,
        createdBy: `${options.createdBy} via parquetjs-lite`,
      }),
    );
  };
  const writer = new parquetWriter.ParquetWriter(schema, envelope, { rowGroupSize: Math.max(1, table.rowCount) });
  envelope.pageSize = Math.max(1, table.rowCount);

  const n = table.rowCount;
  const columnData: Record<string, ColumnBuffer> = {};
  const pages: Record<string, unknown[]> = {};
  specs.forEach((spec, c) => {
    const col = table.columns[c]!;
    const values: unknown[] = [];
    const dlevels = new Array<number>(n);
    const distinct = new Set<unknown>();
    const keepDistinct = spec.type !== 'string' && spec.type !== 'timestamp';
    if (col.type === 'string') {
      for (let i = 0; i < n; i++) {
        const v = col.values[i];
        if (v === null || v === undefined) dlevels[i] = 0;
        else {
          dlevels[i] = spec.nullable ? 1 : 0;
          values.push(v);
        }
      }
    } else {
      for (let i = 0; i < n; i++) {
        if (col.valid !== null && col.valid[i] === 0) dlevels[i] = 0;
        else {
          const v = col.values[i]!;
          dlevels[i] = spec.nullable ? 1 : 0;
          values.push(v);
          if (keepDistinct) distinct.add(v);
        }
      }
    }
    columnData[spec.name] = { values, rlevels: new Array<number>(n).fill(0), dlevels, count: n, distinct_values: distinct };
    pages[spec.name] = [];
  });
  writer.rowBuffer = { rowCount: n, pageRowCount: n, columnData, pages };
  try {
    await (writer as unknown as { close(): Promise<void> }).close();
  } catch (err) {
    throw new EtlError('SINK', `parquetjs-lite could not encode the file: ${errorMessage(err)}`, {}, { cause: err });
  }
  return Buffer.concat(chunks);
}
