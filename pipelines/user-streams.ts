// Users side by side into one sink, for every pipeline that works per user: one stream of
// batches per user, `userStreams(--concurrency)` users at a time, one dataset per call.
import path from 'node:path';
import { mergeConcurrent } from '../lib/async.js';
import { EtlError } from '../lib/errors.js';
import type { Dataset } from '../lib/schema.js';
import type { DatasetSummary, DeadLetterWriter, SinkBatch } from '../lib/sink.js';
import { createDeadLetterWriter, createSink, deadLetterPath, UserCommit } from '../sinks/index.js';
import type { SharedWriters } from '../sinks/index.js';
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

/**
 * One object per run for what a source's pipelines share (rate budgets, request queues,
 * profiles): keyed by the run's HttpStats, which every pipeline of a run is given.
 */
export function perRun<T>(cache: WeakMap<RunContext['stats'], T>, ctx: RunContext, make: () => T): T {
  let shared = cache.get(ctx.stats);
  if (shared === undefined) {
    shared = make();
    cache.set(ctx.stats, shared);
  }
  return shared;
}

/** One user's part of a dry run: the window and the requests (`atLeast`: pages not known yet). */
export interface UserPlan {
  name: string;
  window: string;
  requests: number;
}

/**
 * The dry-run lines of a per-user pipeline: one per user, then the total and the time a
 * per-user limit of `perUser` requests a `unit` makes it take with users side by side
 * (userStreams(concurrency) at a time).
 */
export function planLines(pipeline: PipelineName, users: readonly UserPlan[], concurrency: number, limit: { perUser: number; unit: 'hour' | 'minute' }, atLeast = false): string[] {
  const ge = atLeast ? '≥ ' : '';
  const lines = users.map((u) => `${pipeline}: user ${u.name}: ${u.window}, ${ge}${u.requests} request(s)`);
  const requests = users.reduce((n, u) => n + u.requests, 0);
  const busiest = users.reduce((n, u) => Math.max(n, u.requests), 0);
  const streams = userStreams(concurrency);
  const waits = Math.ceil(users.length / streams) * Math.max(0, Math.ceil(busiest / limit.perUser) - 1);
  const unit = limit.unit === 'hour' ? 'h' : 'min';
  lines.push(`${pipeline}: ${users.length} user(s), ${ge}${requests} request(s); rate-limit waits ≈ ${waits} ${unit} (${limit.perUser} requests/${limit.unit}/user, ${streams} users at a time)`);
  return lines;
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

/** How a user's stream ended, when the sink has committed everything it brought. */
export interface UserOutcome {
  /** Every batch of the user's window was fetched (not stopped, not failed). */
  complete: boolean;
}

/**
 * Streams every user's batches (userStreams(config.concurrency) users at a time, one request at
 * a time per user, config.concurrency requests in flight) into one sink. When it returns, the sink has committed: only then may watermarks move.
 * A user that fails is named and the others go on; a 410 is kept for the pipeline to report once.
 *
 * Checkpoints: when a user's stream ends (done, failed or stopped), the sink commits that
 * user's partitions and the manifest, then `onUserCommitted` runs (the pipeline saves the user's
 * watermark and rate budget), so a run killed later resumes after what is committed.
 * `writers`: writer threads the sink shares with the pipeline's other sinks (the caller closes them).
 * Stop (ctx.stop aborted): no user starts, and each running user stops before its next
 * batch — at once, even while its request waits for a rate limit (that request is dropped).
 */
export async function runUserStreams<D extends Dataset, U extends { readonly humanId: string }>(
  ctx: RunContext,
  pipeline: PipelineName,
  dataset: D,
  users: readonly U[],
  userBatches: (user: U, deadLetters: DeadLetterWriter) => AsyncIterable<SinkBatch<D>>,
  onUserCommitted?: (user: U, outcome: UserOutcome) => Promise<void>,
  writers?: SharedWriters,
): Promise<{ summary: DatasetSummary; failedUsers: FailedUser[]; deadLetterFiles: string[] }> {
  const { config } = ctx;
  // One writer per dataset: the normalizer's dead letters and the sink's placement failures.
  const deadLetters = createDeadLetterWriter(config.outDir, dataset, ctx.runId);
  const failedUsers: FailedUser[] = [];
  const stop = ctx.stop;
  const stopped = new Promise<'stopped'>((resolve) => {
    if (stop?.aborted) resolve('stopped');
    else stop?.addEventListener('abort', () => resolve('stopped'), { once: true });
  });

  async function* guarded(user: U): AsyncGenerator<SinkBatch<D> | UserCommit> {
    if (stop?.aborted) return;
    // Counts per user, so a user whose every record went to the dead letters is named.
    let rows = 0;
    let letters = 0;
    const userLetters: DeadLetterWriter = {
      write: (letter) => {
        letters++;
        deadLetters.write(letter);
      },
      get count() {
        return deadLetters.count;
      },
      close: () => deadLetters.close(),
    };
    const inner = userBatches(user, userLetters)[Symbol.asyncIterator]();
    let failure: unknown = null;
    let complete = false;
    try {
      for (;;) {
        const next = stop ? await Promise.race([inner.next(), stopped]) : await inner.next();
        if (next === 'stopped') break; // the pending request is dropped, not awaited
        if (next.done) {
          complete = !stop?.aborted;
          break;
        }
        rows += 'table' in next.value ? next.value.table.rowCount : next.value.length;
        yield next.value;
        if (stop?.aborted) {
          await inner.return?.(undefined);
          break;
        }
      }
    } catch (err) {
      failure = err;
    }
    if (failure === null && complete && rows === 0 && letters > 0) {
      failure = new EtlError('BAD_RESPONSE', `all ${letters} record(s) went to the dead letters (${path.relative(config.outDir, deadLetterPath(config.outDir, dataset, ctx.runId))})`);
    }
    if (onUserCommitted) yield new UserCommit(user.humanId, () => onUserCommitted(user, { complete: complete && failure === null }));
    if (failure !== null) throw failure;
  }

  const batches = mergeConcurrent(users, guarded, {
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
    ...(writers ? { writers } : {}),
  });
  const summary = await sink(batches);
  const deadLetterFile = await deadLetters.close();
  summary.deadLetters = deadLetters.count;
  return { summary, failedUsers, deadLetterFiles: deadLetterFile ? [deadLetterFile] : [] };
}
