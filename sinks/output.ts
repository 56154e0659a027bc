// The output root (`--out`) as one store of whole objects, whichever it is: a local folder
// (LocalStore: temporary file under <out>/_tmp/<runId>/, then rename) or s3://bucket/prefix
// (S3Store: one PUT, or a multipart upload completed only when whole). Everything a run writes
// under `--out` — manifests, dead letters, run records — goes through `openOutput`; partition
// files go through the sink's own seam (storage.ts), which opens the same stores.
//
// An output root is named by one string everywhere (SinkOptions.outDir, RunConfig.outDir): a
// folder path, or the bucket's location as `s3://bucket/prefix` (object-store/url.ts
// outLocation). Plain data, so a writer thread opens its own store from it.
import { join } from 'node:path';
import { EtlError } from '../lib/errors.js';
import { LocalStore } from './object-store/local.js';
import { openStore } from './object-store/index.js';
import type { ObjectStore } from './object-store/store.js';
import { parseOutTarget } from './object-store/url.js';
import { runTmpDir } from './files.js';

/** Whether an output root names a bucket (s3://…) rather than a folder. */
export function isBucketOut(outDir: string): boolean {
  return /^s3:\/\//i.test(outDir);
}

/** Where a key of the output root is, for messages and run records: a file path, or s3://bucket/prefix/key. */
export function outputPath(outDir: string, key: string): string {
  return isBucketOut(outDir) ? `${outDir}/${key}` : join(outDir, ...key.split('/'));
}

// One S3 store (its client, connections and staging) per bucket root and thread.
const buckets = new Map<string, ObjectStore>();

export interface OutputOptions {
  /** A folder: temporary files go under <out>/_tmp/<runId>/, which the run removes at its end. */
  runId?: string;
  /** A folder: fsync each file before its rename and the folder after. */
  durable?: boolean;
}

/**
 * The store for an output root. A bucket's client comes from the AWS variables of this thread's
 * environment (object-store/s3.ts s3ClientFromEnv); it is made once per thread and kept.
 */
export function openOutput(outDir: string, options: OutputOptions = {}): ObjectStore {
  if (!isBucketOut(outDir)) {
    return new LocalStore(outDir, { durable: options.durable ?? false, ...(options.runId !== undefined ? { tmpDir: runTmpDir(outDir, options.runId) } : {}) });
  }
  let store = buckets.get(outDir);
  if (store === undefined) {
    const target = parseOutTarget(outDir);
    if (target.kind !== 's3') throw new EtlError('USAGE', `${outDir} is not an s3:// output root`);
    store = openStore(target, process.env);
    buckets.set(outDir, store);
  }
  return store;
}
