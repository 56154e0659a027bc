// The report's streamed manifest check (pipelines/report-manifest.ts): on manifests written by
// the sink's writeManifest, several MB long so that the 1 MB chunks cut entries and strings
// (with escaped quotes and backslashes) anywhere, the entries equal what readManifest reads,
// and the date-by-date cross-check against a listing finds the same missing, unlisted and
// miscounted files whatever the manifest's order; a cut-off manifest counts as none.
import test from 'ava';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManifestCheck, manifestEntries, type ManifestEntry } from '../pipelines/report-manifest.js';
import { MAX_FILES_LISTED } from '../pipelines/report-data.js';
import { readManifest, writeManifest, type ManifestFile } from '../sinks/manifest.js';

const DATES = Array.from({ length: 40 }, (_, d) => new Date(Date.UTC(2025, 0, 1 + d)).toISOString().slice(0, 10));
const USERS = Array.from({ length: 500 }, (_, u) => `u${String(u).padStart(3, '0')}`);

/** 20,000 entries (~3.5 MB of JSON); run ids with quotes, backslashes and brackets, every 7th a long one. */
function entries(): ManifestFile[] {
  const out: ManifestFile[] = [];
  for (const date of DATES) {
    for (const [u, user] of USERS.entries()) {
      const runId = u % 7 === 0 ? `run "}]${'\\'.repeat(u % 5)}[{${'x'.repeat(u)}"` : `run-${u}\\}`;
      out.push({ path: `date=${date}/user=${user}/data.parquet`, format: 'parquet', rows: (u * 31 + date.length) % 1440, bytes: 1000 + u, runId });
    }
  }
  return out;
}

async function written(files: ManifestFile[]): Promise<{ dir: string; file: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'report-manifest-'));
  await writeManifest(dir, 'intraday', 'r1', files, false);
  return { dir, file: path.join(dir, 'intraday', '_manifest.json') };
}

async function streamed(file: string, chunkBytes?: number): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = [];
  for await (const batch of manifestEntries(file, chunkBytes)) out.push(...batch);
  return out;
}

/** The check of a listing (path → rows) grouped by date, the dates in order. */
async function check(file: string, listing: ReadonlyMap<string, number>): Promise<Awaited<ReturnType<ManifestCheck['finish']>>> {
  const byDate = new Map<string, Array<[string, number]>>();
  for (const [p, rows] of listing) {
    const d = p.slice(0, p.indexOf('/'));
    byDate.set(d, [...(byDate.get(d) ?? []), [p, rows]]);
  }
  const c = new ManifestCheck(file);
  for (const d of [...byDate.keys()].sort()) {
    await c.date(d);
    for (const [p, rows] of byDate.get(d)!) c.file(p, rows);
  }
  return c.finish();
}

test('the streamed entries equal readManifest, chunks cutting entries and escaped strings anywhere', async (t) => {
  const files = entries();
  const { dir, file } = await written(files);
  t.true((await fs.stat(file)).size > 3 * 1024 * 1024);
  const whole = await readManifest(dir, 'intraday');
  const got = await streamed(file);
  t.is(got.length, files.length);
  const expected = whole!.files.map((f) => ({ path: f.path, rows: f.rows }));
  t.deepEqual(got, expected);
  // Cut every 997 bytes (a multi-byte character too), and a small one every byte.
  t.deepEqual(await streamed(file, 997), expected);
  const few = files.slice(0, 60).map((f, i) => ({ ...f, runId: i % 2 === 0 ? `é"\\${f.runId}` : f.runId }));
  const small = await written(few);
  t.deepEqual(await streamed(small.file, 1), few.map((f) => ({ path: f.path, rows: f.rows })));
});

test('the date-by-date check finds missing, unlisted and miscounted files, in any manifest order', async (t) => {
  const files = entries();
  const listing = new Map(files.map((f) => [f.path, f.rows]));
  const gone = `date=${DATES[3]}/user=u010/data.parquet`;
  const goneDay = DATES.slice(20, 22).flatMap((d) => USERS.map((u) => `date=${d}/user=${u}/data.parquet`)); // whole dates not on disk
  const extra = `date=${DATES[5]}/user=zz/data.parquet`;
  const extraDay = `date=2026-01-01/user=u001/data.parquet`; // a date the manifest does not have
  const recounted = `date=${DATES[39]}/user=u499/data.parquet`;
  listing.delete(gone);
  for (const p of goneDay) listing.delete(p);
  listing.set(extra, 5);
  listing.set(extraDay, 6);
  listing.set(recounted, 99_999);
  // 1,001 missing files: summary.json counts them all and lists the first MAX_FILES_LISTED.
  const missing = [gone, ...goneDay];
  t.true(missing.length > MAX_FILES_LISTED);
  const expected = {
    present: true,
    files: files.length,
    missingFileCount: missing.length,
    missingFiles: missing.slice(0, MAX_FILES_LISTED),
    unlistedCount: 2,
    unlisted: [extra, extraDay],
    rowMismatchCount: 1,
    rowMismatches: [{ path: recounted, manifest: files.find((f) => f.path === recounted)!.rows, file: 99_999 }],
  };
  const sorted = await written(files);
  t.deepEqual(await check(sorted.file, listing), expected);

  // Not sorted (not written by this sink): the same findings (the order of the lists aside).
  const shuffled = [...files].sort((a, b) => (a.rows - b.rows) || (a.path < b.path ? 1 : -1));
  const { file } = await written([]);
  await fs.writeFile(file, JSON.stringify({ dataset: 'intraday', schemaVersion: 1, runId: 'r1', updatedAt: '', files: shuffled }));
  const got = await check(file, listing);
  t.truthy(got);
  t.is(got!.missingFileCount, missing.length);
  t.is(got!.missingFiles.length, MAX_FILES_LISTED);
  t.true(got!.missingFiles.every((p) => missing.includes(p)));
  t.deepEqual([...got!.unlisted].sort(), [...expected.unlisted].sort());
  t.deepEqual(got!.rowMismatches, expected.rowMismatches);
  t.is(got!.files, expected.files);
});

test('a manifest cut short or not a manifest counts as none (as readManifest reads it)', async (t) => {
  const files = entries();
  const { dir, file } = await written(files);
  const text = await fs.readFile(file, 'utf8');
  const listing = new Map(files.map((f) => [f.path, f.rows]));
  for (const broken of [text.slice(0, Math.floor(text.length * 0.6)), text.slice(0, text.length - 3), '[]', '{"files": 3}', '', text.replace('"format": "parquet",', '"format": "parquet",,')]) {
    await fs.writeFile(file, broken);
    t.is(await readManifest(dir, 'intraday'), null);
    t.is(await check(file, listing), null, `${broken.slice(0, 20)}…${broken.slice(-20)} (${broken.length} chars)`);
  }
  // No files key at all.
  await fs.writeFile(file, '{"dataset": "intraday"}');
  t.is(await check(file, listing), null);
});
