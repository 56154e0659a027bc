// The output root as a store of whole objects (a folder or an S3-compatible bucket).
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { LocalStore } from './local.js';
import { S3Store, s3ClientFromEnv, type S3StoreOptions } from './s3.js';
import { Staging } from './staging.js';
import type { ObjectStore } from './store.js';
import type { OutputTarget } from './url.js';

export { LocalStore } from './local.js';
export { S3Store, s3ClientFromEnv, isRetryableS3Error, S3_RETRY, MIN_PART_BYTES, DEFAULT_PART_BYTES, DEFAULT_MULTIPART_THRESHOLD } from './s3.js';
export type { S3Location, S3StoreOptions, S3StoreStats } from './s3.js';
export { Staging, DEFAULT_STAGING_BYTES } from './staging.js';
export type { StagedFile } from './staging.js';
export { checkKey, checkPrefix } from './store.js';
export type { LocalCopy, ObjectBody, ObjectInfo, ObjectStore } from './store.js';
export { outLocation, parseOutTarget } from './url.js';
export type { OutputTarget } from './url.js';

/**
 * Where a run against a bucket keeps local files: downloads for readers that need a file, and
 * dead letters while they are collected. One folder per process, so runs never share files.
 */
export function stagingDir(env: NodeJS.ProcessEnv): string {
  return join(env.WEARABLE_ETL_STAGING_DIR || tmpdir(), `wearable-etl-staging-${process.pid}`);
}

/**
 * The store for an `--out` target. A bucket gets its client from the AWS variables and a
 * staging folder under the system's temporary folder (WEARABLE_ETL_STAGING_DIR overrides it),
 * capped at WEARABLE_ETL_STAGING_MB (default 512).
 */
export function openStore(target: OutputTarget, env: NodeJS.ProcessEnv, extra: Partial<S3StoreOptions> = {}): ObjectStore {
  if (target.kind === 'folder') return new LocalStore(target.dir);
  const mb = Number(env.WEARABLE_ETL_STAGING_MB ?? '512');
  const staging = new Staging(stagingDir(env), (Number.isFinite(mb) && mb > 0 ? mb : 512) * 1024 * 1024);
  return new S3Store({ client: s3ClientFromEnv(env), bucket: target.bucket, prefix: target.prefix, staging, ...extra });
}
