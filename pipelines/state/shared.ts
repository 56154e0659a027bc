// What the workers of a run share when the state is in PostgreSQL (`--state postgres://…`):
// the users' tokens (seeded from the users file, rotated under the user's row lock, never
// written back to the file), the rate budgets (one row per user, every request of every worker
// takes from it; Google Health's with a window of tickets under that row) and the leases that split the users between the workers. Every
// database failure here surfaces as one EtlError STATE that names the database, never a token.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import type { ManifestLock } from '../../sinks/index.js';
import { isBucketOut } from '../../sinks/output.js';
import { EtlError, errorMessage } from '../../lib/errors.js';
import type { Headers } from '../../lib/http.js';
import { UsersFile } from '../../lib/users-file.js';
import type { RateLimitOptions, SharedRateBudget } from '../../sources/fitbit/rate-limit.js';
import { UsersFile as FitbitUsers } from '../../sources/fitbit/users.js';
import type { GhRateLimitOptions, GhSharedBudget } from '../../sources/google-health/rate-limit.js';
import { GOOGLE_HEALTH_PROVIDER, parseGoogleHealthEntries, type GoogleHealthUserEntry } from '../../sources/google-health/users.js';
import type { PipelineName, RunConfig } from '../config.js';
import type { TokenCipher } from './cipher.js';
import { UserLeases, type LeaseOptions } from './leases.js';
import { PgState, type TokenPair } from './pg.js';

export const FITBIT = 'fitbit';

