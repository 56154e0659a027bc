// What the Google Health pipelines share: the users file's google-health entries, one session
// per user (budget and queue shared by every pipeline of a run), identity and time zone, the
// option checks and the dry run.
import { addDays, daysInclusive, isValidZone, todayIn } from '../lib/dates.js';
import { EtlError } from '../lib/errors.js';
import { UsersFile } from '../lib/users-file.js';
import {
  GH_RATE_DEFAULTS,
  windowCount,
  GoogleHealthSession,
  GoogleHealthShared,
  fetchIdentity,
  fetchSettings,
  type GhRateBudgetState,
  type TokenStore,
} from '../sources/google-health/index.js';
import { GOOGLE_HEALTH_PROVIDER, parseGoogleHealthEntries, type GoogleHealthUserEntry } from '../sources/google-health/users.js';
import { ZoneDays, type GhUserContext } from '../transforms/google-health.js';
import type { Dataset } from '../lib/schema.js';
import type { SinkBatch } from '../lib/sink.js';
import type { PipelineName, RunConfig } from './config.js';
import { clientOptions, type PipelineResult, type RunContext } from './context.js';
import { sinceFor, untilFor } from './fitbit-common.js';
import type { PipelineState } from './state.js';
import type { StateStore } from './state/store.js';
import { perRun, planUsers, runPerUser, userState, WINDOW_FLAGS, type UserIo } from './user-streams.js';
import { ghEntryKey, type PgTokens } from './state/shared.js';

export { GOOGLE_HEALTH_PROVIDER };

/** Google's documented per-user limit: 300 requests a minute (§1.14). */
export const GH_PER_MINUTE = 300;

/**
 * A google-health entry during a run. Its output name is the entry's humanId, else (once the
 * identity is known) the legacy Fitbit id, else the healthUserId; before that, its place in the
 * file — so a user that fails before its identity is known is still named.
 */
export class GhRunUser {
  resolved: string | null = null;
  constructor(readonly entry: GoogleHealthUserEntry) {}
  get humanId(): string {
    return this.entry.humanId ?? this.resolved ?? `google-health entry ${this.entry.index}`;
  }
  /** Its name for the workers' leases: the same before and after the identity is known. */
  get leaseKey(): string {
    return ghEntryKey(this.entry);
  }
}

export async function loadGhUsers(ctx: RunContext): Promise<{ file: UsersFile; users: GhRunUser[] }> {
  const path = ctx.config.usersFile;
  if (!path) throw new EtlError('CONFIG', 'the Google Health pipelines need --users FILE');
  const file = await UsersFile.load(path);
  const entries = parseGoogleHealthEntries(file.entries(GOOGLE_HEALTH_PROVIDER), file.path);
  if (entries.length === 0) throw new EtlError('CONFIG', `users file ${path} has no google-health entries`);
  await ctx.shared?.tokens(GOOGLE_HEALTH_PROVIDER).load(entries.map(ghEntryKey));
  return { file, users: entries.map((e) => new GhRunUser(e)) };
}

/** The users file as the client's token store for one entry. */
export function tokenStore(file: UsersFile, index: number): TokenStore {
  return {
    current: () => {
      const f = file.fieldsOf(index);
      return { accessToken: typeof f['accessToken'] === 'string' ? f['accessToken'] : '', refreshToken: typeof f['refreshToken'] === 'string' ? f['refreshToken'] : '' };
    },
    rotate: (stale, refresh) => file.rotate(index, stale === '' ? undefined : stale, refresh),
  };
}

/** A user's tokens in the state database (PostgreSQL): rotated there, never in the users file. */
function pgTokenStore(tokens: PgTokens, key: string): TokenStore {
  return {
    current: () => tokens.tokens(key),
    rotate: (stale, refresh) => tokens.rotate(key, stale, refresh),
  };
}

// One GoogleHealthShared per run (a run's pipelines share its HttpStats).
const sharedByRun = new WeakMap<RunContext['stats'], GoogleHealthShared>();

export function ghShared(ctx: RunContext): GoogleHealthShared {
  return perRun(sharedByRun, ctx, () => new GoogleHealthShared(ctx.config.concurrency));
}

