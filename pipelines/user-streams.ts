// The skeleton of every pipeline that works per user (Fitbit, Google Health, Takeout): the
// users' streams side by side into one sink (`userStreams(--concurrency)` users at a time, and
// side sinks for the other datasets they bring); at each user's checkpoint — its partitions
// committed in every dataset — that user's watermarks, rate budget and unfinished windows are
// saved; the whole state is saved at the end.
import path from 'node:path';
import { mergeConcurrent } from '../lib/async.js';
import { addDays, minDate, yesterdayIn } from '../lib/dates.js';
import { EtlError } from '../lib/errors.js';
import type { Dataset } from '../lib/schema.js';
import type { DatasetSummary, DeadLetterWriter, SinkBatch } from '../lib/sink.js';
import { createDeadLetterWriter, createSink, deadLetterPath, UserCommit, type SharedWriters } from '../sinks/index.js';
import type { RateBudgetState } from '../sources/fitbit/rate-limit.js';
import type { PipelineFlag, PipelineName, RunConfig } from './config.js';
import { sinkOptions, type FailedUser, type PipelineResult, type RunContext } from './context.js';
import type { SideCommits } from './side-sink.js';
import type { PipelineState, UserState } from './state.js';
import type { StateStore } from './state/store.js';
import { leasedFeed } from './state/feed.js';

/** The options of a pipeline over a date window per user. */
export const WINDOW_FLAGS: readonly PipelineFlag[] = ['users', 'since', 'until', 'lookback', 'concurrency'];

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

/** A user as a dry run sees it: its name, its key in the state, its zone if the users file names one, and the requests it costs whatever its window (profile, identity). */
export interface PlanUser {
  name: string;
  key: string | undefined;
  zone: string | undefined;
  fixedRequests: number;
}

/** What a pipeline would fetch for one user, from its saved watermarks and its last date. */
export type PlanRequests = (saved: Record<string, string>, until: string) => { window: string; requests: number };

/**
 * The dry run of a per-user pipeline: per user its window and requests from the state (read
 * through the store) and the users file (without the profile, the users file's zone or UTC
 * decides "yesterday"), then the total and the time the per-user limit takes.
 */
