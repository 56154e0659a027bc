// Files appear whole: written under <out>/_tmp/<runId>/ (same filesystem as their final
// place, and never named *.parquet or *.arrow) and renamed into place when complete
// (lib/fs.ts writeFileAtomic with a `tmp` from tmpPath, or object-store/local.ts LocalStore).
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EtlError, errorMessage } from '../lib/errors.js';
import { escapePartitionValue } from './partition.js';

export const TMP_DIR = '_tmp';
export const DEAD_LETTER_DIR = '_dead_letter';

/** A run id as a file name component (percent-escaped like partition values). */
export function runIdComponent(runId: string): string {
  try {
    return escapePartitionValue(runId, 'runId');
  } catch (err) {
    throw new EtlError('USAGE', `run id ${JSON.stringify(runId)} cannot name files: ${errorMessage(err)}`);
  }
}

export function runTmpDir(outDir: string, runId: string): string {
  return join(outDir, TMP_DIR, runIdComponent(runId));
}

/** A fresh temporary path inside the run's folder; `.tmp` so no reader glob matches it. */
export function tmpPath(outDir: string, runId: string, label: string): string {
  return join(runTmpDir(outDir, runId), `${label}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Creates the output root and removes what crashed runs left in <out>/_tmp. Call it once
 * at the start of a run, before any sink of that run writes (it also removes the
 * temporary files of a run still going, so never while another run uses the same root).
 */
export async function prepareOutput(outDir: string): Promise<void> {
  try {
    await mkdir(outDir, { recursive: true });
    await rm(join(outDir, TMP_DIR), { recursive: true, force: true });
  } catch (err) {
    throw new EtlError('SINK', `cannot prepare output folder ${outDir}: ${errorMessage(err)}`, { path: outDir }, { cause: err });
  }
}