export function openGhSession(ctx: RunContext, file: UsersFile, user: GhRunUser, state: PipelineState, pipeline: PipelineName): GoogleHealthSession {
  const env = ctx.config.env;
  // The saved budget is found by the name the user has before its identity is known: the entry's
  // humanId, else its place in the file (saveBudget keeps it under both names).
  const saved: GhRateBudgetState | undefined = state.users[preIdentityName(user)]?.rateBudget;
  const rateLimit = ctx.tuning?.googleHealthRateLimit ?? GH_RATE_DEFAULTS;
  return new GoogleHealthSession(
    {
      baseUrl: env.googleHealthApiUrl,
      tokenUrl: env.googleOAuthTokenUrl,
      ...(env.googleClientId ? { clientId: env.googleClientId } : {}),
      ...(env.googleClientSecret ? { clientSecret: env.googleClientSecret } : {}),
      rateLimit,
      shared: ghShared(ctx),
      ...clientOptions(ctx, pipeline),
      // With the state in PostgreSQL, the budget is there, shared with every worker and run.
      ...(ctx.shared ? { sharedBudget: ctx.shared.googleHealthBudget(ghEntryKey(user.entry), rateLimit) } : {}),
    },
    ctx.shared ? pgTokenStore(ctx.shared.tokens(GOOGLE_HEALTH_PROVIDER), ghEntryKey(user.entry)) : tokenStore(file, user.entry.index),
    user.entry.index,
    user.humanId,
    saved,
  );
}


/** Identity (humanId) and time zone of a user: once per run, whichever pipeline asks first. */
export async function ghUserContext(session: GoogleHealthSession, user: GhRunUser): Promise<{ ctx: GhUserContext; zone: ZoneDays }> {
  const identity = await fetchIdentity(session);
  user.resolved = identity.legacyUserId ?? identity.healthUserId;
  session.label = user.humanId;
  let timeZone = user.entry.timezone;
  if (timeZone === undefined) {
    const settings = await fetchSettings(session);
    timeZone = settings.timeZone;
    if (timeZone === undefined || !isValidZone(timeZone)) {
      throw new EtlError('BAD_RESPONSE', `user ${user.humanId}: the settings' time zone ${JSON.stringify(timeZone ?? null)} is not an IANA zone; set "timezone" for this user in the users file`, { user: user.humanId });
    }
  }
  return { ctx: { humanId: user.humanId, userId: identity.healthUserId, timeZone }, zone: new ZoneDays(timeZone) };
}

/** The local dates to fetch for one stream, and the last one that is complete (before today in the zone). */
export function ghWindow(ctx: RunContext, watermark: string | undefined, zone: string): { since: string; until: string; lastComplete: string } {
  const until = untilFor(ctx, zone);
  return { since: sinceFor(ctx, watermark, until), until, lastComplete: addDays(todayIn(zone, ctx.seenAt), -1) };
}

/** What every Google Health pipeline's definition shares. */
export const GH_DEF = { provider: GOOGLE_HEALTH_PROVIDER, flags: WINDOW_FLAGS, check: (config: RunConfig): string | null => checkGhConfig(config) } as const;

/** What every Google Health pipeline needs: google-health entries and the OAuth client. */
export function checkGhConfig(config: RunConfig): string | null {
  if (!config.usersFile) return 'needs --users FILE (a users file with google-health entries)';
  if (!config.usersByProvider[GOOGLE_HEALTH_PROVIDER]) return `the users file ${config.usersFile} has no google-health entries ("provider": "google-health")`;
  if (!config.env.googleClientId || !config.env.googleClientSecret) return 'needs GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET in the environment (the Google Cloud OAuth client)';
  return null;
}

/**
 * Dry-run lines: per user, the window and the requests (identity, settings, and per stream its
 * windows, one page each at least), then the time the 300 requests/minute/user limit takes
 * with users side by side. Reads the users file and the state; sends nothing.
 */
export async function planGh(config: RunConfig, store: StateStore, pipeline: PipelineName, now: number, streams: readonly string[], windowDays: number): Promise<string[]> {
  const file = await UsersFile.load(config.usersFile as string);
  const entries = parseGoogleHealthEntries(file.entries(GOOGLE_HEALTH_PROVIDER), file.path);
  // identity (+ settings when the users file names no zone)
  const users = entries.map((e) => ({ name: e.humanId ?? `entry ${e.index}`, key: e.humanId, zone: e.timezone, fixedRequests: e.timezone === undefined ? 2 : 1 }));
  return planUsers(config, store, pipeline, now, users, (saved, until) => {
    let requests = 0;
    let first = until;
    for (const s of streams) {
      const since = planSince(config, saved[s], until);
      if (since < first) first = since;
      requests += windowCount(since, until, windowDays);
    }
    return { window: `${first} .. ${until} × ${streams.join(',')} (windows of ${windowDays} days)`, requests };
  }, { perUser: GH_PER_MINUTE, unit: 'minute' }, true);
}

