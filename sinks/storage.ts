// Where a sink's partition files go: one small seam over the output root (output.ts). A write
// is whole or nothing: in a folder, under <out>/_tmp/<runId>/ then renamed into place; in a
// bucket, one PUT or a multipart upload completed only when whole. Merge by id reads the
// partition's object, merges, and commits the result whole over it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtlError, errorMessage } from '../lib/errors.js';
import { writeFileAtomicSync } from '../lib/fs.js';
import { tmpPath } from './files.js';
import { isBucketOut, openOutput } from './output.js';
import { outLocation, parseOutTarget } from './object-store/url.js';

export interface Storage {
  /** The file at `relPath` (relative to the output root), or null when there is none. */
  read(relPath: string): Promise<Uint8Array | null>;
  /** Makes `bytes` the file at `relPath`, whole or not at all. */
  commit(relPath: string, bytes: Uint8Array): Promise<void>;
}

/** What a storage is opened from: plain data, so that a writer thread opens its own. */
export type StorageConfig = FolderStorageConfig | BucketStorageConfig;

export interface FolderStorageConfig {
  kind: 'folder';
  outDir: string;
  runId: string;
  /** fsync each file before its rename and its folder after. */
  durable: boolean;
}

/** An S3-compatible bucket; the thread that opens it takes its client from the AWS variables. */
export interface BucketStorageConfig {
  kind: 's3';
  bucket: string;
  /** No leading or trailing `/`; '' for the bucket's root. */
  prefix: string;
}

/** The storage config of an output root (a folder path or s3://bucket/prefix). */
export function storageConfig(outDir: string, runId: string, durable: boolean): StorageConfig {
  if (!isBucketOut(outDir)) return { kind: 'folder', outDir, runId, durable };
  const target = parseOutTarget(outDir);
  if (target.kind !== 's3') throw new EtlError('USAGE', `${outDir} is not an s3:// output root`);
  return { kind: 's3', bucket: target.bucket, prefix: target.prefix };
}

export function openStorage(cfg: StorageConfig): Storage {
  if (cfg.kind === 'folder') return localStorage(cfg);
  const store = openOutput(outLocation({ kind: 's3', bucket: cfg.bucket, prefix: cfg.prefix }));
  return { read: (relPath) => store.get(relPath), commit: (relPath, bytes) => store.put(relPath, bytes) };
}

/**
 * The local folder. Its calls block: on the writer thread there is nothing else to do meanwhile
 * and an async call costs a round trip to libuv's thread pool (lib/fs.ts); the calling thread
 * only writes this way before the writer thread starts, or with `workers: 0`.
 */
export function localStorage(cfg: FolderStorageConfig): Storage {
  const madeDirs = new Set<string>();
  return {
    read(relPath) {
      try {
        return Promise.resolve(readFileSync(join(cfg.outDir, relPath)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Promise.resolve(null);
        return Promise.reject(new EtlError('SINK', `could not read ${relPath}: ${errorMessage(err)}`, { path: relPath }, { cause: err }));
      }
    },
    commit(relPath, bytes) {
      const tmp = tmpPath(cfg.outDir, cfg.runId, relPath.slice(0, relPath.indexOf('/')));
      try {
        writeFileAtomicSync(join(cfg.outDir, relPath), bytes, 0o644, { tmp, durable: cfg.durable, madeDirs });
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(new EtlError('SINK', `could not write ${relPath}: ${errorMessage(err)}`, { path: relPath }, { cause: err }));
      }
    },
  };
}
