// A daily_summaries sink that runs beside a pipeline's main sink: records are pushed as they
// come (a few per user-day: far fewer than the points beside them) and drained by the sink,
// which buffers and writes as any sink does.
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DailySummaryRecord } from '../lib/schema.js';
import type { DatasetSummary } from '../lib/sink.js';
import { runTmpDir } from '../sinks/files.js';
import { createSink, deadLetterPath } from '../sinks/index.js';
import type { RunContext } from './context.js';

/**
 * Keeps the run's temporary folder non-empty while both sinks work. A sink removes that folder
 * when it finishes if it is empty, but the sinks of one run share a per-thread note of the
 * folders already made (sinks/write-partition.ts storageOf, keyed by output and run id), so the
 * other sink's next file would go to a folder that is gone (ENOENT) — the same happens to the
 * next pipeline of a `run all`. Reported to the sinks' owner.
 */
function holdTmpDir(ctx: RunContext): () => Promise<void> {
  const hold = join(runTmpDir(ctx.config.outDir, ctx.runId), '.daily-summaries.hold');
  mkdirSync(dirname(hold), { recursive: true });
  writeFileSync(hold, '');
  // The folder itself stays: a later pipeline of the run may have noted it too (its sink, or
  // the next run's prepareOutput, removes it).
  return () => rm(hold, { force: true });
}

export interface DailySummaries {
  push(record: DailySummaryRecord): void;
  /** No more records: the sink commits what it has. */
  close(): void;
  /** Settles once the sink has committed (or failed); never rejects. */
  done: Promise<{ summary: DatasetSummary; deadLetterFiles: string[] } | { error: unknown }>;
}

export function startDailySummaries(ctx: RunContext): DailySummaries {
  let queued: DailySummaryRecord[] = [];
  let closed = false;
  let failed = false;
  let wake: (() => void) | null = null;
  async function* batches(): AsyncGenerator<DailySummaryRecord[]> {
    for (;;) {
      if (queued.length > 0) {
        const batch = queued;
        queued = [];
        yield batch;
        continue;
      }
      if (closed) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  }
  const release = holdTmpDir(ctx);
  const sink = createSink('daily_summaries', {
    outDir: ctx.config.outDir,
    format: ctx.config.format,
    runId: ctx.runId,
    compression: ctx.config.compression,
  });
  const done = sink(batches()).finally(release).then(
    (summary) => ({ summary, deadLetterFiles: summary.deadLetters > 0 ? [deadLetterPath(ctx.config.outDir, 'daily_summaries', ctx.runId)] : [] }),
    (error: unknown) => {
      failed = true; // stop queueing: nothing drains it any more
      queued = [];
      return { error };
    },
  );
  return {
    push(record) {
      if (closed || failed) return;
      queued.push(record);
      wake?.();
    },
    close() {
      closed = true;
      wake?.();
    },
    done,
  };
}
