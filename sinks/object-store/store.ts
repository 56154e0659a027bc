// The output root as a store of whole objects: a local folder or an S3-compatible bucket.
// Every write is whole-or-nothing (a folder: temporary name, then rename; a bucket: one PUT,
// or a multipart upload completed only when every part is in), so a reader never sees half a
// partition file, whichever back end it reads.
import { EtlError } from '../../lib/errors.js';

/** What `put` writes: bytes in memory (one buffer or parts in order), or a staged local file. */
export type ObjectBody = Uint8Array | readonly Uint8Array[] | { readonly file: string };

export interface ObjectInfo {
  /** Relative to the store's root, `/`-separated: intraday/date=2026-01-02/user=u1/data.parquet */
  key: string;
  size: number;
}

/** A local file holding an object; `release` deletes a staged download and frees its room. */
export interface LocalCopy {
  readonly path: string;
  release(): Promise<void>;
}

export interface ObjectStore {
  /** Where the root is, for messages: a folder path or s3://bucket/prefix (never credentials). */
  readonly location: string;
  /**
   * Writes an object whole, replacing any object at that key only once the new one is complete.
   * A staged file (`{ file }`) is consumed: it is gone once `put` resolves.
   */
  put(key: string, body: ObjectBody): Promise<void>;
  /** The object's bytes, or null when there is none (merge by id reads the existing file). */
  get(key: string): Promise<Uint8Array | null>;
  /**
   * A local file holding the object, for readers that need a path (merge by id): the file itself
   * in a folder, a download into bounded staging from a bucket. Release it when read.
   */
  open(key: string): Promise<LocalCopy | null>;
  /** Objects whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes an object; no error when it is already gone. */
  delete(key: string): Promise<void>;
}

/**
 * A key as the sinks build them. Keys never start with `/`, never hold an empty, `.` or `..`
 * segment or a backslash, so a key cannot name anything outside the root on either back end.
 */
export function checkKey(key: string): string {
  const bad =
    key.length === 0 ||
    key.length > 900 ||
    key.includes('\\') ||
    key.includes('\0') ||
    key.split('/').some((segment) => segment === '' || segment === '.' || segment === '..');
  if (bad) throw new EtlError('SINK', `object key ${JSON.stringify(key)} is not a relative path inside the output root`, { key });
  return key;
}

/** A listing prefix: empty (everything) or a checked key prefix, which may end with `/`. */
export function checkPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  checkKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}

export function bodyParts(body: Uint8Array | readonly Uint8Array[]): readonly Uint8Array[] {
  return body instanceof Uint8Array ? [body] : body;
}

export function bodySize(body: Uint8Array | readonly Uint8Array[]): number {
  let n = 0;
  for (const part of bodyParts(body)) n += part.byteLength;
  return n;
}
