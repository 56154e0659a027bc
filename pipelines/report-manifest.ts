// The run report's check of a dataset's `_manifest.json` against the files on disk, without
// holding the manifest: at 1,000 users × 365 days it is ~55 MB of JSON (361k entries), which
// read whole (sinks/manifest.ts readManifest) and turned into a path map made most of the
// report's peak memory. The manifest's entries are streamed a batch at a time and merge-joined
// with the scan, date by date: the sink writes them sorted by path (`date=YYYY-MM-DD/user=…`),
// and the scan goes through the date folders in the same order, so only one date's entries
// are held. Entries out of that order still give the right answer: they are kept aside and
// matched against the files found unlisted at the end (what is held then is what the report
// lists anyway: missing and unlisted files).
//
// Why a scanner of our own and not stream-json's Pick + StreamArray (which does the same job):
// on a 365k-entry manifest (one dataset at 1,000 × 365), stream-json took 5.5–6.4 s of CPU and
// this scanner 0.44–0.73 s (one JSON.parse per 1 MB of whole entries), measured side by side on
// 2026-12-02; the report reads two such manifests. The same approach as the Takeout reader
// (sources/takeout/json-array.ts), whose input is a bare array rather than an object's member.
import { createReadStream } from 'node:fs';
import { MAX_FILES_LISTED, type DatasetReport } from './report-data.js';

/** What the check keeps of a manifest entry. */
export interface ManifestEntry {
  /** Relative to the dataset folder: date=YYYY-MM-DD/user=<user>/data.parquet */
  path: string;
  rows: number;
}

/** The manifest is not JSON of the shape the sink writes: the report then treats it as absent, as readManifest does. */
export class ManifestUnreadable extends Error {}

/** Bytes read from the manifest at a time (one JSON.parse of the whole entries in each). */
const CHUNK_BYTES = 1024 * 1024;
/** Text around the `files` array (the other keys) and one entry are held whole: above this, the file is not a manifest. */
const MAX_HELD_CHARS = 16 * 1024 * 1024;

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACE = 123;
const OPEN_BRACKET = 91;
const CLOSE_BRACE = 125;
const CLOSE_BRACKET = 93;
const FILES_KEY = /(?<!\\)"files"\s*:\s*$/;

function entriesOf(values: unknown[]): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  for (const v of values) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) continue;
    const o = v as Record<string, unknown>;
    const path = o['path'];
    const rows = o['rows'];
    // The entries readManifest keeps (isManifestFile).
    if (typeof path === 'string' && typeof rows === 'number' && typeof o['runId'] === 'string') out.push({ path, rows });
  }
  return out;
}

/**
 * The entries of a manifest's `files` array, in file order, a batch per chunk read. Throws
 * ManifestUnreadable (after the batches before the fault) when the text is not a JSON object
 * with a `files` array; the text outside the array is checked with JSON.parse at the end.
 * `chunkBytes`: tests cut the text finer.
 */
