// State in PostgreSQL (`--state postgres://…`), shared by every worker started with the same
// URL: watermarks per pipeline × user × stream (they only move forward), one rate budget row
// per provider × user taken under FOR UPDATE by every request of every worker (so N workers
// never exceed a user's budget; Google Health's budget is a window of tickets, one per request,
// taken under that row), tokens per user in their own table (rotated inside a
// transaction that holds the user's row; the new pair is committed before it is returned, and
// optionally encrypted at rest, see cipher.ts), and a record of each run.
import { createHash } from 'node:crypto';
// The pg client is loaded when a run uses PostgreSQL (open), not by every run (~16 MB of RSS).
import type pg from 'pg';
import { EtlError, errorMessage } from '../../lib/errors.js';
import type { Headers } from '../../lib/http.js';
import { RateBudget, type RateBudgetState, type RateLimitOptions } from '../../sources/fitbit/rate-limit.js';
import { IN_FLIGHT_POLL_MS, MARGIN_MS } from '../../sources/google-health/rate-limit.js';
import { TOKEN_KEY_VARIABLE, type TokenCipher } from './cipher.js';
import { migrate } from './migrations.js';
import { redactStateUrl } from './url.js';

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

export interface PgStateOptions {
  url: string;
  /** Encrypts tokens at rest (tokenCipherFromEnv); null stores them as they are. */
  cipher: TokenCipher | null;
  /** Connections at most (default 4: a worker's requests take the budget row one at a time per user). */
  poolSize?: number;
  /** How long a rotation waits for another worker's lock on the same user (default 120 s). */
  lockTimeoutMs?: number;
}

export type SeedResult = 'inserted' | 'kept' | 'replaced';

/** A sliding-window budget (Google Health's): `limit` requests per `windowMs` per user. */
export interface TicketOptions {
  limit: number;
  windowMs: number;
  /** The clock (epoch ms). Default: the database's, one clock for workers on any machine. */
  now?: () => number;
  /** How long a ticket may stay in flight before it counts as answered (default TICKET_FLIGHT_MS). */
  flightMs?: number;
}

/**
 * An attempt unanswered this long is taken as given up (its worker died): it then counts as
 * answered at that instant, until it leaves the window. Well above a request's 60 s timeout,
 * since a ticket is also held while its request waits for one of the run's request slots.
 */
export const TICKET_FLIGHT_MS = 10 * 60_000;

function seedHash(pair: TokenPair): string {
  return createHash('sha256').update(pair.accessToken).update('\n').update(pair.refreshToken).digest('hex');
}

export class PgState {
  readonly pool: pg.Pool;
  readonly location: string;
  private readonly cipher: TokenCipher | null;
  private readonly lockTimeoutMs: number;
  private readonly inflight = new Map<string, Promise<TokenPair>>();
  /** Connections that have our 'error' listener (checkout). */
  private readonly watched = new WeakSet<pg.PoolClient>();
  /** Set when the pool loses a connection it held idle (the server went away). */
  lost: Error | null = null;
  private readonly lostListeners: Array<(err: Error) => void> = [];

  private constructor(options: PgStateOptions, Pool: typeof pg.Pool) {
    this.location = redactStateUrl(options.url);
    this.cipher = options.cipher;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 120_000;
    this.pool = new Pool({ connectionString: options.url, max: options.poolSize ?? 4, connectionTimeoutMillis: 10_000, application_name: 'wearable-etl' });
    // An idle connection that breaks is reported here; unhandled, it would end the process.
    this.pool.on('error', (err) => {
      this.lost ??= err;
      for (const listener of this.lostListeners) listener(err);
    });
  }

  /** Connects and brings the schema up to date (migrations.ts). */
  static async open(options: PgStateOptions): Promise<PgState> {
    const { default: client } = await import('pg');
    const state = new PgState(options, client.Pool);
    try {
      await migrate(state.pool);
    } catch (err) {
      await state.pool.end().catch(() => undefined);
      if (err instanceof EtlError) throw err;
      throw new EtlError('STATE', `cannot use the state database ${state.location}: ${errorMessage(err)}`, {}, { cause: err });
    }
    return state;
  }

