// What the Fitbit pipelines share: the users file, one session per user, the profile, the
// per-user date window, and the run of every user's stream into one sink.
import { mergeConcurrent } from '../lib/async.js';
import { addDays, minDate, yesterdayIn } from '../lib/dates.js';
import { EtlError } from '../lib/errors.js';
import type { DatasetSummary, DeadLetterWriter, SinkBatch } from '../lib/sink.js';
import { createDeadLetterWriter, createSink } from '../sinks/index.js';
import { FitbitSession, FitbitShared, fetchProfile } from '../sources/fitbit/index.js';
import { FITBIT_RATE_DEFAULTS } from '../sources/fitbit/rate-limit.js';
import { UsersFile, isValidZone, type UserEntry } from '../sources/fitbit/users.js';
import type { FitbitUserContext } from '../sources/fitbit/types.js';
import type { PipelineName } from './config.js';
import type { FailedUser, RunContext } from './context.js';
import type { PipelineState, UserState } from './state.js';

export async function loadUsers(ctx: RunContext): Promise<UsersFile> {
  const file = ctx.config.usersFile;
  if (!file) throw new EtlError('CONFIG', 'the Fitbit pipelines need --users FILE');
  const users = await UsersFile.load(file);
  if (users.users().length === 0) throw new EtlError('CONFIG', `users file ${file} lists no users`);
  return users;
}

// One FitbitShared per run (a run's pipelines share its HttpStats): rate budgets, per-user
// request queues, profiles and the 410 verdict carry over from one Fitbit pipeline to the next.
const sharedByRun = new WeakMap<RunContext['stats'], FitbitShared>();

export function fitbitShared(ctx: RunContext): FitbitShared {
  let shared = sharedByRun.get(ctx.stats);
  if (!shared) {
    shared = new FitbitShared(ctx.config.concurrency);
    sharedByRun.set(ctx.stats, shared);
  }
  return shared;
}

export function openSession(ctx: RunContext, users: UsersFile, user: UserEntry, saved: UserState | undefined, pipeline: PipelineName): FitbitSession {
  const env = ctx.config.env;
  return new FitbitSession(
    {
      baseUrl: env.fitbitApiUrl,
      shared: fitbitShared(ctx),
      ...(env.fitbitClientId ? { clientId: env.fitbitClientId } : {}),
      ...(env.fitbitClientSecret ? { clientSecret: env.fitbitClientSecret } : {}),
      ...(ctx.tuning?.retry ? { retry: ctx.tuning.retry } : {}),
      rateLimit: ctx.tuning?.fitbitRateLimit ?? FITBIT_RATE_DEFAULTS,
      stats: ctx.stats,
      log: ctx.log,
      onWait: (who, waitMs) => ctx.progress?.({ pipeline, kind: 'waiting', user: who, waitMs }),
    },
    users,
    user.humanId,
    user.userId,
    saved?.rateBudget,
  );
}

/** Fetches the profile once per run and settles the zone: the users file's override, else the profile's. */
export async function userContext(session: FitbitSession, user: UserEntry): Promise<FitbitUserContext> {
  let profile = session.shared.profiles.get(user.humanId);
  if (!profile) {
    profile = await fetchProfile(session);
    session.shared.profiles.set(user.humanId, profile);
  }
  const timeZone = user.timezone ?? profile.timezone;
  if (!isValidZone(timeZone)) {
    throw new EtlError('BAD_RESPONSE', `user ${user.humanId}: profile time zone "${timeZone}" is not an IANA zone; set "timezone" for this user in the users file`, { user: user.humanId });
  }
  return { userId: user.userId, humanId: user.humanId, timeZone, profile, profileUnits: session.units };
}

/** Last local date to fetch for a user: --until, never past yesterday in the user's zone unless asked. */
export function untilFor(ctx: RunContext, zone: string): string {
  return ctx.config.until ?? yesterdayIn(zone, ctx.seenAt);
}

/**
 * First local date of a stream: --since wins (a backfill); else the day after the saved
 * watermark less the lookback (late device syncs change recent days); else a week back.
 */
export function sinceFor(ctx: RunContext, watermark: string | undefined, until: string): string {
  if (ctx.config.since) return ctx.config.since;
  if (watermark) return minDate(addDays(watermark, 1 - ctx.config.lookbackDays), addDays(until, 1));
  return addDays(until, -6);
}

export function userState(state: PipelineState, humanId: string): UserState {
  let u = state.users[humanId];
  if (!u) {
    u = { streams: {} };
    state.users[humanId] = u;
  }
  return u;
}

/** True for errors that end the whole pipeline rather than one user (the API was turned off). */
export function isPipelineFatal(err: unknown): boolean {
  return err instanceof EtlError && err.code === 'API_GONE';
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
export async function runUserStreams<D extends 'activities' | 'intraday'>(
  ctx: RunContext,
  pipeline: PipelineName,
  dataset: D,
  users: UsersFile,
  userBatches: (user: UserEntry, deadLetters: DeadLetterWriter) => AsyncIterable<SinkBatch<D>>,
): Promise<{ summary: DatasetSummary; failedUsers: FailedUser[]; deadLetterFiles: string[] }> {
  const { config } = ctx;
  // One writer per dataset: the normalizer's dead letters and the sink's placement failures.
  const deadLetters = createDeadLetterWriter(config.outDir, dataset, ctx.runId);
  const failedUsers: FailedUser[] = [];
  const batches = mergeConcurrent(users.users(), (user: UserEntry) => userBatches(user, deadLetters), {
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

/** After the state is saved: a 410 seen by any user fails the pipeline with one line. */
export function throwIfGone(ctx: RunContext): void {
  const gone = fitbitShared(ctx).gone;
  if (gone) throw gone;
}
