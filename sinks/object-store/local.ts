// The output root as a local folder, the default: objects are files, written under
// <root>/_tmp/ (same filesystem, never named like a data file) and renamed into place.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EtlError, errorMessage } from '../../lib/errors.js';
import { fsyncPath } from '../../lib/fs.js';
import { TMP_DIR } from '../files.js';
import { bodyParts, checkKey, checkPrefix, type LocalCopy, type ObjectBody, type ObjectInfo, type ObjectStore } from './store.js';

export interface LocalStoreOptions {
  /** fsync each file before its rename and its folder after (survives a power cut). */
  durable?: boolean;
  /** Where temporary files go (same filesystem as the root); default <root>/_tmp/store. */
  tmpDir?: string;
}

export class LocalStore implements ObjectStore {
  readonly location: string;
  private readonly root: string;
  private readonly durable: boolean;
  private readonly tmpDir: string;

  constructor(root: string, options: LocalStoreOptions = {}) {
    this.root = root;
    this.location = root;
    this.durable = options.durable ?? false;
    this.tmpDir = options.tmpDir ?? join(root, TMP_DIR, 'store');
  }

  private pathOf(key: string): string {
    return join(this.root, ...checkKey(key).split('/'));
  }

  private tmpName(key: string): string {
    const base = key.slice(key.lastIndexOf('/') + 1);
    return join(this.tmpDir, `${base}.${randomBytes(6).toString('hex')}.tmp`);
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    const finalPath = this.pathOf(key);
    const tmp = this.tmpName(key);
    try {
      await mkdir(dirname(tmp), { recursive: true });
      if ('file' in body) {
        // A staged file on the same filesystem is renamed as it is; else copied next to its place first.
        try {
          await rename(body.file, tmp);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
          await copyFile(body.file, tmp);
          await rm(body.file, { force: true });
        }
        if (this.durable) await fsyncPath(tmp);
      } else {
        const handle = await open(tmp, 'w');
        try {
          for (const part of bodyParts(body)) await handle.write(part);
          if (this.durable) await handle.sync();
        } finally {
          await handle.close();
        }
      }
      await mkdir(dirname(finalPath), { recursive: true });
      await rename(tmp, finalPath);
      if (this.durable) await fsyncPath(dirname(finalPath));
    } catch (err) {
      await rm(tmp, { force: true });
      throw new EtlError('SINK', `could not write ${finalPath}: ${errorMessage(err)}`, { path: finalPath }, { cause: err });
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    const file = this.pathOf(key);
    try {
      return await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new EtlError('SINK', `could not read ${file}: ${errorMessage(err)}`, { path: file }, { cause: err });
    }
  }

  async open(key: string): Promise<LocalCopy | null> {
    const file = this.pathOf(key);
    const info = await stat(file).catch(() => null);
    return info?.isFile() ? { path: file, release: async () => undefined } : null;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    // Walk only the folder the prefix names (its last partial segment filters names).
    const cut = prefix.lastIndexOf('/');
    const dirKey = cut >= 0 ? prefix.slice(0, cut) : '';
    yield* this.walk(dirKey, prefix);
  }

  private async *walk(dirKey: string, prefix: string): AsyncIterable<ObjectInfo> {
    const dir = dirKey === '' ? this.root : join(this.root, ...dirKey.split('/'));
    let names: string[];
    try {
      names = (await readdir(dir)).sort(compareKeys);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw new EtlError('SINK', `could not list ${dir}: ${errorMessage(err)}`, { path: dir }, { cause: err });
    }
    // A folder sorts as its key plus "/", so the walk yields keys in the order S3 lists them.
    const entries: Array<{ key: string; dir: boolean; size: number }> = [];
    for (const name of names) {
      const key = dirKey === '' ? name : `${dirKey}/${name}`;
      if (dirKey === '' && name === TMP_DIR) continue; // temporary files are not objects
      const info = await stat(join(dir, name)).catch(() => null);
      if (info === null) continue;
      if (info.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(key + '/')) entries.push({ key, dir: true, size: 0 });
      } else if (key.startsWith(prefix)) {
        entries.push({ key, dir: false, size: info.size });
      }
    }
    entries.sort((a, b) => compareKeys(a.dir ? a.key + '/' : a.key, b.dir ? b.key + '/' : b.key));
    for (const e of entries) {
      if (e.dir) yield* this.walk(e.key, prefix);
      else yield { key: e.key, size: e.size };
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    try {
      await rm(file, { force: true });
    } catch (err) {
      throw new EtlError('SINK', `could not delete ${file}: ${errorMessage(err)}`, { path: file }, { cause: err });
    }
  }
}

/** Key order as S3 lists it: by UTF-8 bytes (for the ASCII keys partitions use, code units). */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