export async function planUsers(config: RunConfig, store: StateStore, pipeline: PipelineName, now: number, users: readonly PlanUser[], requestsFor: PlanRequests, limit: { perUser: number; unit: 'hour' | 'minute' }, atLeast = false): Promise<string[]> {
  const state = await store.load(pipeline);
  const plans = users.map((u) => {
    const until = config.until ?? yesterdayIn(u.zone ?? 'UTC', now);
    const r = requestsFor(u.key === undefined ? {} : state.users[u.key]?.streams ?? {}, until);
    return { name: u.name, window: r.window, requests: r.requests + u.fixedRequests };
  });
  return planLines(pipeline, plans, config.concurrency, limit, atLeast);
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

/** How a user's stream ended, when the sinks have committed everything it brought. */
export interface UserOutcome {
  /** Every batch of the user's window was fetched (not stopped, not failed). */
  complete: boolean;
}

/** One user's part of the state, made on first use. */
export function userState(state: PipelineState, humanId: string): UserState {
  let u = state.users[humanId];
  if (!u) {
    u = { streams: {} };
    state.users[humanId] = u;
  }
  return u;
}

/** A stream's local-date window: the dates asked for, and the last one that is over in the user's zone. */
export interface DateWindow {
  since: string;
  until: string;
  lastComplete: string;
}

/**
 * What one user's stream has delivered to the sinks, for that user's checkpoint. A pipeline
 * opens each date stream's window here (which tells it where to resume), says which dates went
 * out, and sets other watermarks (a lastModified, an archive's fingerprint) once the user's
 * stream is through; the skeleton writes it all into the state once the sinks have committed.
 */
export class UserProgress {
  /** The user's rate budget now, saved at the checkpoint (null: the source has none). */
  budget: (() => RateBudgetState) | null = null;
  private readonly windows = new Map<string, DateWindow & { done?: string }>();
  private readonly marks = new Map<string, string>();

  constructor(
    private readonly state: PipelineState,
    private readonly user: { readonly humanId: string },
  ) {}

  /** The user's saved state (looked up by its name now: a Google Health user's is known once its identity is). */
  get saved(): UserState {
    return userState(this.state, this.user.humanId);
  }

  /**
   * Opens `stream`'s window and returns its first date to fetch: `since`, or the day after what
   * an unfinished run of this same window committed (a stopped or killed run; the watermark
   * moves only over days that are over, so a repeated --since/--until needs this to resume).
   */
  open(stream: string, w: DateWindow): string {
    const pending = this.saved.pending?.[stream];
    const resumed = pending !== undefined && pending.since === w.since && pending.until === w.until ? pending.done : undefined;
    this.windows.set(stream, resumed === undefined ? { ...w } : { ...w, done: resumed });
    return resumed === undefined ? w.since : addDays(resumed, 1);
  }

  /** Every date of `stream` through `date` has gone to the sink (days are delivered in order). */
  done(stream: string, date: string): void {
    const w = this.windows.get(stream);
    if (w && (w.done === undefined || date > w.done)) w.done = date;
  }

  /** A watermark that is not a date window, saved when the user's stream is complete. */
  mark(stream: string, value: string): void {
    this.marks.set(stream, value);
  }

  /** Into the user's state, once what it describes is committed. */
  checkpoint(u: UserState, outcome: UserOutcome): void {
    if (this.budget) u.rateBudget = this.budget();
    for (const [stream, w] of this.windows) {
      if (w.done === undefined) continue;
      // Days through `done` are committed, in order: the watermark passes the ones that are over,
      // even for a user that failed or was stopped later (the next scheduled run starts after it).
      const complete = minDate(w.done, w.lastComplete);
      const mark = u.streams[stream];
      if (complete >= w.since && (mark === undefined || complete > mark)) u.streams[stream] = complete;
      // Kept until the run ends: if it is killed, the next run of this window skips these days.
      (u.pending ??= {})[stream] = { since: w.since, until: w.until, done: w.done };
    }
    if (outcome.complete) for (const [stream, value] of this.marks) u.streams[stream] = value;
  }
}

/** What every user's stream gets. */
export interface UserIo {
  deadLetters: DeadLetterWriter;
  progress: UserProgress;
}

/** A user of a per-user pipeline; `leaseKey` names it in the workers' leases when its humanId may change mid-run. */
export interface LeasedUser {
  readonly humanId: string;
  readonly leaseKey?: string;
}

/** One per-user pipeline, as the skeleton runs it. */
export interface PerUserPipeline<D extends Dataset, U extends LeasedUser> {
  pipeline: PipelineName;
  /** The dataset the users' batches go to. */
  dataset: D;
  users: readonly U[];
  /** Loaded from ctx.state (perUserState); saved through it at each checkpoint and at the end. */
  state: PipelineState;
  /** One user's batches. */
  batches(user: U, io: UserIo): AsyncIterable<SinkBatch<D>>;
  /** Sinks of the other datasets the batches' streams push to: committed at every checkpoint too. */
  sides?: readonly SideCommits[];
  /**
   * The writer threads the side sinks were started with (startSideSink): the main sink writes on
   * them too, so the side datasets' small files are not written on this thread between answers.
   */
  writers?: SharedWriters;
  /** Users side by side (default userStreams(--concurrency)); an archive import has no requests to overlap. */
  usersAtOnce?: number;
  /** What a checkpoint saves beyond the user's progress (Google Health: the budget under the user's other name). */
  onCheckpoint?(user: U, state: PipelineState): void;
}

/** The pipeline's state from the run's store. */
export function perUserState(ctx: RunContext, pipeline: PipelineName): Promise<PipelineState> {
  return ctx.state.load(pipeline);
}

/**
 * Runs a per-user pipeline: every user's stream into the sink (and its side sinks); at each
 * user's checkpoint (stream done, failed or stopped) the sinks commit that user's partitions
 * and manifests, then its progress goes into the state and the store saves it; at the end the
 * windows finished by a run that was not stopped are cleared, and the state is saved whole.
 */
export async function runPerUser<D extends Dataset, U extends LeasedUser>(ctx: RunContext, p: PerUserPipeline<D, U>): Promise<PipelineResult> {
  const progress = new Map<U, UserProgress>();
  const finished = new Set<string>();
  const sides = p.sides ?? [];
  const store: StateStore = ctx.state;
  async function committed(user: U, outcome: UserOutcome): Promise<void> {
    for (const side of sides) await side.commitUser(user.humanId);
    const mine = progress.get(user);
    if (mine) mine.checkpoint(userState(p.state, user.humanId), outcome);
    p.onCheckpoint?.(user, p.state);
    if (outcome.complete) finished.add(user.humanId);
    await store.saveUser(p.state, user.humanId);
  }
  const batches = (user: U, deadLetters: DeadLetterWriter): AsyncIterable<SinkBatch<D>> => {
    const mine = new UserProgress(p.state, user);
    progress.set(user, mine);
    return p.batches(user, { deadLetters, progress: mine });
  };
  let main: Awaited<ReturnType<typeof runUserStreams<D, U>>>;
  try {
    main = await runUserStreams(ctx, p.pipeline, p.dataset, p.users, batches, committed, p.writers, p.usersAtOnce);
  } finally {
    for (const side of sides) side.close();
    // Every sink on the shared threads has finished before they stop (even when one failed).
    if (p.writers) await Promise.all(sides.map((side) => side.done)).then(() => p.writers?.close());
  }
  const datasets = [main.summary];
  const deadLetterFiles = [...main.deadLetterFiles];
  let sideError: unknown = null;
  for (const side of sides) {
    const r = await side.done;
    if ('error' in r) sideError ??= r.error;
    else {
      datasets.push(r.summary);
      deadLetterFiles.push(...r.deadLetterFiles);
    }
  }
  // The run ended (not stopped): the windows it finished need no resuming, so a later run of
  // the same window (a backfill repeated on purpose) fetches it again.
  if (!ctx.stop?.aborted) for (const humanId of finished) delete userState(p.state, humanId).pending;
  await store.save(p.state);
  if (sideError !== null) throw sideError; // what the main sink and the checkpoints committed is kept
  return { pipeline: p.pipeline, datasets, users: p.users.length, failedUsers: main.failedUsers, deadLetterFiles };
}

/**
 * Streams every user's batches (userStreams(config.concurrency) users at a time, one request at
 * a time per user, config.concurrency requests in flight) into one sink. When it returns, the
 * sink has committed. A user that fails is named and the others go on; a 410 is kept for the
 * pipeline to report once.
 *
 * Checkpoints: when a user's stream ends (done, failed or stopped), the sink commits that
 * user's partitions and the manifest, then `onUserCommitted` runs.
 * Stop (ctx.stop aborted): no user starts, and each running user stops before its next
 * batch — at once, even while its request waits for a rate limit (that request is dropped).
 * So that a stop commits whole units of work only, a pipeline yields each unit (a day, a
 * window of a data type) as one batch.
 */
async function runUserStreams<D extends Dataset, U extends LeasedUser>(
  ctx: RunContext,
  pipeline: PipelineName,
  dataset: D,
  users: readonly U[],
  userBatches: (user: U, deadLetters: DeadLetterWriter) => AsyncIterable<SinkBatch<D>>,
  onUserCommitted: (user: U, outcome: UserOutcome) => Promise<void>,
  writers?: SharedWriters,
  usersAtOnce = userStreams(ctx.config.concurrency),
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
        const pending = inner.next();
        // Dropped when the user stops: what it does after that (a request that fails because the
        // run has ended) is not the run's failure, and must not surface as an unhandled one.
        pending.catch(() => undefined);
        const next = until ? await Promise.race([pending, halted]) : await pending;
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
    yield new UserCommit(user.humanId, async () => {
      await onUserCommitted(user, outcome);
      finish?.(failure);
    });
    if (failure !== null) throw failure;
  }

  const onError = (user: U, err: unknown): void => {
    if (isPipelineFatal(err)) return; // reported once for the pipeline
    failedUsers.push({ user: user.humanId, reason: describeError(err) });
    ctx.log.error('user failed; what was fetched before is kept', { pipeline, user: user.humanId, reason: describeError(err) });
  };
  const streams = usersAtOnce;
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
  const sink = createSink(dataset, { ...sinkOptions(ctx), deadLetters, ...(writers ? { writers } : {}) });
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