  onLost(listener: (err: Error) => void): void {
    this.lostListeners.push(listener);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * A connection of the pool for several statements. A connection that breaks while checked out
   * emits 'error' with nobody listening (the pool listens only to idle ones), which would end the
   * process: here the break is noted, and the statement in flight fails with it.
   */
  private async checkout(): Promise<pg.PoolClient> {
    const client = await this.pool.connect();
    if (!this.watched.has(client)) {
      this.watched.add(client);
      client.on('error', (err: Error) => {
        this.lost ??= err;
      });
    }
    return client;
  }

  /** One transaction on one connection; rolled back when `fn` throws. */
  async tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.checkout();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Runs `fn` while holding the advisory lock named `key`, alone among every connection to this
   * database. The lock goes with the transaction: at its end, or when the connection breaks.
   */
  async exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.tx(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key]);
      return fn();
    });
  }

  // --- watermarks ---------------------------------------------------------------------------

  /** Per user: stream → watermark, for one pipeline. */
  async watermarks(pipeline: string): Promise<Map<string, Record<string, string>>> {
    const { rows } = await this.pool.query<{ user_key: string; stream: string; value: string }>(
      'SELECT user_key, stream, value FROM watermarks WHERE pipeline = $1',
      [pipeline],
    );
    const out = new Map<string, Record<string, string>>();
    for (const r of rows) {
      let streams = out.get(r.user_key);
      if (!streams) out.set(r.user_key, (streams = {}));
      streams[r.stream] = r.value;
    }
    return out;
  }

  /**
   * Moves watermarks forward in one statement; a value older than the stored one is ignored,
   * so workers that commit their own users in any order never move one back. Watermarks are
   * dates or ISO instants of one format per stream, which compare as text.
   */
  async commitWatermarks(pipeline: string, progress: Iterable<readonly [string, Record<string, string>]>): Promise<void> {
    const users: string[] = [];
    const streams: string[] = [];
    const values: string[] = [];
    for (const [user, byStream] of progress) {
      for (const [stream, value] of Object.entries(byStream)) {
        users.push(user);
        streams.push(stream);
        values.push(value);
      }
    }
    if (users.length === 0) return;
    await this.pool.query(
      `INSERT INTO watermarks (pipeline, user_key, stream, value)
       SELECT $1, u, s, v FROM unnest($2::text[], $3::text[], $4::text[]) AS t(u, s, v)
       ON CONFLICT (pipeline, user_key, stream) DO UPDATE
         SET value = CASE
               -- A date or an instant only moves forward (workers save in any order); any other
               -- value (a Takeout archive's fingerprint) is not ordered: the newest save wins.
               WHEN watermarks.value ~ '^\\d{4}-\\d{2}-\\d{2}' AND EXCLUDED.value ~ '^\\d{4}-\\d{2}-\\d{2}' THEN GREATEST(watermarks.value, EXCLUDED.value)
               ELSE EXCLUDED.value
             END,
             updated_at = now()`,
      [pipeline, users, streams, values],
    );
  }

  // --- rate budgets ---------------------------------------------------------------------------

  /**
   * Runs `step` on the user's budget row locked with SELECT … FOR UPDATE and writes what it
   * returns before the lock is released: every request of every worker takes from one budget,
   * one at a time.
   */
  private async budgetTx<T>(
    provider: string,
    user: string,
    options: RateLimitOptions,
    step: (saved: RateBudgetState, notBefore: number) => { state: RateBudgetState; notBefore: number; result: T },
  ): Promise<T> {
    return this.tx(async (client) => {
      const row = await lockBudgetRow(client, provider, user, options.limit);
      const out = step({ limit: row.budget_limit, remaining: row.remaining, resetAt: Number(row.reset_at) }, Number(row.not_before));
      await client.query(
        'UPDATE rate_budgets SET budget_limit = $3, remaining = $4, reset_at = $5, not_before = $6, updated_at = now() WHERE provider = $1 AND user_key = $2',
        [provider, user, out.state.limit, out.state.remaining, out.state.resetAt, Math.round(out.notBefore)],
      );
      return out.result;
    });
  }

  /**
   * Takes one request from the user's shared budget and returns how long to wait before sending
   * it. The rules are RateBudget's (the file state's), applied at the later of now and the
   * instant the previous taker will send: a taker that must wait for the next window holds that
   * window's start, and the takers after it line up behind it instead of spending the refilled
   * budget early. So no window ever sees more than the limit, however many workers take.
   */
  async reserve(provider: string, user: string, options: RateLimitOptions): Promise<number> {
    const now = (options.now ?? Date.now)();
    return this.budgetTx(provider, user, options, (saved, notBefore) => {
      const start = Math.max(now, notBefore);
      const budget = new RateBudget({ ...options, now: () => start }, saved);
      const wait = budget.reserve();
      return { state: budget.snapshot(), notBefore: start + wait, result: start - now + wait };
    });
  }

  /** Reads a response's rate-limit headers into the shared budget. */
  async observe(provider: string, user: string, options: RateLimitOptions, headers: Headers): Promise<void> {
    await this.budgetTx(provider, user, options, (saved, notBefore) => {
      const budget = new RateBudget(options, saved);
      budget.observe(headers);
      return { state: budget.snapshot(), notBefore, result: undefined };
    });
  }

  /** After a 429: nobody sends for this user until the reset. Returns the ms to wait. */
  async exhausted(provider: string, user: string, options: RateLimitOptions, headers: Headers): Promise<number> {
    const now = (options.now ?? Date.now)();
    return this.budgetTx(provider, user, options, (saved, notBefore) => {
      const budget = new RateBudget(options, saved);
      const wait = budget.exhausted(headers);
      return { state: budget.snapshot(), notBefore: Math.max(notBefore, now + wait), result: Math.max(wait, notBefore - now) };
    });
  }

  // --- sliding-window budgets (Google Health) --------------------------------------------------

  /**
   * Runs `step` holding the user's budget row (FOR UPDATE), at the instant `now` read once the
   * lock is held: every check and change of the user's tickets, in every worker, one at a time.
   */
  private async ticketTx<T>(provider: string, user: string, options: TicketOptions, step: (client: pg.PoolClient, now: number, notBefore: number) => Promise<T>): Promise<T> {
    return this.tx(async (client) => {
      const row = await lockBudgetRow(client, provider, user, options.limit);
      const now = options.now ? Math.round(options.now()) : await databaseNow(client);
      return step(client, now, Number(row.not_before));
    });
  }

  /**
   * GhRateBudget's check and reservation as one step across workers: a request may go when
   * fewer than `limit` of the user's requests count in the window before it and no pause holds
   * the user. It then gets a ticket that counts as in flight (known to be answered no earlier
   * than now) until settled; else the answer is how long to wait before asking again. Tickets
   * that have left the window are deleted here.
   */
  async takeTicket(provider: string, user: string, options: TicketOptions): Promise<{ ticket: string } | { waitMs: number }> {
    const { limit, windowMs } = options;
    return this.ticketTx(provider, user, options, async (client, now, notBefore) => {
      await client.query('DELETE FROM rate_tickets WHERE provider = $1 AND user_key = $2 AND counted_from <= $3', [provider, user, now - windowMs]);
      // Known: answered, or in flight past the instant it had to be answered by.
      const { rows } = await client.query<{ known: string; flying: string }>(
        `SELECT count(*) FILTER (WHERE settled OR counted_from <= $3) AS known, count(*) FILTER (WHERE NOT settled AND counted_from > $3) AS flying
         FROM rate_tickets WHERE provider = $1 AND user_key = $2`,
        [provider, user, now],
      );
      const known = Number(rows[0]!.known);
      const flying = Number(rows[0]!.flying);
      let at = Math.max(now, notBefore);
      if (known + flying >= limit) {
        // The request `limit` places back must have left the window; in flight, its time is not
        // known yet (it comes after every known one), so look again shortly.
        const index = known + flying - limit;
        if (index < known) {
          const oldest = await client.query<{ counted_from: string }>(
            'SELECT counted_from FROM rate_tickets WHERE provider = $1 AND user_key = $2 AND (settled OR counted_from <= $3) ORDER BY counted_from OFFSET $4 LIMIT 1',
            [provider, user, now, index],
          );
          at = Math.max(at, Number(oldest.rows[0]!.counted_from) + windowMs + MARGIN_MS);
        } else at = Math.max(at, now + IN_FLIGHT_POLL_MS);
      }
      if (at > now) return { waitMs: at - now };
      const { rows: ticket } = await client.query<{ id: string }>('INSERT INTO rate_tickets (provider, user_key, counted_from) VALUES ($1, $2, $3) RETURNING id', [
        provider,
        user,
        now + (options.flightMs ?? TICKET_FLIGHT_MS),
      ]);
      return { ticket: ticket[0]!.id };
    });
  }

  /** The ticket's answer came (or its attempt failed): it counts from now. */
  async settleTicket(provider: string, user: string, ticket: string, options: TicketOptions): Promise<void> {
    await this.ticketTx(provider, user, options, async (client, now) => {
      const { rowCount } = await client.query('UPDATE rate_tickets SET counted_from = $2, settled = true WHERE id = $1', [ticket, now]);
      // Deleted as given up and out of the window (slower than flightMs): it counts again, from now.
      if (rowCount === 0) await client.query('INSERT INTO rate_tickets (provider, user_key, counted_from, settled) VALUES ($1, $2, $3, true)', [provider, user, now]);
    });
  }

  /** After a 429: no worker takes a ticket for this user for `waitMs`, or longer if already paused. Returns the ms until the pause ends. */
  async pauseUser(provider: string, user: string, waitMs: number, options: TicketOptions): Promise<number> {
    return this.ticketTx(provider, user, options, async (client, now, notBefore) => {
      const until = Math.max(notBefore, now + Math.round(waitMs));
      await client.query('UPDATE rate_budgets SET not_before = $3, updated_at = now() WHERE provider = $1 AND user_key = $2', [provider, user, until]);
      return until - now;
    });
  }

  /** The user's tickets, oldest first (for tests and inspection). */
  async tickets(provider: string, user: string): Promise<Array<{ countedFrom: number; settled: boolean }>> {
    const { rows } = await this.pool.query<{ counted_from: string; settled: boolean }>(
      'SELECT counted_from, settled FROM rate_tickets WHERE provider = $1 AND user_key = $2 ORDER BY counted_from, id',
      [provider, user],
    );
    return rows.map((r) => ({ countedFrom: Number(r.counted_from), settled: r.settled }));
  }

  async budget(provider: string, user: string): Promise<RateBudgetState | null> {
    const { rows } = await this.pool.query<{ budget_limit: number; remaining: number; reset_at: string }>(
      'SELECT budget_limit, remaining, reset_at FROM rate_budgets WHERE provider = $1 AND user_key = $2',
      [provider, user],
    );
    const r = rows[0];
    return r ? { limit: r.budget_limit, remaining: r.remaining, resetAt: Number(r.reset_at) } : null;
  }

  // --- tokens -----------------------------------------------------------------------------

  private seal(value: string, provider: string, user: string, column: string): string {
    return this.cipher ? this.cipher.encrypt(value, `${provider}/${user}/${column}`) : value;
  }

  private open(value: string, encrypted: boolean, provider: string, user: string, column: string): string {
    if (!encrypted) return value;
    if (!this.cipher) throw new EtlError('CONFIG', `the tokens of ${provider} user ${user} are encrypted in the state database; set ${TOKEN_KEY_VARIABLE} to the key they were encrypted with`, { user });
    return this.cipher.decrypt(value, `${provider}/${user}/${column}`);
  }

  private pairOf(row: { access_token: string; refresh_token: string; encrypted: boolean }, provider: string, user: string): TokenPair {
    return {
      accessToken: this.open(row.access_token, row.encrypted, provider, user, 'access_token'),
      refreshToken: this.open(row.refresh_token, row.encrypted, provider, user, 'refresh_token'),
    };
  }

  /**
   * Adds a user's pair from the users file. A user already in the database keeps its (possibly
   * rotated) pair, unless the file's pair changed since it was last read: that is a re-consent,
   * and the file's new pair replaces it. A stored plain pair is encrypted once a key is set.
   */
  async seedTokens(provider: string, user: string, pair: TokenPair): Promise<SeedResult> {
    const hash = seedHash(pair);
    return this.tx(async (client) => {
      const write = async (p: TokenPair, sql: string): Promise<number> => {
        const r = await client.query(sql, [provider, user, this.seal(p.accessToken, provider, user, 'access_token'), this.seal(p.refreshToken, provider, user, 'refresh_token'), this.cipher !== null, hash]);
        return r.rowCount ?? 0;
      };
      // Workers starting together seed the same users: the insert settles who is first (a
      // SELECT … FOR UPDATE locks no row that does not exist yet).
      const inserted = await write(pair, 'INSERT INTO tokens (provider, user_key, access_token, refresh_token, encrypted, seed_hash) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING');
      if (inserted > 0) return 'inserted';
      const { rows } = await client.query<{ access_token: string; refresh_token: string; encrypted: boolean; seed_hash: string }>(
        'SELECT access_token, refresh_token, encrypted, seed_hash FROM tokens WHERE provider = $1 AND user_key = $2 FOR UPDATE',
        [provider, user],
      );
      const row = rows[0]!;
      const update = 'UPDATE tokens SET access_token = $3, refresh_token = $4, encrypted = $5, seed_hash = $6, updated_at = now() WHERE provider = $1 AND user_key = $2';
      if (row.seed_hash !== hash) {
        await write(pair, update);
        return 'replaced';
      }
      if (this.cipher && !row.encrypted) await write(this.pairOf(row, provider, user), update);
      return 'kept';
    });
  }

  async tokens(provider: string, user: string): Promise<TokenPair | null> {
    const { rows } = await this.pool.query<{ access_token: string; refresh_token: string; encrypted: boolean }>(
      'SELECT access_token, refresh_token, encrypted FROM tokens WHERE provider = $1 AND user_key = $2',
      [provider, user],
    );
    return rows[0] ? this.pairOf(rows[0], provider, user) : null;
  }

  /**
   * Rotates a user's tokens: `refresh` spends the refresh token it is given and returns the new
   * pair. Concurrent callers in this process share one rotation; across processes the user's
   * row lock makes them take turns, and one that finds the pair already rotated (the access
   * token is no longer the stale one) adopts it instead of spending a token twice.
   */
  rotate(provider: string, user: string, staleAccessToken: string, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair> {
    const key = `${provider}\0${user}`;
    const running = this.inflight.get(key);
    if (running) return running;
    const job = this.rotateLocked(provider, user, staleAccessToken, refresh).finally(() => this.inflight.delete(key));
    this.inflight.set(key, job);
    return job;
  }

  private async rotateLocked(provider: string, user: string, stale: string, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair> {
    const client = await this.checkout();
    let broken = false;
    let spent = false;
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(this.lockTimeoutMs))}`);
      const { rows } = await client.query<{ access_token: string; refresh_token: string; encrypted: boolean }>(
        'SELECT access_token, refresh_token, encrypted FROM tokens WHERE provider = $1 AND user_key = $2 FOR UPDATE',
        [provider, user],
      );
      if (!rows[0]) throw new EtlError('CONFIG', `${provider} user ${user} has no tokens in the state database; add the user to the users file`, { user });
      const current = this.pairOf(rows[0], provider, user);
      if (current.accessToken !== stale) {
        await client.query('COMMIT');
        return current;
      }
      const fresh = await refresh(current.refreshToken);
      spent = true;
      await client.query('UPDATE tokens SET access_token = $3, refresh_token = $4, encrypted = $5, rotations = rotations + 1, updated_at = now() WHERE provider = $1 AND user_key = $2', [
        provider,
        user,
        this.seal(fresh.accessToken, provider, user, 'access_token'),
        this.seal(fresh.refreshToken, provider, user, 'refresh_token'),
        this.cipher !== null,
      ]);
      await client.query('COMMIT');
      return fresh;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      if (spent) {
        throw new EtlError(
          'AUTH_EXPIRED',
          `${provider} user ${user}: the token was refreshed but the new pair could not be saved in the state database (${errorMessage(err)}); the old refresh token is spent, so re-authorise this user`,
          { user },
          { cause: err },
        );
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  // --- runs -------------------------------------------------------------------------------

  async startRun(runId: string, worker: string): Promise<void> {
    await this.pool.query('INSERT INTO runs (run_id, worker) VALUES ($1, $2)', [runId, worker]);
  }

  async finishRun(runId: string, exitCode: number, summary: unknown): Promise<void> {
    await this.pool.query('UPDATE runs SET finished_at = now(), exit_code = $2, summary = $3 WHERE run_id = $1', [runId, exitCode, JSON.stringify(summary)]);
  }
}

interface BudgetRow {
  budget_limit: number;
  remaining: number;
  reset_at: string;
  not_before: string;
}

/** The user's rate_budgets row, created when missing, locked (FOR UPDATE) until the transaction ends. */
async function lockBudgetRow(client: pg.PoolClient, provider: string, user: string, limit: number): Promise<BudgetRow> {
  await client.query(
    `INSERT INTO rate_budgets (provider, user_key, budget_limit, remaining, reset_at) VALUES ($1, $2, $3, $3, 0)
     ON CONFLICT (provider, user_key) DO NOTHING`,
    [provider, user, limit],
  );
  const { rows } = await client.query<BudgetRow>(
    'SELECT budget_limit, remaining, reset_at, not_before FROM rate_budgets WHERE provider = $1 AND user_key = $2 FOR UPDATE',
    [provider, user],
  );
  return rows[0]!;
}

/** The database's clock in epoch ms, read now (not at the start of the transaction). */
async function databaseNow(client: pg.PoolClient): Promise<number> {
  const { rows } = await client.query<{ now: number }>('SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now');
  return rows[0]!.now;
}