/** since for a stream in a dry run (no identity, no settings: the saved watermark and the users file). */
export function planSince(config: RunConfig, mark: string | undefined, until: string): string {
  return config.since ?? (mark ? addDays(mark, 1 - config.lookbackDays) : addDays(until, -6));
}

/** Keeps a user's budget in the state, under its humanId once that is known. */
export function saveBudget(state: PipelineState, user: GhRunUser, budget: GhRateBudgetState): void {
  userState(state, preIdentityName(user)).rateBudget = budget;
  if (user.humanId !== preIdentityName(user)) userState(state, user.humanId).rateBudget = budget;
}

/** The name a user has before its identity is fetched (the state key its budget is read from). */
function preIdentityName(user: GhRunUser): string {
  return ghEntryKey(user.entry);
}

export { daysInclusive };

/** What a Google Health pipeline's stream of one user starts with. */
export interface GhUserRun {
  user: GhRunUser;
  session: GoogleHealthSession;
  userCtx: GhUserContext;
  zone: ZoneDays;
}

/**
 * A Google Health pipeline on the per-user skeleton: the google-health users, their state (with
 * the budgets the other Google Health pipelines saved), one session per user and its identity
 * and zone; then the pipeline's own batches. Each user's budget is saved at its checkpoint.
 */
export async function runGhPipeline<D extends Dataset>(ctx: RunContext, pipeline: PipelineName, dataset: D, batches: (run: GhUserRun, io: UserIo) => AsyncIterable<SinkBatch<D>>): Promise<PipelineResult> {
  const { file, users } = await loadGhUsers(ctx);
  const state = await loadGhState(ctx.state, ctx.config, pipeline, Date.now());
  const budgets = new Map<GhRunUser, () => GhRateBudgetState>();
  return runPerUser(ctx, {
    pipeline,
    dataset,
    users,
    state,
    async *batches(user, io) {
      const session = openGhSession(ctx, file, user, state, pipeline);
      budgets.set(user, () => session.budget.snapshot());
      const { ctx: userCtx, zone } = await ghUserContext(session, user);
      yield* batches({ user, session, userCtx, zone }, io);
    },
    onCheckpoint(user, st) {
      const budget = budgets.get(user);
      if (budget) saveBudget(st, user, budget());
    },
  });
}

const GH_PIPELINES = ['google-health-intraday', 'google-health-activities', 'google-health-daily'] as const;

/**
 * A Google Health pipeline's state, with each user's rate budget joined with what the other
 * Google Health pipelines saved: the 300 requests a minute are the user's, not a pipeline's,
 * and the API sends no headers to learn the rest from. Run back to back as separate commands,
 * the second pipeline would otherwise open with a full budget while the first one's requests
 * are still in the window. (Within one `run all` the pipelines share one budget per user.)
 */
export async function loadGhState(store: StateStore, config: RunConfig, pipeline: PipelineName, now: number): Promise<PipelineState> {
  const own = await store.load(pipeline);
  // One explicit file per pipeline: the others are not known. PostgreSQL keeps budgets in
  // their own rows, shared by every pipeline already.
  if (config.stateFile || store.kind !== 'file') return own;
  for (const other of GH_PIPELINES) {
    if (other === pipeline) continue;
    const theirs = await store.load(other);
    for (const [name, u] of Object.entries(theirs.users)) {
      if (!u.rateBudget) continue;
      const mine = userState(own, name);
      mine.rateBudget = mine.rateBudget ? joinBudgets(mine.rateBudget, u.rateBudget, now) : u.rateBudget;
    }
  }
  return own;
}

/** Two savings of one user's budget as one: what both used, counted in the later window. */
function joinBudgets(a: GhRateBudgetState, b: GhRateBudgetState, now: number): GhRateBudgetState {
  const live = [a, b].filter((x) => x.resetAt > now);
  if (live.length < 2) return live[0] ?? a;
  const limit = Math.max(a.limit, b.limit);
  const used = Math.min(limit, live.reduce((n, x) => n + Math.max(0, x.limit - x.remaining), 0));
  return { limit, remaining: limit - used, resetAt: Math.max(a.resetAt, b.resetAt) };
}
