// Types for parquetjs-lite (untyped CommonJS), the row-by-row anchor of bench/sink-parquet.ts.

declare module 'parquetjs-lite' {
  const parquet: {
    ParquetSchema: new (schema: Record<string, Record<string, unknown>>) => unknown;
    ParquetWriter: {
      openFile(schema: unknown, path: string, opts?: Record<string, unknown>): Promise<{ appendRow(row: Record<string, unknown>): Promise<void>; close(): Promise<void> }>;
    };
  };
  export default parquet;
}
