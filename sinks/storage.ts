// Where a sink's partition files go: one small seam, so that an object-storage backend can
// take the place of the local folder. A write is whole or nothing (here: under
// <out>/_tmp/<runId>/, then renamed into place).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtlError, errorMessage } from '../lib/errors.js';
import { writeFileAtomicSync } from '../lib/fs.js';
import { tmpPath } from './files.js';

export interface Storage {
  /** The file at `relPath` (relative to the output root), or null when there is none. */
  read(relPath: string): Promise<Uint8Array | null>;
  /** Makes `bytes` the file at `relPath`, whole or not at all. */
  commit(relPath: string, bytes: Uint8Array): Promise<void>;
}

/** What a storage is opened from: plain data, so that a writer thread opens its own. */
export interface StorageConfig {
  outDir: string;
  runId: string;
  /** fsync each file before its rename and its folder after. */
  durable: boolean;
}

/**
 * The local folder. Its calls block: on the writer thread there is nothing else to do meanwhile
 * and an async call costs a round trip to libuv's thread pool (lib/fs.ts); the calling thread
 * only writes this way before the writer thread starts, or with `workers: 0`.
 */
export function localStorage(cfg: StorageConfig): Storage {
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
