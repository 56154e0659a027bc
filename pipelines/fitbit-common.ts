// What the Fitbit pipelines share: the users file, one session per user, the profile, the
// per-user date window, and the run of every user's stream into one sink.
import { addDays, minDate, yesterdayIn } from '../lib/dates.js';
import { EtlError } from '../lib/errors.js';
import { FitbitSession, FitbitShared, fetchProfile } from '../sources/fitbit/index.js';
import { FITBIT_RATE_DEFAULTS } from '../sources/fitbit/rate-limit.js';
import { UsersFile, isValidZone, type UserEntry } from '../sources/fitbit/users.js';
import type { FitbitUserContext } from '../sources/fitbit/types.js';
import type { PipelineName, RunConfig } from './config.js';
import { clientOptions, type RunContext } from './context.js';
import type { UserState } from './state.js';
import type { StateStore } from './state/store.js';
import { perRun, planUsers, type PlanRequests } from './user-streams.js';

export async function loadUsers(ctx: RunContext): Promise<UsersFile> {
  const file = ctx.config.usersFile;
  if (!file) throw new EtlError('CONFIG', 'the Fitbit pipelines need --users FILE');
  const users = await UsersFile.load(file);
  if (users.users().length === 0) throw new EtlError('CONFIG', `users file ${file} lists no users`);
  await ctx.shared?.tokens(FITBIT_PROVIDER).load(users.users().map((u) => u.humanId));
  return users;
}

// One FitbitShared per run (a run's pipelines share its HttpStats): rate budgets, per-user
// request queues, profiles and the 410 verdict carry over from one Fitbit pipeline to the next.
const sharedByRun = new WeakMap<RunContext['stats'], FitbitShared>();

export function fitbitShared(ctx: RunContext): FitbitShared {
  return perRun(sharedByRun, ctx, () => new FitbitShared(ctx.config.concurrency));
}

export function openSession(ctx: RunContext, users: UsersFile, user: UserEntry, saved: UserState | undefined, pipeline: PipelineName): FitbitSession {
  const env = ctx.config.env;
  const shared = ctx.shared;
  const rateLimit = ctx.tuning?.fitbitRateLimit ?? FITBIT_RATE_DEFAULTS;
  return new FitbitSession(
    {
      baseUrl: env.fitbitApiUrl,
      shared: fitbitShared(ctx),
      ...(env.fitbitClientId ? { clientId: env.fitbitClientId } : {}),
      ...(env.fitbitClientSecret ? { clientSecret: env.fitbitClientSecret } : {}),
      rateLimit,
      ...clientOptions(ctx, pipeline),
      ...(shared ? { sharedBudget: (humanId: string) => shared.fitbitBudget(humanId, rateLimit) } : {}),
    },
    // With the state in PostgreSQL, the tokens are there (rotated there, never in the file).
    shared ? shared.tokens(FITBIT_PROVIDER) : users,
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

/** After the state is saved: a 410 seen by any user fails the pipeline with one line. */
export function throwIfGone(ctx: RunContext): void {
  const gone = fitbitShared(ctx).gone;
  if (gone) throw gone;
}

/** What both Fitbit pipelines need: a users file with Fitbit entries. */
export function checkFitbitUsers(config: RunConfig): string | null {
  if (!config.usersFile) return 'needs --users FILE (a users file with Fitbit entries)';
  if (!config.usersByProvider[FITBIT_PROVIDER]) return `the users file ${config.usersFile} has no Fitbit users (entries without "provider", or "provider": "fitbit")`;
  return null;
}

export const FITBIT_PROVIDER = 'fitbit' as const;
const FITBIT_PER_HOUR = 150;

/**
 * The dry-run lines of a Fitbit pipeline: per user, the window and requests (from the users
 * file and the state; without the profile, the users file's zone or UTC decides "yesterday"),
 * then the time the 150 requests/hour/user limit makes it take with users side by side.
 */
export async function planFitbit(config: RunConfig, store: StateStore, pipeline: PipelineName, now: number, requestsFor: PlanRequests): Promise<string[]> {
  const users = (await UsersFile.load(config.usersFile as string)).users().map((u) => ({ name: u.humanId, key: u.humanId, zone: u.timezone, fixedRequests: 0 }));
  return planUsers(config, store, pipeline, now, users, requestsFor, { perUser: FITBIT_PER_HOUR, unit: 'hour' });
}
