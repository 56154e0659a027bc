// <out>/<dataset>/_manifest.json: every partition file with its row count, written last and
// atomically by each run. Entries of partitions a run did not touch are kept.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EtlError, errorMessage } from '../lib/errors.js';
import type { OutputFormat } from '../lib/sink.js';
import type { Dataset } from '../lib/schema.js';
import { SCHEMA_VERSION } from '../lib/schema.js';
import { writeFileAtomic } from '../lib/fs.js';
import { tmpPath } from './files.js';

export const MANIFEST_FILE = '_manifest.json';

export interface ManifestFile {
  /** Relative to the dataset folder: date=YYYY-MM-DD/user=<user>/data.parquet */
  path: string;
  format: OutputFormat;
  rows: number;
  bytes: number;
  /** The run that last wrote the file. */
  runId: string;
}

export interface Manifest {
  dataset: Dataset;
  schemaVersion: number;
  /** The run that last wrote the manifest. */
  runId: string;
  updatedAt: string;
  files: ManifestFile[];
}

function isManifestFile(value: unknown): value is ManifestFile {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return typeof v['path'] === 'string' && typeof v['rows'] === 'number' && typeof v['runId'] === 'string';
}

export async function readManifest(outDir: string, dataset: Dataset): Promise<Manifest | null> {
  let text: string;
  try {
    text = await readFile(join(outDir, dataset, MANIFEST_FILE), 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object') return null;
    const files = (parsed as { files?: unknown }).files;
    if (!Array.isArray(files)) return null;
    return { ...(parsed as Manifest), files: files.filter(isManifestFile) };
  } catch {
    return null; // rewritten from this run's files; data files stay the truth
  }
}

/** Merges this run's files into the manifest and writes it atomically. */
export async function writeManifest(outDir: string, dataset: Dataset, runId: string, written: readonly ManifestFile[], durable: boolean): Promise<string> {
  const previous = await readManifest(outDir, dataset);
  const byPath = new Map<string, ManifestFile>();
  for (const f of previous?.files ?? []) byPath.set(f.path, f);
  for (const f of written) byPath.set(f.path, f);
  const manifest: Manifest = {
    dataset,
    schemaVersion: SCHEMA_VERSION,
    runId,
    updatedAt: new Date().toISOString(),
    files: [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  };
  const finalPath = join(outDir, dataset, MANIFEST_FILE);
  await writeFileAtomic(finalPath, JSON.stringify(manifest, null, 2) + '\n', 0o644, { tmp: tmpPath(outDir, runId, `manifest-${dataset}`), durable }).catch((err: unknown) => {
    throw new EtlError('SINK', `could not write ${finalPath}: ${errorMessage(err)}`, { path: finalPath }, { cause: err });
  });
  return finalPath;
}
