// The Parquet structures this writer emits, typed from the official parquet.thrift
// (apache/parquet-format src/main/thrift/parquet.thrift: names, field ids and enum values as
// there; fields we never write are left out), and their Thrift compact-protocol encoding.
// Optional fields left undefined are not written.
import { ByteWriter } from './byte-writer.js';

export const Type = { BOOLEAN: 0, INT32: 1, INT64: 2, INT96: 3, FLOAT: 4, DOUBLE: 5, BYTE_ARRAY: 6, FIXED_LEN_BYTE_ARRAY: 7 } as const;
export const ConvertedType = { UTF8: 0, TIMESTAMP_MILLIS: 9 } as const;
export const FieldRepetitionType = { REQUIRED: 0, OPTIONAL: 1, REPEATED: 2 } as const;
export const Encoding = { PLAIN: 0, PLAIN_DICTIONARY: 2, RLE: 3, BIT_PACKED: 4, RLE_DICTIONARY: 8 } as const;
export const CompressionCodec = { UNCOMPRESSED: 0, SNAPPY: 1, GZIP: 2, ZSTD: 6 } as const;
export const PageType = { DATA_PAGE: 0, INDEX_PAGE: 1, DICTIONARY_PAGE: 2, DATA_PAGE_V2: 3 } as const;

type Enum<E> = E[keyof E];

export interface Statistics {
  /** 1, 2: deprecated, signed comparison; kept for old readers of numeric columns. */
  max?: Uint8Array;
  min?: Uint8Array;
  null_count?: number;
  distinct_count?: number;
  max_value?: Uint8Array;
  min_value?: Uint8Array;
  /** 7, 8: false when the value is a truncation (a bound, not a value of the column). */
  is_max_value_exact?: boolean;
  is_min_value_exact?: boolean;
}

export interface DataPageHeader {
  num_values: number;
  encoding: Enum<typeof Encoding>;
  definition_level_encoding: Enum<typeof Encoding>;
  repetition_level_encoding: Enum<typeof Encoding>;
  statistics?: Statistics;
}

export interface DictionaryPageHeader {
  num_values: number;
  encoding: Enum<typeof Encoding>;
  is_sorted?: boolean;
}

export interface PageHeader {
  type: Enum<typeof PageType>;
  uncompressed_page_size: number;
  compressed_page_size: number;
  crc?: number;
  data_page_header?: DataPageHeader;
  dictionary_page_header?: DictionaryPageHeader;
}

export type TimeUnit = { MILLIS: Record<string, never> } | { MICROS: Record<string, never> } | { NANOS: Record<string, never> };
export interface TimestampType {
  isAdjustedToUTC: boolean;
  unit: TimeUnit;
}
/** A union: exactly one member is set. */
export type LogicalType = { STRING: Record<string, never> } | { TIMESTAMP: TimestampType };

export interface SchemaElement {
  type?: Enum<typeof Type>;
  repetition_type?: Enum<typeof FieldRepetitionType>;
  name: string;
  num_children?: number;
  converted_type?: Enum<typeof ConvertedType>;
  logicalType?: LogicalType;
}

export interface KeyValue {
  key: string;
  value?: string;
}

export interface SortingColumn {
  column_idx: number;
  descending: boolean;
  nulls_first: boolean;
}

export interface ColumnMetaData {
  type: Enum<typeof Type>;
  encodings: readonly Enum<typeof Encoding>[];
  path_in_schema: readonly string[];
  codec: Enum<typeof CompressionCodec>;
  num_values: number;
  total_uncompressed_size: number;
  total_compressed_size: number;
  data_page_offset: number;
  dictionary_page_offset?: number;
  statistics?: Statistics;
}

export interface ColumnChunk {
  file_offset: number;
  meta_data?: ColumnMetaData;
}

export interface RowGroup {
  columns: readonly ColumnChunk[];
  total_byte_size: number;
  num_rows: number;
  sorting_columns?: readonly SortingColumn[];
}

/** A union with one member: TYPE_ORDER (min/max follow each type's defined order). */
export interface ColumnOrder {
  TYPE_ORDER: Record<string, never>;
}

export interface FileMetaData {
  version: number;
  schema: readonly SchemaElement[];
  num_rows: number;
  row_groups: readonly RowGroup[];
  key_value_metadata?: readonly KeyValue[];
  created_by?: string;
  column_orders?: readonly ColumnOrder[];
}

// ---------------------------------------------------------------------------------------------
// Compact protocol.

const enum T {
  BOOL_TRUE = 1,
  BOOL_FALSE = 2,
  I32 = 5,
  I64 = 6,
  BINARY = 8,
  LIST = 9,
  STRUCT = 12,
}

/** A field as written: id, wire type, value (undefined: not written), element type of a list. */
type Field = readonly [id: number, type: T, value: unknown, elem?: T];

class CompactWriter extends ByteWriter {
  zigzag(n: number): void {
    if (!Number.isSafeInteger(n)) throw new Error(`thrift integer ${n} is outside the exact range of this writer`);
    this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
  }

  binary(value: string | Uint8Array): void {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    this.varint(bytes.length);
    this.bytes(bytes);
  }

  value(type: T, value: unknown, elem: T | undefined): void {
    switch (type) {
      case T.I32:
      case T.I64:
        return this.zigzag(value as number);
      case T.BINARY:
        return this.binary(value as string | Uint8Array);
      case T.STRUCT:
        return this.struct(value as readonly Field[]);
      case T.LIST: {
        const items = value as readonly unknown[];
        if (items.length < 15) this.u8((items.length << 4) | elem!);
        else {
          this.u8(0xf0 | elem!);
          this.varint(items.length);
        }
        for (const item of items) this.value(elem!, item, undefined);
        return;
      }
      default:
        throw new Error(`thrift type ${type} is not written by this writer`);
    }
  }

