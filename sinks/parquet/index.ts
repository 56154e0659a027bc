export { encodeParquet, encodeHybrid, compareUtf8 } from './encoder.js';
export type { ParquetEncodeOptions } from './encoder.js';
export { readParquetRows } from './reader.js';
