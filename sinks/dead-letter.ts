// Dead letters: one JSON line per record that could not be normalized or placed, at
// <out>/_dead_letter/<dataset>/<runId>.jsonl. Lines are appended to a local temporary file as
// they come (memory stays flat: under <out>/_tmp/<runId>/ for a folder, in the staging folder
// for a bucket) and the file is put into the output root whole at close (output.ts: a rename,
// or an upload). A second writer for the same dataset and run appends to it rather than
// replacing it.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EtlError, errorMessage } from '../lib/errors.js';
import type { DeadLetterWriter } from '../lib/sink.js';
import type { Dataset, DeadLetter } from '../lib/schema.js';
import { DEAD_LETTER_DIR, runIdComponent, tmpPath } from './files.js';
import { stagingDir } from './object-store/index.js';
import { isBucketOut, openOutput, outputPath } from './output.js';
import { assertDataset } from './partition.js';

function jsonLine(letter: DeadLetter): string {
  return (
    JSON.stringify(
      { dataset: letter.dataset, reason: letter.reason, context: letter.context, raw: letter.raw },
      (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
    ) + '\n'
  );
}

function deadLetterKey(dataset: Dataset, runId: string): string {
  return `${DEAD_LETTER_DIR}/${dataset}/${runIdComponent(runId)}.jsonl`;
}

/** Where a run's dead letters of a dataset go: a file path, or s3://bucket/prefix/_dead_letter/… */
export function deadLetterPath(outDir: string, dataset: Dataset, runId: string): string {
  return outputPath(outDir, deadLetterKey(dataset, runId));
}

export function createDeadLetterWriter(outDir: string, dataset: Dataset, runId: string): DeadLetterWriter {
  assertDataset(dataset);
  const key = deadLetterKey(dataset, runId);
  const finalPath = outputPath(outDir, key);
  const label = `dead-letter-${dataset}`;
  const tmp = isBucketOut(outDir) ? join(stagingDir(process.env), `${label}.${randomBytes(6).toString('hex')}.tmp`) : tmpPath(outDir, runId, label);
  let fd: number | null = null;
  let count = 0;
  let closed = false;
  return {
    write(letter: DeadLetter): void {
      if (closed) throw new EtlError('SINK', `dead-letter writer for ${dataset} used after close`);
      try {
        if (fd === null) {
          mkdirSync(dirname(tmp), { recursive: true });
          fd = openSync(tmp, 'w');
        }
        writeSync(fd, jsonLine(letter));
      } catch (err) {
        throw new EtlError('SINK', `cannot write dead letters to ${tmp}: ${errorMessage(err)}`, { path: tmp }, { cause: err });
      }
      count++;
    },
    get count(): number {
      return count;
    },
    async close(): Promise<string | null> {
      if (closed) return count > 0 ? finalPath : null;
      closed = true;
      if (fd === null) return null;
      closeSync(fd);
      fd = null;
      const store = openOutput(outDir, { runId });
      const existing = await store.get(key);
      try {
        // A staged file is consumed by put (renamed into place, or uploaded and deleted).
        await store.put(key, existing === null ? { file: tmp } : [existing, await readFile(tmp)]);
      } finally {
        await rm(tmp, { force: true });
      }
      return finalPath;
    },
  };
}