  struct(fields: readonly Field[]): void {
    let last = 0;
    for (const [id, type, value, elem] of fields) {
      if (value === undefined) continue;
      // A bool's value is its field header's type.
      const wire = type === T.BOOL_TRUE ? (value ? T.BOOL_TRUE : T.BOOL_FALSE) : type;
      const delta = id - last;
      if (delta > 0 && delta <= 15) this.u8((delta << 4) | wire);
      else {
        this.u8(wire);
        this.zigzag(id);
      }
      last = id;
      if (type !== T.BOOL_TRUE) this.value(type, value, elem);
    }
    this.u8(0); // stop
  }
}

const B = T.BOOL_TRUE; // a bool field (true or false)
const EMPTY: readonly Field[] = [];

const statistics = (s: Statistics | undefined): readonly Field[] | undefined =>
  s && [[1, T.BINARY, s.max], [2, T.BINARY, s.min], [3, T.I64, s.null_count], [4, T.I64, s.distinct_count], [5, T.BINARY, s.max_value], [6, T.BINARY, s.min_value], [7, B, s.is_max_value_exact], [8, B, s.is_min_value_exact]];

const pageHeader = (h: PageHeader): readonly Field[] => [
  [1, T.I32, h.type],
  [2, T.I32, h.uncompressed_page_size],
  [3, T.I32, h.compressed_page_size],
  [4, T.I32, h.crc],
  [5, T.STRUCT, h.data_page_header && [[1, T.I32, h.data_page_header.num_values], [2, T.I32, h.data_page_header.encoding], [3, T.I32, h.data_page_header.definition_level_encoding], [4, T.I32, h.data_page_header.repetition_level_encoding], [5, T.STRUCT, statistics(h.data_page_header.statistics)]]],
  [7, T.STRUCT, h.dictionary_page_header && [[1, T.I32, h.dictionary_page_header.num_values], [2, T.I32, h.dictionary_page_header.encoding], [3, B, h.dictionary_page_header.is_sorted]]],
];

function timeUnit(unit: TimeUnit): readonly Field[] {
  return [[1, T.STRUCT, 'MILLIS' in unit ? EMPTY : undefined], [2, T.STRUCT, 'MICROS' in unit ? EMPTY : undefined], [3, T.STRUCT, 'NANOS' in unit ? EMPTY : undefined]];
}

function logicalType(t: LogicalType | undefined): readonly Field[] | undefined {
  if (t === undefined) return undefined;
  if ('STRING' in t) return [[1, T.STRUCT, EMPTY]];
  return [[8, T.STRUCT, [[1, B, t.TIMESTAMP.isAdjustedToUTC], [2, T.STRUCT, timeUnit(t.TIMESTAMP.unit)]]]];
}

const schemaElement = (e: SchemaElement): readonly Field[] => [[1, T.I32, e.type], [3, T.I32, e.repetition_type], [4, T.BINARY, e.name], [5, T.I32, e.num_children], [6, T.I32, e.converted_type], [10, T.STRUCT, logicalType(e.logicalType)]];

const keyValue = (kv: KeyValue): readonly Field[] => [[1, T.BINARY, kv.key], [2, T.BINARY, kv.value]];

const columnMetaData = (m: ColumnMetaData): readonly Field[] => [
  [1, T.I32, m.type],
  [2, T.LIST, m.encodings, T.I32],
  [3, T.LIST, m.path_in_schema, T.BINARY],
  [4, T.I32, m.codec],
  [5, T.I64, m.num_values],
  [6, T.I64, m.total_uncompressed_size],
  [7, T.I64, m.total_compressed_size],
  [9, T.I64, m.data_page_offset],
  [11, T.I64, m.dictionary_page_offset],
  [12, T.STRUCT, statistics(m.statistics)],
];

const rowGroup = (g: RowGroup): readonly Field[] => [
  [1, T.LIST, g.columns.map((c): readonly Field[] => [[2, T.I64, c.file_offset], [3, T.STRUCT, c.meta_data && columnMetaData(c.meta_data)]]), T.STRUCT],
  [2, T.I64, g.total_byte_size],
  [3, T.I64, g.num_rows],
  [4, T.LIST, g.sorting_columns?.map((s): readonly Field[] => [[1, T.I32, s.column_idx], [2, B, s.descending], [3, B, s.nulls_first]]), T.STRUCT],
];

const fileMetaData = (m: FileMetaData): readonly Field[] => [
  [1, T.I32, m.version],
  [2, T.LIST, m.schema.map(schemaElement), T.STRUCT],
  [3, T.I64, m.num_rows],
  [4, T.LIST, m.row_groups.map(rowGroup), T.STRUCT],
  [5, T.LIST, m.key_value_metadata?.map(keyValue), T.STRUCT],
  [6, T.BINARY, m.created_by],
  [7, T.LIST, m.column_orders?.map((): readonly Field[] => [[1, T.STRUCT, EMPTY]]), T.STRUCT],
];

function serialize(fields: readonly Field[]): Buffer {
  const w = new CompactWriter(256);
  w.struct(fields);
  return w.result();
}

export function serializePageHeader(header: PageHeader): Buffer {
  return serialize(pageHeader(header));
}

export function serializeFileMetaData(meta: FileMetaData): Buffer {
  return serialize(fileMetaData(meta));
}
