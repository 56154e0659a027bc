// Users side by side into one sink, for every pipeline that works per user: one stream of
// batches per user, `userStreams(--concurrency)` users at a time, one dataset per call.
import path from 'node:path';
import { mergeConcurrent } from '../lib/async.js';
import { EtlError } from '../lib/errors.js';
import type { Dataset } from '../lib/schema.js';
import type { DatasetSummary, DeadLetterWriter, SinkBatch } from '../lib/sink.js';
import { createDeadLetterWriter, createSink, deadLetterPath, UserCommit } from '../sinks/index.js';
import type { PipelineName } from './config.js';
import type { FailedUser, RunContext } from './context.js';
import { leasedFeed } from './state/feed.js';

/**
 * True for errors that end the whole pipeline rather than one user: the API was turned off, or
 * the state database was lost (another worker takes the users over).
 */
export function isPipelineFatal(err: unknown): boolean {
  return err instanceof EtlError && (err.code === 'API_GONE' || err.code === 'STATE');
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
 * Stop (ctx.stop aborted): no user starts, and each running user stops before its next
 * batch — at once, even while its request waits for a rate limit (that request is dropped).
 */
export async function runUserStreams<D extends Dataset, U extends { readonly humanId: string; readonly leaseKey?: string }>(
  ctx: RunContext,
  pipeline: PipelineName,
  dataset: D,
  users: readonly U[],
  userBatches: (user: U, deadLetters: DeadLetterWriter) => AsyncIterable<SinkBatch<D>>,
  onUserCommitted?: (user: U, outcome: UserOutcome) => Promise<void>,
): Promise<{ summary: DatasetSummary; failedUsers: FailedUser[]; deadLetterFiles: string[] }> {
  const { config } = ctx;
  // One writer per dataset: the normalizer's dead letters and the sink's placement failures.
  const deadLetters = createDeadLetterWriter(config.outDir, dataset, ctx.runId);
  const failedUsers: FailedUser[] = [];
  const stop = ctx.stop;
  const stopped = stopSignalled(stop);

  /** `until`: the user's own stop (with several workers: ctx.stop or its lease lost). */
  async function* guarded(user: U, until = stop, finish?: (failure: unknown) => void): AsyncGenerator<SinkBatch<D> | UserCommit> {
    if (until?.aborted) {
      finish?.(null);
      return;
    }
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
    const halted = until === stop ? stopped : stopSignalled(until);
    try {
      for (;;) {
        const next = until ? await Promise.race([inner.next(), halted]) : await inner.next();
        if (next === 'stopped') break; // the pending request is dropped, not awaited
        if (next.done) {
          complete = !until?.aborted;
          break;
        }
        rows += 'table' in next.value ? next.value.table.rowCount : next.value.length;
        yield next.value;
        if (until?.aborted) {
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
    const outcome = { complete: complete && failure === null };
    if (onUserCommitted || finish) {
      yield new UserCommit(user.humanId, async () => {
        await onUserCommitted?.(user, outcome);
        finish?.(failure);
      });
    }
    if (failure !== null) throw failure;
  }

  const onError = (user: U, err: unknown): void => {
    if (isPipelineFatal(err)) return; // reported once for the pipeline
    failedUsers.push({ user: user.humanId, reason: describeError(err) });
    ctx.log.error('user failed; what was fetched before is kept', { pipeline, user: user.humanId, reason: describeError(err) });
  };
  const streams = userStreams(config.concurrency);
  // With the state in PostgreSQL, the users come from the leases this worker claims.
  const keys = users.map((u) => u.leaseKey ?? u.humanId);
  const feed = ctx.shared
    ? leasedFeed(
        ctx.shared.leases,
        await ctx.shared.leases.join(ctx.shared.workKey(pipeline, config, keys, new Date(ctx.seenAt).toISOString().slice(0, 10)), keys),
        new Map(users.map((u, i) => [keys[i]!, u] as const)),
        streams,
        stop,
      )
    : null;
  const batches = feed
    ? mergeConcurrent(
        feed.slots,
        async function* (): AsyncGenerator<SinkBatch<D> | UserCommit> {
          const claimed = await feed.next();
          if (!claimed) return;
          ctx.log.info('user claimed', { pipeline, user: claimed.user.humanId });
          try {
            yield* guarded(claimed.user, claimed.signal, claimed.finish);
          } catch (err) {
            onError(claimed.user, err);
          }
        },
        { concurrency: streams, onError: () => undefined },
      )
    : mergeConcurrent(users, (user) => guarded(user), { concurrency: streams, onError });
  const sink = createSink(dataset, {
    outDir: config.outDir,
    format: config.format,
    runId: ctx.runId,
    compression: config.compression,
    deadLetters,
    ...(ctx.tuning?.highWaterRows ? { highWaterRows: ctx.tuning.highWaterRows } : {}),
    ...(ctx.tuning?.maxOpenPartitions ? { maxOpenPartitions: ctx.tuning.maxOpenPartitions } : {}),
  });
  let summary: DatasetSummary;
  try {
    summary = await sink(batches);
  } catch (err) {
    feed?.abort(err);
    throw err;
  }
  // A worker that lost the state database stops here with one line (its users are taken over).
  await feed?.done;
  const deadLetterFile = await deadLetters.close();
  summary.deadLetters = deadLetters.count;
  return { summary, failedUsers, deadLetterFiles: deadLetterFile ? [deadLetterFile] : [] };
}

/** Resolves 'stopped' when the signal fires. */
function stopSignalled(signal: AbortSignal | undefined): Promise<'stopped'> {
  return new Promise((resolve) => {
    if (signal?.aborted) resolve('stopped');
    else signal?.addEventListener('abort', () => resolve('stopped'), { once: true });
  });
}
