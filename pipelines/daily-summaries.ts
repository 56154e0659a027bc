// A daily_summaries sink that runs beside a pipeline's main sink: records are pushed as they
// come (a few per user-day: far fewer than the points beside them) and drained by the sink,
// which buffers and writes as any sink does.
import type { DailySummaryRecord } from '../lib/schema.js';
import type { DatasetSummary } from '../lib/sink.js';
import { createSink, deadLetterPath } from '../sinks/index.js';
import type { SharedWriters } from '../sinks/index.js';
import type { RunContext } from './context.js';

export interface DailySummaries {
  push(record: DailySummaryRecord): void;
  /** No more records: the sink commits what it has. */
  close(): void;
  /** Settles once the sink has committed (or failed); never rejects. */
  done: Promise<{ summary: DatasetSummary; deadLetterFiles: string[] } | { error: unknown }>;
}

/** `writers`: the main sink's writer threads, for this sink's files once they run (the caller closes them). */
export function startDailySummaries(ctx: RunContext, writers?: SharedWriters): DailySummaries {
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
  const sink = createSink('daily_summaries', {
    outDir: ctx.config.outDir,
    format: ctx.config.format,
    runId: ctx.runId,
    compression: ctx.config.compression,
    ...(writers ? { writers } : {}),
  });
  const done = sink(batches()).then(
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
