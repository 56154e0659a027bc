// Users side by side into one sink, for every pipeline that works per user: one stream of
// batches per user, `userStreams(--concurrency)` users at a time, one dataset per call.
import { mergeConcurrent } from '../lib/async.js';
import { EtlError } from '../lib/errors.js';
import type { Dataset } from '../lib/schema.js';
import type { DatasetSummary, DeadLetterWriter, SinkBatch } from '../lib/sink.js';
import { createDeadLetterWriter, createSink } from '../sinks/index.js';
import type { PipelineName } from './config.js';
import type { FailedUser, RunContext } from './context.js';

/** True for errors that end the whole pipeline rather than one user (the API was turned off). */
export function isPipelineFatal(err: unknown): boolean {
  return err instanceof EtlError && err.code === 'API_GONE';
}

/** A check that throws a usage error, as the message (or null when it passes). */
export function usageProblem(check: () => unknown): string | null {
  try {
    check();
    return null;
  } catch (err) {
    if (err instanceof EtlError && (err.code === 'USAGE' || err.code === 'CONFIG')) return err.message;
    throw err;
  }
}

export function describeError(err: unknown): string {
  if (err instanceof EtlError) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/**
 * User streams run side by side for `--concurrency N` requests in flight: N in flight (the
 * session's request slots) and as many again parsing, normalizing or waiting for a slot, so
 * that a slot freed by one user's answer is taken at once by the next user's request
 * (bench/api-bound.ts: with N streams each slot sat idle while its user's body was processed).
 */
export function userStreams(concurrency: number): number {
  return concurrency * 2;
}

/**
 * Streams every user's batches (userStreams(config.concurrency) users at a time, one request at
 * a time per user, config.concurrency requests in flight) into one sink. When it returns, the sink has committed: only then may watermarks move.
 * A user that fails is named and the others go on; a 410 is kept for the pipeline to report once.
 */
export async function runUserStreams<D extends Dataset, U extends { readonly humanId: string }>(
  ctx: RunContext,
  pipeline: PipelineName,
  dataset: D,
  users: readonly U[],
  userBatches: (user: U, deadLetters: DeadLetterWriter) => AsyncIterable<SinkBatch<D>>,
): Promise<{ summary: DatasetSummary; failedUsers: FailedUser[]; deadLetterFiles: string[] }> {
  const { config } = ctx;
  // One writer per dataset: the normalizer's dead letters and the sink's placement failures.
  const deadLetters = createDeadLetterWriter(config.outDir, dataset, ctx.runId);
  const failedUsers: FailedUser[] = [];
  const batches = mergeConcurrent(users, (user: U) => userBatches(user, deadLetters), {
    concurrency: userStreams(config.concurrency),
    onError: (user, err) => {
      if (isPipelineFatal(err)) return; // reported once for the pipeline
      failedUsers.push({ user: user.humanId, reason: describeError(err) });
      ctx.log.error('user failed; what was fetched before is kept', { pipeline, user: user.humanId, reason: describeError(err) });
    },
  });
  const sink = createSink(dataset, {
    outDir: config.outDir,
    format: config.format,
    runId: ctx.runId,
    compression: config.compression,
    deadLetters,
    ...(ctx.tuning?.highWaterRows ? { highWaterRows: ctx.tuning.highWaterRows } : {}),
    ...(ctx.tuning?.maxOpenPartitions ? { maxOpenPartitions: ctx.tuning.maxOpenPartitions } : {}),
  });
  const summary = await sink(batches);
  const deadLetterFile = await deadLetters.close();
  summary.deadLetters = deadLetters.count;
  return { summary, failedUsers, deadLetterFiles: deadLetterFile ? [deadLetterFile] : [] };
}