export async function* manifestEntries(file: string, chunkBytes = CHUNK_BYTES): AsyncGenerator<ManifestEntry[]> {
  let depth = 0;
  let inString = false;
  let escaped = false;
  let mode: 'head' | 'files' | 'tail' = 'head';
  /** The text outside the files array, the array itself left as `[]`. */
  let skeleton = '';
  /** The end of the current chunk's text not scanned yet (an entry cut by the chunk's end). */
  let carry = '';
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: chunkBytes });
  for await (const chunk of stream as AsyncIterable<string>) {
    if (mode === 'tail') {
      skeleton += chunk;
      if (skeleton.length > MAX_HELD_CHARS) throw new ManifestUnreadable('too much text around the files array');
      continue;
    }
    const text = carry + chunk;
    const n = text.length;
    let i = carry.length;
    // In the files array: the span of whole elements in `text`, and where the open element starts.
    let batchStart = carry.length > 0 ? 0 : -1;
    let batchEnd = -1;
    let elementStart = carry.length > 0 ? 0 : -1;
    let headFrom = 0;
    while (i < n) {
      if (inString) {
        let j = i;
        if (escaped) {
          escaped = false;
          j++;
        }
        const first = j;
        let closed = false;
        while (j < n) {
          const q = text.indexOf('"', j);
          if (q < 0) break;
          let k = q - 1;
          while (k >= first && text.charCodeAt(k) === BACKSLASH) k--;
          if ((q - 1 - k) % 2 === 0) {
            i = q + 1;
            closed = true;
            break;
          }
          j = q + 1;
        }
        if (!closed) {
          let k = n - 1;
          while (k >= first && text.charCodeAt(k) === BACKSLASH) k--;
          escaped = (n - 1 - k) % 2 === 1;
          i = n;
          break;
        }
        inString = false;
        continue;
      }
      const c = text.charCodeAt(i);
      if (c === QUOTE) inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (mode === 'head' && depth === 1 && c === OPEN_BRACKET && FILES_KEY.test(skeleton + text.slice(headFrom, i))) {
          skeleton += text.slice(headFrom, i + 1);
          mode = 'files';
        } else if (mode === 'files' && depth === 2) {
          elementStart = i;
          if (batchStart < 0) batchStart = i;
        }
        depth++;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        depth--;
        if (mode === 'files' && depth === 2) batchEnd = i + 1;
        else if (mode === 'files' && depth === 1) {
          // The files array ends: the rest is the tail of the object.
          mode = 'tail';
          headFrom = i;
          break;
        }
      }
      i++;
    }
    if (mode === 'head') {
      skeleton += text.slice(headFrom);
      if (skeleton.length > MAX_HELD_CHARS) throw new ManifestUnreadable('no files array in the first 16 MB');
      carry = '';
      continue;
    }
    if (batchStart >= 0 && batchEnd > batchStart) {
      let values: unknown[];
      try {
        values = JSON.parse(`[${text.slice(batchStart, batchEnd)}]`) as unknown[];
      } catch (err) {
        throw new ManifestUnreadable(`an entry is not JSON: ${(err as Error).message}`);
      }
      const batch = entriesOf(values);
      if (batch.length > 0) yield batch;
    }
    if (mode === 'tail') {
      skeleton += text.slice(headFrom);
      carry = '';
    } else {
      // Inside an element at the chunk's end: it is scanned on with the next chunk's text.
      carry = depth > 2 && elementStart >= 0 ? text.slice(elementStart) : '';
      if (carry.length > MAX_HELD_CHARS) throw new ManifestUnreadable('an entry longer than 16 MB');
    }
  }
  if (mode !== 'tail') throw new ManifestUnreadable(mode === 'head' ? 'no files array' : 'the files array does not end');
  let parsed: unknown;
  try {
    parsed = JSON.parse(skeleton);
  } catch (err) {
    throw new ManifestUnreadable(`not JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || !Array.isArray((parsed as { files?: unknown }).files)) throw new ManifestUnreadable('not a manifest');
}

const dateDirOf = (p: string): string => {
  const slash = p.indexOf('/');
  return slash < 0 ? p : p.slice(0, slash);
};

/**
 * Crosses a manifest's entries off against the files found, one date folder at a time in
 * ascending order: `date(dateDir)`, then `file(…)` for each of its files, then `finish()`.
 */
export class ManifestCheck {
  private readonly batches: AsyncGenerator<ManifestEntry[]>;
  private batch: ManifestEntry[] = [];
  private at = 0;
  private ended = false;
  private unreadable = false;
  /** Entries of the date being checked, by path: rows. */
  private readonly current = new Map<string, number>();
  /** Entries not found on their date (missing unless the file turns up unlisted), by path: rows. */
  private readonly leftover = new Map<string, number>();
  /** Files not in the manifest (so far), by path: the file's rows. */
  private readonly unlisted = new Map<string, number>();
  private readonly rowMismatches: DatasetReport['manifest']['rowMismatches'] = [];
  private entries = 0;

  constructor(file: string) {
    this.batches = manifestEntries(file);
  }

  /** The next entry, or null at the manifest's end (or at its first fault). */
  private async peek(): Promise<ManifestEntry | null> {
    while (this.at >= this.batch.length) {
      if (this.ended) return null;
      try {
        const next = await this.batches.next();
        if (next.done === true) this.ended = true;
        else {
          this.batch = next.value;
          this.at = 0;
        }
      } catch (err) {
        if (!(err instanceof ManifestUnreadable)) throw err;
        this.ended = true;
        this.unreadable = true;
      }
    }
    return this.batch[this.at]!;
  }

  private setAside(path: string, rows: number): void {
    if (!this.leftover.has(path)) this.entries++;
    this.leftover.set(path, rows);
  }

  /** Takes the entries up to `dateDir` (those of earlier dates are set aside). */
  async date(dateDir: string): Promise<void> {
    this.endDate();
    for (let e = await this.peek(); e !== null; e = await this.peek()) {
      const d = dateDirOf(e.path);
      if (d > dateDir) break;
      this.at++;
      if (d === dateDir) this.current.set(e.path, e.rows);
      else this.setAside(e.path, e.rows);
    }
  }

  /** A file found in the current date folder (`path` relative to the dataset folder). */
  file(path: string, rows: number): void {
    const listed = this.current.get(path);
    if (listed === undefined) this.unlisted.set(path, rows);
    else {
      if (listed !== rows) this.rowMismatches.push({ path, manifest: listed, file: rows });
      this.current.delete(path);
      this.entries++;
    }
  }

  private endDate(): void {
    for (const [path, rows] of this.current) this.setAside(path, rows);
    this.current.clear();
  }

  /** The manifest's part of the dataset's report; null when the manifest is not readable (as if absent). */
  async finish(): Promise<DatasetReport['manifest'] | null> {
    this.endDate();
    for (let e = await this.peek(); e !== null; e = await this.peek()) {
      this.at++;
      this.setAside(e.path, e.rows);
    }
    if (this.unreadable) return null;
    // Entries out of date order: found after their date was scanned.
    const missingFiles: string[] = [];
    for (const [path, rows] of this.leftover) {
      const found = this.unlisted.get(path);
      if (found === undefined) missingFiles.push(path);
      else {
        if (found !== rows) this.rowMismatches.push({ path, manifest: rows, file: found });
        this.unlisted.delete(path);
      }
    }
    const unlisted = [...this.unlisted.keys()];
    return {
      present: true,
      files: this.entries,
      missingFileCount: missingFiles.length,
      missingFiles: missingFiles.slice(0, MAX_FILES_LISTED),
      unlistedCount: unlisted.length,
      unlisted: unlisted.slice(0, MAX_FILES_LISTED),
      rowMismatchCount: this.rowMismatches.length,
      rowMismatches: this.rowMismatches.slice(0, MAX_FILES_LISTED),
    };
  }

  /** Stops reading the manifest (when the scan fails). */
  async close(): Promise<void> {
    await this.batches.return(undefined);
  }
}
