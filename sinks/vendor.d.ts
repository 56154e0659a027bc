// Types for the untyped CommonJS modules the sinks use (only what they touch).

declare module 'snappyjs' {
  function compress<T extends Uint8Array | ArrayBuffer>(input: T): T;
  function uncompress<T extends Uint8Array | ArrayBuffer>(input: T): T;
  const snappy: { compress: typeof compress; uncompress: typeof uncompress };
  export default snappy;
}

declare module 'parquetjs-lite/gen-nodejs/parquet_types.js' {
  /** A generated Thrift struct: fields are set from the constructor's argument object. */
  interface ThriftStruct {
    write(protocol: unknown): void;
    [field: string]: unknown;
  }
  type ThriftStructClass = new (args?: Record<string, unknown>) => ThriftStruct;
  const types: {
    Type: Record<'BOOLEAN' | 'INT32' | 'INT64' | 'INT96' | 'FLOAT' | 'DOUBLE' | 'BYTE_ARRAY' | 'FIXED_LEN_BYTE_ARRAY', number>;
    ConvertedType: Record<string, number>;
    FieldRepetitionType: Record<'REQUIRED' | 'OPTIONAL' | 'REPEATED', number>;
    Encoding: Record<'PLAIN' | 'PLAIN_DICTIONARY' | 'RLE' | 'BIT_PACKED' | 'RLE_DICTIONARY', number>;
    CompressionCodec: Record<'UNCOMPRESSED' | 'SNAPPY' | 'GZIP' | 'ZSTD', number>;
    PageType: Record<'DATA_PAGE' | 'INDEX_PAGE' | 'DICTIONARY_PAGE' | 'DATA_PAGE_V2', number>;
    Statistics: ThriftStructClass;
    StringType: ThriftStructClass;
    MilliSeconds: ThriftStructClass;
    TimeUnit: ThriftStructClass;
    TimestampType: ThriftStructClass;
    IntType: ThriftStructClass;
    LogicalType: ThriftStructClass;
    SchemaElement: ThriftStructClass;
    DataPageHeader: ThriftStructClass;
    DictionaryPageHeader: ThriftStructClass;
    PageHeader: ThriftStructClass;
    KeyValue: ThriftStructClass;
    SortingColumn: ThriftStructClass;
    ColumnMetaData: ThriftStructClass;
    ColumnChunk: ThriftStructClass;
    RowGroup: ThriftStructClass;
    TypeDefinedOrder: ThriftStructClass;
    ColumnOrder: ThriftStructClass;
    FileMetaData: ThriftStructClass;
  };
  export default types;
}

declare module 'parquetjs-lite/lib/util.js' {
  const util: {
    serializeThrift(obj: { write(protocol: unknown): void }): Buffer;
  };
  export default util;
}

declare module 'parquetjs-lite/lib/schema.js' {
  interface ParquetField {
    name: string;
    path: string[];
    primitiveType: string;
    originalType?: string;
    repetitionType: string;
    rLevelMax: number;
    dLevelMax: number;
    isNested?: boolean;
  }
  class ParquetSchema {
    constructor(schema: Record<string, Record<string, unknown>>);
    fieldList: ParquetField[];
  }
  const mod: { ParquetSchema: typeof ParquetSchema };
  export default mod;
}

declare module 'parquetjs-lite/lib/writer.js' {
  interface RowGroupMeta {
    [field: string]: unknown;
  }
  class ParquetEnvelopeWriter {
    constructor(
      schema: unknown,
      writeFn: (buf: Buffer) => Promise<void> | void,
      closeFn: () => Promise<void> | void,
      fileOffset: number,
      opts: Record<string, unknown>,
    );
    rowCount: number;
    rowGroups: RowGroupMeta[];
    pageSize: number;
    writeHeader(): Promise<void> | void;
    writeIndex(): void;
  }
  class ParquetWriter {
    constructor(schema: unknown, envelopeWriter: ParquetEnvelopeWriter, opts: Record<string, unknown>);
    rowBuffer: unknown;
    rowGroupSize: number;
    appendRow(row: Record<string, unknown>): Promise<void>;
  }
  const mod: { ParquetEnvelopeWriter: typeof ParquetEnvelopeWriter; ParquetWriter: typeof ParquetWriter };
  export default mod;
}

declare module 'parquetjs-lite/lib/compression.js' {
  const mod: {
    PARQUET_COMPRESSION_METHODS: Record<string, { deflate(value: Buffer): Buffer; inflate(value: Buffer): Buffer }>;
  };
  export default mod;
}

declare module 'parquetjs-lite' {
  const parquet: {
    ParquetSchema: new (schema: Record<string, Record<string, unknown>>) => unknown;
    ParquetWriter: {
      openFile(schema: unknown, path: string, opts?: Record<string, unknown>): Promise<{ appendRow(row: Record<string, unknown>): Promise<void>; close(): Promise<void> }>;
    };
  };
  export default parquet;
}
