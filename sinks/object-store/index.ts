// The output root as a store of whole objects (a folder or an S3-compatible bucket).
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { LocalStore } from './local.js';
import type { S3StoreOptions } from './s3.js';
import { Staging } from './staging.js';
import type { LocalCopy, ObjectBody, ObjectInfo, ObjectStore } from './store.js';
import type { OutputTarget } from './url.js';

export { LocalStore } from './local.js';
// The S3 store itself is in ./s3.js, imported only when a bucket is used (see openStore).
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
  const location = `s3://${target.bucket}${target.prefix ? '/' + target.prefix : ''}`;
  return new DeferredStore(location, async () => {
    const { S3Store, s3ClientFromEnv } = await import('./s3.js');
    return new S3Store({ client: s3ClientFromEnv(env), bucket: target.bucket, prefix: target.prefix, staging, ...extra });
  });
}

/**
 * A bucket's store whose AWS SDK is loaded at its first use. Loaded at start-up it cost every
 * run ~23 MB of RSS per thread (the CLI thread and each writer thread), bucket or not.
 */
class DeferredStore implements ObjectStore {
  private store: Promise<ObjectStore> | null = null;
  constructor(
    readonly location: string,
    private readonly make: () => Promise<ObjectStore>,
  ) {}

  private loaded(): Promise<ObjectStore> {
    return (this.store ??= this.make());
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    return (await this.loaded()).put(key, body);
  }

  async get(key: string): Promise<Uint8Array | null> {
    return (await this.loaded()).get(key);
  }

  async open(key: string): Promise<LocalCopy | null> {
    return (await this.loaded()).open(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.loaded()).list(prefix);
  }

  async delete(key: string): Promise<void> {
    return (await this.loaded()).delete(key);
  }
}