/** A worker's name in leases and run records: machine, process, run. */
export function workerName(runId: string): string {
  return `${hostname()}/${process.pid}/${runId}`;
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The name a google-health entry has before its identity is fetched (its tokens' and lease's key). */
export function ghEntryKey(entry: Pick<GoogleHealthUserEntry, 'humanId' | 'index'>): string {
  return entry.humanId ?? `google-health entry ${entry.index}`;
}

/** A database failure as the one line a run reports: the database (no password) and the cause. */
export function stateLost(location: string, err: unknown): EtlError {
  if (err instanceof EtlError) return err;
  return new EtlError('STATE', `lost the state database ${location}: ${errorMessage(err)}`, {}, { cause: err });
}

/**
 * One provider's tokens in the state database, with this process's copy of each user's pair
 * (the sessions read it synchronously before every request). A copy made stale by another
 * worker's rotation costs one 401: the rotation then finds the newer pair and adopts it.
 */
export class PgTokens {
  private readonly pairs = new Map<string, TokenPair>();
  constructor(
    private readonly db: PgState,
    readonly provider: string,
  ) {}

  /** Reads the stored pairs of these users (seeded from the users file at the start). */
  async load(users: readonly string[]): Promise<void> {
    for (const user of users) {
      const pair = await this.db.tokens(this.provider, user).catch((err: unknown) => {
        throw stateLost(this.db.location, err);
      });
      if (!pair) throw new EtlError('CONFIG', `${this.provider} user ${user} has no tokens in the state database ${this.db.location}`, { user });
      this.pairs.set(user, pair);
    }
  }

  tokens(user: string): TokenPair {
    const pair = this.pairs.get(user);
    if (!pair) throw new EtlError('CONFIG', `${this.provider} user ${user}: tokens not loaded from the state database`, { user });
    return pair;
  }

  async rotate(user: string, staleAccessToken: string, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair> {
    let pair: TokenPair;
    try {
      pair = await this.db.rotate(this.provider, user, staleAccessToken, refresh);
    } catch (err) {
      // A failure of the refresh itself (its own EtlError) passes as it is.
      throw err instanceof EtlError ? err : stateLost(this.db.location, err);
    }
    this.pairs.set(user, pair);
    return pair;
  }
}

export class SharedState {
  readonly leases: UserLeases;
  private readonly tokenStores = new Map<string, PgTokens>();

  private constructor(
    readonly db: PgState,
    worker: string,
    leaseOptions: LeaseOptions,
  ) {
    this.leases = new UserLeases(db, worker, leaseOptions);
  }

  /**
   * Connects (migrating the schema) and adds the users file's pairs: a user new to the database
   * gets the file's pair; a user already there keeps its rotated pair unless the file's changed
   * (a re-consent). The file is only read.
   */
  static async open(config: RunConfig, options: { url: string; cipher: TokenCipher | null; worker: string; leases?: LeaseOptions }): Promise<SharedState> {
    const db = await PgState.open({ url: options.url, cipher: options.cipher });
    const shared = new SharedState(db, options.worker, options.leases ?? {});
    try {
      if (config.usersFile) await shared.seed(await UsersFile.load(config.usersFile));
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err instanceof EtlError ? err : stateLost(db.location, err);
    }
    return shared;
  }

  private async seed(file: UsersFile): Promise<void> {
    if (file.entries(FITBIT).length > 0) {
      for (const u of FitbitUsers.of(file).users()) await this.db.seedTokens(FITBIT, u.humanId, { accessToken: u.accessToken, refreshToken: u.refreshToken });
    }
    for (const e of parseGoogleHealthEntries(file.entries(GOOGLE_HEALTH_PROVIDER), file.path)) {
      await this.db.seedTokens(GOOGLE_HEALTH_PROVIDER, ghEntryKey(e), { accessToken: e.accessToken ?? '', refreshToken: e.refreshToken });
    }
  }

  tokens(provider: string): PgTokens {
    let store = this.tokenStores.get(provider);
    if (!store) this.tokenStores.set(provider, (store = new PgTokens(this.db, provider)));
    return store;
  }

  /** A database failure of a budget step as the run's one line (stateLost). */
  private guard<T>(p: Promise<T>): Promise<T> {
    return p.catch((err: unknown) => {
      throw stateLost(this.db.location, err);
    });
  }

  /** A Fitbit user's budget row, taken by every request of every worker. */
  fitbitBudget(user: string, options: RateLimitOptions): SharedRateBudget {
    const { db } = this;
    const guard = <T>(p: Promise<T>): Promise<T> => this.guard(p);
    return {
      reserve: () => guard(db.reserve(FITBIT, user, options)),
      observe: (headers: Headers) => guard(db.observe(FITBIT, user, options, headers)),
      exhausted: (headers: Headers) => guard(db.exhausted(FITBIT, user, options, headers)),
    };
  }

  /**
   * A Google Health user's budget (`user`: its lease key, the same before and after its identity
   * is known): a window of tickets taken by every request of every worker.
   */
  googleHealthBudget(user: string, options: GhRateLimitOptions): GhSharedBudget {
    const { db } = this;
    const guard = <T>(p: Promise<T>): Promise<T> => this.guard(p);
    return {
      take: () => guard(db.takeTicket(GOOGLE_HEALTH_PROVIDER, user, options)),
      settle: (ticket: string) => guard(db.settleTicket(GOOGLE_HEALTH_PROVIDER, user, ticket, options)),
      pause: (waitMs: number) => guard(db.pauseUser(GOOGLE_HEALTH_PROVIDER, user, waitMs, options)),
    };
  }

  /**
   * The lock of a dataset's manifest in this output, held by one worker at a time while it reads,
   * merges and replaces the manifest.
   */
  manifestLock(outDir: string): ManifestLock {
    const where = isBucketOut(outDir) ? outDir : path.resolve(outDir);
    return async (dataset, write) => {
      await this.db.exclusive(`wearable-etl manifest ${where} ${dataset}`, write).catch((err: unknown) => {
        throw stateLost(this.db.location, err);
      });
    };
  }

  /**
   * The round a pipeline's workers meet in: the same pipeline, window, options and users make
   * the same key, so processes started with the same command split the same users.
   */
  workKey(pipeline: PipelineName, config: RunConfig, users: readonly string[], day: string): string {
    const what = JSON.stringify([config.since, config.until ?? `yesterday as of ${day}`, config.resources, config.types, config.detail, config.lookbackDays]);
    const who = createHash('sha256').update([...users].sort().join('\n')).digest('hex').slice(0, 16);
    return `${pipeline}|${what}|users:${who}`;
  }

  /** Records this worker's run (the `runs` table): who it is, so a dead one can be recognized. */
  async startRun(runId: string): Promise<void> {
    await this.db.startRun(runId, this.leases.worker).catch((err: unknown) => {
      throw stateLost(this.db.location, err);
    });
  }

  async finishRun(runId: string, exitCode: number, summary: unknown): Promise<void> {
    await this.db.finishRun(runId, exitCode, summary);
  }

  /**
   * Of these runs (other workers writing to the same output), the ones known to be over: finished,
   * or unfinished with their process gone from this machine. A run on another machine that did
   * not finish cannot be told from a live one, and is left alone.
   */
  async deadRuns(runIds: readonly string[]): Promise<Set<string>> {
    if (runIds.length === 0) return new Set();
    const { rows } = await this.db.pool.query<{ run_id: string; worker: string; finished: boolean }>(
      'SELECT run_id, worker, finished_at IS NOT NULL AS finished FROM runs WHERE run_id = ANY($1::text[])',
      [runIds],
    );
    const dead = new Set<string>();
    for (const r of rows) {
      const [host, pid] = r.worker.split('/');
      if (r.finished || (host === hostname() && !processAlive(Number(pid)))) dead.add(r.run_id);
    }
    return dead;
  }

  async close(): Promise<void> {
    await this.db.close().catch(() => undefined);
  }
}
