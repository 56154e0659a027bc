// The Parquet footer: schema elements with logical types, key-value metadata, column orders,
// and the row groups the encoder built.
import type { ColumnSpec, ColumnType } from '../../lib/schema.js';
import { ConvertedType, FieldRepetitionType, Type, serializeFileMetaData } from './thrift.js';
import type { RowGroup, SchemaElement } from './thrift.js';

export const PARQUET_MAGIC = Buffer.from('PAR1', 'ascii');

export function physicalType(type: ColumnType): SchemaElement['type'] & number {
  switch (type) {
    case 'string':
      return Type.BYTE_ARRAY;
    case 'double':
      return Type.DOUBLE;
    case 'int32':
      return Type.INT32;
    case 'boolean':
      return Type.BOOLEAN;
    case 'int64':
    case 'timestamp':
      return Type.INT64;
  }
}

/**
 * One leaf per column. Timestamps: INT64 + TIMESTAMP(isAdjustedToUTC=true, MILLIS), with the
 * legacy TIMESTAMP_MILLIS converted type kept for old readers. Strings: UTF8 / STRING.
 */
export function schemaElements(specs: readonly ColumnSpec[]): SchemaElement[] {
  const root: SchemaElement = { name: 'schema', num_children: specs.length };
  const leaves = specs.map((spec): SchemaElement => {
    const leaf: SchemaElement = {
      name: spec.name,
      type: physicalType(spec.type),
      repetition_type: spec.nullable ? FieldRepetitionType.OPTIONAL : FieldRepetitionType.REQUIRED,
    };
    if (spec.type === 'string') return { ...leaf, converted_type: ConvertedType.UTF8, logicalType: { STRING: {} } };
    if (spec.type === 'timestamp') return { ...leaf, converted_type: ConvertedType.TIMESTAMP_MILLIS, logicalType: { TIMESTAMP: { isAdjustedToUTC: true, unit: { MILLIS: {} } } } };
    return leaf;
  });
  return [root, ...leaves];
}

export interface FooterInput {
  specs: readonly ColumnSpec[];
  numRows: number;
  rowGroups: readonly RowGroup[];
  keyValueMetadata: readonly (readonly [string, string])[];
  createdBy: string;
}

/** Serialized FileMetaData + its length + magic: the bytes that end a Parquet file. */
export function encodeFooter(input: FooterInput): Buffer {
  const body = serializeFileMetaData({
    version: 1,
    schema: schemaElements(input.specs),
    num_rows: input.numRows,
    row_groups: input.rowGroups,
    key_value_metadata: input.keyValueMetadata.map(([key, value]) => ({ key, value })),
    created_by: input.createdBy,
    // Min/max statistics follow each type's defined order (signed ints, UTF-8 bytes).
    column_orders: input.specs.map(() => ({ TYPE_ORDER: {} })),
  });
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(body.length, 0);
  PARQUET_MAGIC.copy(tail, 4);
  return Buffer.concat([body, tail]);
}
