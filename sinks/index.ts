// The sinks: partitioned Parquet and Arrow files (see sink.ts for how a run proceeds).
export { createSink, createSinkStats, UserCommit, resolveSinkConfig, DEFAULT_HIGH_WATER_ROWS, DEFAULT_MAX_OPEN_PARTITIONS } from './sink.js';
export type { ManifestLock, SinkConfig, SinkExtras, SinkStats } from './sink.js';
export { createDeadLetterWriter, deadLetterPath } from './dead-letter.js';
export { prepareOutput } from './files.js';
export { SharedWriters } from './pool.js';
export { partitionPath, escapePartitionValue, unescapePartitionValue, validateDate } from './partition.js';
export { readManifest, MANIFEST_FILE } from './manifest.js';
export type { Manifest, ManifestFile } from './manifest.js';
export type { ParquetEngine } from './formats.js';
export { FACTS_COLUMNS, FACTS_KEY, parseFacts, partitionFacts } from './partition-facts.js';
export type { PartitionFacts } from './partition-facts.js';
