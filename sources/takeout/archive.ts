// One export as a list of members, each opened as a stream only when it is read: a `.zip`
// (yauzl, lazyEntries: the central directory is listed without inflating anything), the zip
// parts of one split export (their members merged), or the folder an export unpacks to.
// Nothing is unpacked to disk and no member is held whole in memory.
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { EtlError, errorMessage } from '../../lib/errors.js';

export interface ArchiveMember {
  /** Path inside the export, `/`-separated (for a split export: inside its part). */
  name: string;
  /** Which zip part or folder it is in (for messages). */
  part: string;
  /** Bytes once inflated. */
  size: number;
  /** Bytes it takes in the archive (compressed), for progress by archive bytes. */
  storedBytes: number;
  /** Opens the member's content as a stream (inflated on the fly). */
  open(): Promise<Readable>;
}

export interface Archive {
  members: ArchiveMember[];
  /** Bytes of the archive files (or of the folder's files). */
  totalBytes: number;
  /** Size and mtime of every part: changes when the export does (the state's key). */
  fingerprint: string;
  close(): Promise<void>;
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true }, (err, zip) => (err ? reject(err) : resolve(zip)));
  });
}

async function listZip(file: string): Promise<{ zip: yauzl.ZipFile; members: ArchiveMember[] }> {
  const zip = await openZip(file);
  const part = path.basename(file);
  const members: ArchiveMember[] = [];
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (entry: yauzl.Entry) => {
      if (!entry.fileName.endsWith('/')) {
        members.push({
          name: entry.fileName,
          part,
          size: entry.uncompressedSize,
          storedBytes: entry.compressedSize,
          open: () =>
            new Promise<Readable>((res, rej) => {
              zip.openReadStream(entry, (err, stream) => (err ? rej(err) : res(stream)));
            }),
        });
      }
      zip.readEntry();
    });
    zip.once('end', () => resolve());
    zip.once('error', reject);
    zip.readEntry();
  });
  return { zip, members };
}

async function listFolder(root: string): Promise<ArchiveMember[]> {
  const members: ArchiveMember[] = [];
  const part = path.basename(root);
  async function walk(dir: string, prefix: string): Promise<void> {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(dir, e.name);
      const name = prefix === '' ? e.name : `${prefix}/${e.name}`;
      if (e.isDirectory()) await walk(full, name);
      else if (e.isFile()) {
        const { size } = await fs.stat(full);
        members.push({ name, part, size, storedBytes: size, open: async () => createReadStream(full) });
      }
    }
  }
  await walk(root, '');
  return members;
}

/** Opens an export: one zip, the zip parts of one export, or a folder. */
export async function openArchive(spec: string | readonly string[]): Promise<Archive> {
  const files = typeof spec === 'string' ? [spec] : [...spec];
  if (files.length === 0) throw new EtlError('CONFIG', 'archive: an empty list of zip parts');
  const zips: yauzl.ZipFile[] = [];
  const members: ArchiveMember[] = [];
  const fingerprint: string[] = [];
  let totalBytes = 0;
  try {
    for (const file of files) {
      let st;
      try {
        st = await fs.stat(file);
      } catch (err) {
        throw new EtlError('CONFIG', `archive ${file} cannot be read: ${errorMessage(err)}`, { file });
      }
      if (st.isDirectory()) {
        if (files.length > 1) throw new EtlError('CONFIG', `archive ${file}: a folder cannot be one of several parts`, { file });
        const list = await listFolder(file);
        members.push(...list);
        for (const m of list) totalBytes += m.size;
        fingerprint.push(`${path.resolve(file)}:dir:${list.length}:${totalBytes}`);
        continue;
      }
      let listed;
      try {
        listed = await listZip(file);
      } catch (err) {
        throw new EtlError('BAD_RESPONSE', `archive ${file} is not a readable zip: ${errorMessage(err)}`, { file });
      }
      zips.push(listed.zip);
      members.push(...listed.members);
      totalBytes += st.size;
      fingerprint.push(`${path.basename(file)}:${st.size}:${Math.floor(st.mtimeMs)}`);
    }
  } catch (err) {
    for (const z of zips) z.close();
    throw err;
  }
  return {
    members,
    totalBytes,
    fingerprint: fingerprint.join('|'),
    close: async () => {
      for (const z of zips) z.close();
    },
  };
}
