// The Parquet footer both engines share: schema elements with logical types (what
// parquetjs-lite cannot write), key-value metadata, column orders, sorting columns.
import thrift from 'parquetjs-lite/gen-nodejs/parquet_types.js';
import type { ColumnSpec, ColumnType } from '../../lib/schema.js';
import { serializeCompact } from './thrift.js';

type ThriftStruct = InstanceType<(typeof thrift)['FileMetaData']>;

export const PARQUET_MAGIC = Buffer.from('PAR1', 'ascii');

export function physicalType(type: ColumnType): number {
  switch (type) {
    case 'string':
      return thrift.Type.BYTE_ARRAY;
    case 'double':
      return thrift.Type.DOUBLE;
    case 'int32':
      return thrift.Type.INT32;
    case 'boolean':
      return thrift.Type.BOOLEAN;
    case 'int64':
    case 'timestamp':
      return thrift.Type.INT64;
  }
}

/**
 * One leaf per column. Timestamps: INT64 + TIMESTAMP(isAdjustedToUTC=true, MILLIS), with the
 * legacy TIMESTAMP_MILLIS converted type kept for old readers. Strings: UTF8 / STRING.
 */
export function schemaElements(specs: readonly ColumnSpec[]): ThriftStruct[] {
  const root = new thrift.SchemaElement({ name: 'schema', num_children: specs.length });
  const leaves = specs.map((spec) => {
    const args: Record<string, unknown> = {
      name: spec.name,
      type: physicalType(spec.type),
      repetition_type: spec.nullable ? thrift.FieldRepetitionType.OPTIONAL : thrift.FieldRepetitionType.REQUIRED,
    };
    if (spec.type === 'string') {
      args['converted_type'] = thrift.ConvertedType['UTF8'];
      args['logicalType'] = new thrift.LogicalType({ STRING: new thrift.StringType() });
    } else if (spec.type === 'timestamp') {
      args['converted_type'] = thrift.ConvertedType['TIMESTAMP_MILLIS'];
      args['logicalType'] = new thrift.LogicalType({
        TIMESTAMP: new thrift.TimestampType({ isAdjustedToUTC: true, unit: new thrift.TimeUnit({ MILLIS: new thrift.MilliSeconds() }) }),
      });
    }
    return new thrift.SchemaElement(args);
  });
  return [root, ...leaves];
}

export interface FooterInput {
  specs: readonly ColumnSpec[];
  numRows: number;
  rowGroups: readonly unknown[];
  keyValueMetadata: readonly (readonly [string, string])[];
  createdBy: string;
}

/** Serialized FileMetaData + its length + magic: the bytes that end a Parquet file. */
export function encodeFooter(input: FooterInput): Buffer {
  const meta = new thrift.FileMetaData({
    version: 1,
    schema: schemaElements(input.specs),
    num_rows: input.numRows,
    row_groups: input.rowGroups,
    key_value_metadata: input.keyValueMetadata.map(([key, value]) => new thrift.KeyValue({ key, value })),
    created_by: input.createdBy,
    // Min/max statistics follow each type's defined order (signed ints, UTF-8 bytes).
    column_orders: input.specs.map(() => new thrift.ColumnOrder({ TYPE_ORDER: new thrift.TypeDefinedOrder() })),
  });
  const body = serializeCompact(meta);
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(body.length, 0);
  PARQUET_MAGIC.copy(tail, 4);
  return Buffer.concat([body, tail]);
}

export const serializeThrift = serializeCompact;

export { thrift };
