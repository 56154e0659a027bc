// A sink that runs beside a per-user pipeline's main sink, for a dataset its users' streams
// also bring (Fitbit's day totals, a Takeout archive's exercise logs): batches are pushed as they
// come and drained by the sink, which buffers and writes as any sink does. At each user's
// checkpoint the skeleton (user-streams.ts) commits that user's partitions here too, before the
// user's state is saved, so a killed run never has state ahead of these files.
import type { Dataset } from '../lib/schema.js';
import type { DatasetSummary, DeadLetterWriter, SinkBatch } from '../lib/sink.js';
import { createDeadLetterWriter, createSink, UserCommit, type SharedWriters } from '../sinks/index.js';
import { sinkOptions, type RunContext } from './context.js';

/** What the skeleton needs of a side sink, whatever its dataset. */
export interface SideCommits {
  readonly dataset: Dataset;
  /** Resolves once `humanId`'s partitions pushed so far are committed (files and manifest); rejects if the sink failed. */
  commitUser(humanId: string): Promise<void>;
  /** No more batches: the sink commits what it has. */
  close(): void;
  /** Settles once the sink has committed (or failed); never rejects. */
  readonly done: Promise<{ summary: DatasetSummary; deadLetterFiles: string[] } | { error: unknown }>;
}

export interface SideSink<D extends Dataset> extends SideCommits {
  readonly dataset: D;
  /** For records of this dataset that cannot be normalized. */
  readonly deadLetters: DeadLetterWriter;
  /** Queues a batch; waits while the sink is behind (memory stays bounded). */
  push(batch: SinkBatch<D>): Promise<void>;
}

/** Batches queued at most before push waits for the sink. */
const MAX_QUEUED = 16;

/** `writers`: threads shared with the pipeline's main sink (pass the same to runPerUser, which closes them). */
export function startSideSink<D extends Dataset>(ctx: RunContext, dataset: D, writers?: SharedWriters): SideSink<D> {
  let queued: Array<SinkBatch<D> | UserCommit> = [];
  let closed = false;
  let failure: { error: unknown } | null = null;
  let wake: (() => void) | null = null;
  const drained: Array<() => void> = [];
  // Checkpoints asked for and not reached yet: a failed sink rejects them all.
  const waiting = new Set<(err: unknown) => void>();
  const deadLetters = createDeadLetterWriter(ctx.config.outDir, dataset, ctx.runId);
  async function* batches(): AsyncGenerator<SinkBatch<D> | UserCommit> {
    for (;;) {
      if (queued.length > 0) {
        const taken = queued;
        queued = [];
        for (const resolve of drained.splice(0)) resolve();
        yield* taken;
        continue;
      }
      if (closed) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  }
  const sink = createSink(dataset, { ...sinkOptions(ctx), deadLetters, ...(writers ? { writers } : {}) });
  const done = sink(batches()).then(
    async (summary) => {
      const file = await deadLetters.close();
      return { summary, deadLetterFiles: file ? [file] : [] };
    },
    async (error: unknown) => {
      failure = { error }; // stop queueing: nothing drains it any more
      queued = [];
      for (const reject of waiting) reject(error);
      waiting.clear();
      for (const resolve of drained.splice(0)) resolve();
      await deadLetters.close().catch(() => null);
      return failure;
    },
  );
  const enqueue = (item: SinkBatch<D> | UserCommit): void => {
    queued.push(item);
    wake?.();
  };
  return {
    dataset,
    deadLetters,
    async push(batch) {
      if (closed || failure) return;
      enqueue(batch);
      while (queued.length > MAX_QUEUED && !failure) await new Promise<void>((resolve) => drained.push(resolve));
    },
    commitUser(humanId) {
      if (failure) return Promise.reject(failure.error);
      return new Promise<void>((resolve, reject) => {
        waiting.add(reject);
        enqueue(
          new UserCommit(humanId, async () => {
            waiting.delete(reject);
            resolve();
          }),
        );
      });
    },
    close() {
      closed = true;
      wake?.();
    },
    done,
  };
}
