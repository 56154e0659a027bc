// Dead letters: one JSON line per record that could not be normalized or placed, at
// <out>/_dead_letter/<dataset>/<runId>.jsonl. Lines are appended to a temporary file as they
// come (memory stays flat) and the file is renamed into place at close. A second writer for
// the same dataset and run appends to it rather than replacing it.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EtlError, errorMessage } from '../lib/errors.js';
import type { DeadLetterWriter } from '../lib/sink.js';
import type { Dataset, DeadLetter } from '../lib/schema.js';
import { writeFileAtomic } from '../lib/fs.js';
import { DEAD_LETTER_DIR, moveIntoPlace, runIdComponent, tmpPath } from './files.js';
import { assertDataset } from './partition.js';

function jsonLine(letter: DeadLetter): string {
  return (
    JSON.stringify(
      { dataset: letter.dataset, reason: letter.reason, context: letter.context, raw: letter.raw },
      (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
    ) + '\n'
  );
}

export function deadLetterPath(outDir: string, dataset: Dataset, runId: string): string {
  return join(outDir, DEAD_LETTER_DIR, dataset, `${runIdComponent(runId)}.jsonl`);
}

export function createDeadLetterWriter(outDir: string, dataset: Dataset, runId: string): DeadLetterWriter {
  assertDataset(dataset);
  const finalPath = deadLetterPath(outDir, dataset, runId);
  const tmp = tmpPath(outDir, runId, `dead-letter-${dataset}`);
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
      const existing = await stat(finalPath).then(
        () => true,
        () => false,
      );
      if (existing) {
        const parts = [await readFile(finalPath), await readFile(tmp)];
        await writeFileAtomic(finalPath, parts, 0o644, { tmp: tmpPath(outDir, runId, `dead-letter-${dataset}-merged`), durable: false });
        await rm(tmp, { force: true });
      } else {
        await moveIntoPlace(tmp, finalPath, false);
      }
      return finalPath;
    },
  };
}
