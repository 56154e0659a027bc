// <out>/<dataset>/_manifest.json: every partition file with its row count, written last and
// atomically by each run, in a folder or a bucket (output.ts). It is written only after the
// files it names are in place, so it never names a missing one. Entries of partitions a run did
// not touch are kept.
import type { OutputFormat } from '../lib/sink.js';
import type { Dataset } from '../lib/schema.js';
import { SCHEMA_VERSION } from '../lib/schema.js';
import { openOutput, outputPath } from './output.js';

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

function manifestKey(dataset: Dataset): string {
  return `${dataset}/${MANIFEST_FILE}`;
}

/**
 * The dataset's manifest; null when there is none or it is not one. A manifest that cannot be
 * read (a bucket that does not answer) is an error, not "none": writing a fresh one would drop
 * every entry of earlier runs.
 */
export async function readManifest(outDir: string, dataset: Dataset): Promise<Manifest | null> {
  const bytes = await openOutput(outDir).get(manifestKey(dataset));
  if (bytes === null) return null;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
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
  await openOutput(outDir, { runId, durable }).put(manifestKey(dataset), Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
  return outputPath(outDir, manifestKey(dataset));
}
