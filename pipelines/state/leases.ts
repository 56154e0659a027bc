// Several workers splitting the users through PostgreSQL: row leases. Workers started for the
// same work (the same `workKey`: pipelines, users file, window) join one open round; each user
// of the round is one row, claimed with FOR UPDATE SKIP LOCKED (two claimers never get the
// same row and never wait for each other), held for `ttlMs` and renewed while worked on,
// marked done when finished, released on a graceful stop. A lease that is not renewed (its
// worker died) expires and is claimed again by a worker still polling, or by the next run that
// joins the round. Expiry times come from the database's clock, not the workers'.
//
// Why leases and not pg-boss or graphile-worker: the unit of work is a user, known up front,
// and what must be shared (budgets, tokens, watermarks) already lives in our own tables; a
// lease row per user is two statements, needs no extra schema owner, no background
// maintenance process, no second dependency with its own migrations, and keeps "at most one
// worker per user" checkable in one table.
import { EtlError, errorMessage } from '../../lib/errors.js';
import { sleep } from '../../lib/http.js';
import type { PgState } from './pg.js';

export interface LeaseOptions {
  /** A lease not renewed for this long is free again (default 30 s). */
  ttlMs?: number;
  /** How often held leases are renewed (default ttl / 3). */
  renewEveryMs?: number;
  /** How often a worker with nothing to claim looks again while others hold leases (default 5 s). */
  pollMs?: number;
}

export interface RoundProgress {
  /** Not done, not leased (or the lease expired). */
  free: number;
  /** Held by a live lease. */
  leased: number;
  done: number;
  failed: number;
}

interface Held {
  round: number;
  user: string;
  lost: AbortController;
}

export class UserLeases {
  readonly worker: string;
  readonly ttlMs: number;
  readonly renewEveryMs: number;
  readonly pollMs: number;
  private readonly state: PgState;
  private readonly held = new Map<string, Held>();
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;

  constructor(state: PgState, worker: string, options: LeaseOptions = {}) {
    this.state = state;
    this.worker = worker;
    this.ttlMs = options.ttlMs ?? 30_000;
    this.renewEveryMs = options.renewEveryMs ?? Math.floor(this.ttlMs / 3);
    this.pollMs = options.pollMs ?? 5_000;
  }

  /** The state database, password removed (for messages). */
  get location(): string {
    return this.state.location;
  }

  private static id(round: number, user: string): string {
    return `${round}\0${user}`;
  }

  /** Joins the open round for `workKey` (opening one if there is none) and adds its users. */
  async join(workKey: string, users: readonly string[]): Promise<number> {
    return this.state.tx(async (client) => {
      // The partial unique index allows one open round per key: concurrent joiners meet there.
      await client.query('INSERT INTO rounds (work_key) VALUES ($1) ON CONFLICT (work_key) WHERE closed_at IS NULL DO NOTHING', [workKey]);
      const { rows } = await client.query<{ id: string }>('SELECT id FROM rounds WHERE work_key = $1 AND closed_at IS NULL', [workKey]);
      const round = Number(rows[0]!.id);
      await client.query('INSERT INTO leases (round_id, user_key) SELECT $1, u FROM unnest($2::text[]) AS u ON CONFLICT DO NOTHING', [round, users]);
      return round;
    });
  }

  /** Claims up to `max` users that are neither done nor leased (expired leases included). */
  async claim(round: number, max: number): Promise<Array<{ user: string; lost: AbortSignal }>> {
    if (max <= 0) return [];
    const { rows } = await this.state.pool.query<{ user_key: string }>(
      `WITH free AS (
         SELECT round_id, user_key FROM leases
         WHERE round_id = $1 AND done_at IS NULL AND (holder IS NULL OR expires_at < now())
         ORDER BY user_key
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       )
       UPDATE leases l SET holder = $3, expires_at = now() + make_interval(secs => $4::double precision / 1000), claims = claims + 1
       FROM free WHERE l.round_id = free.round_id AND l.user_key = free.user_key
       RETURNING l.user_key`,
      [round, max, this.worker, this.ttlMs],
    );
    return rows.map((r) => {
      const held: Held = { round, user: r.user_key, lost: new AbortController() };
      this.held.set(UserLeases.id(round, r.user_key), held);
      return { user: r.user_key, lost: held.lost.signal };
    });
  }

  /**
   * Extends every lease this worker holds. A lease another worker took over (ours expired) is
   * lost: its signal fires and it is forgotten. If the database cannot be reached, every lease
   * is lost (another worker will take the users over once they expire).
   */
  async renew(): Promise<string[]> {
    if (this.held.size === 0) return [];
    let kept: Set<string>;
    try {
      const { rows } = await this.state.pool.query<{ round_id: string; user_key: string }>(
        `UPDATE leases SET expires_at = now() + make_interval(secs => $2::double precision / 1000)
         WHERE holder = $1 AND done_at IS NULL RETURNING round_id, user_key`,
        [this.worker, this.ttlMs],
      );
      kept = new Set(rows.map((r) => UserLeases.id(Number(r.round_id), r.user_key)));
    } catch (err) {
      const reason = new EtlError('STATE', `lost the state database ${this.state.location}: ${errorMessage(err)}`, {}, { cause: err });
      return this.loseAll(reason);
    }
    const lost: string[] = [];
    for (const [id, h] of this.held) {
      if (kept.has(id)) continue;
      this.held.delete(id);
      h.lost.abort(new EtlError('STATE', `user ${h.user}: the lease was taken over by another worker`, { user: h.user }));
      lost.push(h.user);
    }
    return lost;
  }

  private loseAll(reason: Error): string[] {
    const lost = [...this.held.values()];
    this.held.clear();
    for (const h of lost) h.lost.abort(reason);
    return lost.map((h) => h.user);
  }

  /** Renews every `renewEveryMs` until stopRenewing(); `onLost` hears of leases lost. */
  startRenewing(onLost: (users: string[]) => void = () => undefined): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.renewing) return;
      this.renewing = this.renew()
        .then((lost) => {
          if (lost.length > 0) onLost(lost);
        })
        .finally(() => {
          this.renewing = null;
        });
    }, this.renewEveryMs);
    this.timer.unref();
  }

  async stopRenewing(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.renewing;
  }

  /** Marks a claimed user done (failure: the reason it failed). False if the lease was lost. */
  async finish(round: number, user: string, failure?: string): Promise<boolean> {
    this.held.delete(UserLeases.id(round, user));
    const { rowCount } = await this.state.pool.query(
      'UPDATE leases SET done_at = now(), failure = $4, holder = NULL, expires_at = NULL WHERE round_id = $1 AND user_key = $2 AND holder = $3 AND done_at IS NULL',
      [round, user, this.worker, failure ?? null],
    );
    return (rowCount ?? 0) > 0;
  }

  /** Gives a claimed user back at once (a graceful stop): another worker may claim it now. */
  async release(round: number, user: string): Promise<void> {
    this.held.delete(UserLeases.id(round, user));
    await this.state.pool.query('UPDATE leases SET holder = NULL, expires_at = NULL WHERE round_id = $1 AND user_key = $2 AND holder = $3 AND done_at IS NULL', [
      round,
      user,
      this.worker,
    ]);
  }

  async progress(round: number): Promise<RoundProgress> {
    const { rows } = await this.state.pool.query<{ free: string; leased: string; done: string; failed: string }>(
      `SELECT count(*) FILTER (WHERE done_at IS NULL AND (holder IS NULL OR expires_at < now())) AS free,
              count(*) FILTER (WHERE done_at IS NULL AND holder IS NOT NULL AND expires_at >= now()) AS leased,
              count(*) FILTER (WHERE done_at IS NOT NULL) AS done,
              count(*) FILTER (WHERE failure IS NOT NULL) AS failed
       FROM leases WHERE round_id = $1`,
      [round],
    );
    const r = rows[0]!;
    return { free: Number(r.free), leased: Number(r.leased), done: Number(r.done), failed: Number(r.failed) };
  }

  /** Closes the round when every user is done; the next join then opens a new one. */
  async closeRound(round: number): Promise<boolean> {
    const { rowCount } = await this.state.pool.query(
      'UPDATE rounds SET closed_at = now() WHERE id = $1 AND closed_at IS NULL AND NOT EXISTS (SELECT 1 FROM leases WHERE round_id = $1 AND done_at IS NULL)',
      [round],
    );
    return (rowCount ?? 0) > 0;
  }

  /** Users of a round and who finished them, for reports and tests. */
  async failures(round: number): Promise<Array<{ user: string; reason: string }>> {
    const { rows } = await this.state.pool.query<{ user_key: string; failure: string }>('SELECT user_key, failure FROM leases WHERE round_id = $1 AND failure IS NOT NULL ORDER BY user_key', [round]);
    return rows.map((r) => ({ user: r.user_key, reason: r.failure }));
  }
}

export interface LeasedWorkOptions {
  /** Users worked on at once. */
  concurrency: number;
  /** A graceful stop: no more claims; users in progress are told to stop and released. */
  stop?: AbortSignal;
}

/**
 * Works a round's users until every one is done: claims free users up to `concurrency`, runs
 * `work` for each (its signal fires if the lease is lost or the worker stops), marks them done
 * (or failed, with the reason), and while other workers hold the rest, polls so that a dead
 * worker's users are taken over once their leases expire. Returns the users this worker did.
 */
export async function workLeased(
  leases: UserLeases,
  round: number,
  options: LeasedWorkOptions,
  work: (user: string, signal: AbortSignal) => Promise<void>,
): Promise<{ done: string[]; failed: Array<{ user: string; reason: string }>; stopped: boolean }> {
  const done: string[] = [];
  const failed: Array<{ user: string; reason: string }> = [];
  const active = new Map<string, { task: Promise<void>; controller: AbortController }>();
  const stop = options.stop;
  let wake: () => void = () => undefined;
  const start = (user: string, lost: AbortSignal): void => {
    // A stop reaches the user through its controller (one listener on `stop` for every user).
    const controller = new AbortController();
    if (stop?.aborted) controller.abort(stop.reason);
    const signal = AbortSignal.any([lost, controller.signal]);
    const task = (async () => {
      try {
        await work(user, signal);
        if (signal.aborted) throw signal.reason;
        if (await leases.finish(round, user)) done.push(user);
      } catch (err) {
        if (lost.aborted || (controller.signal.aborted && !stop?.aborted)) return; // someone else's now, or the database is gone
        if (stop?.aborted) await leases.release(round, user);
        else if (await leases.finish(round, user, errorMessage(err))) failed.push({ user, reason: errorMessage(err) });
      }
    })()
      .catch(() => undefined) // the database went away while finishing: the lease expires and is taken over
      .finally(() => {
        active.delete(user);
        wake();
      });
    active.set(user, { task, controller });
  };
  let lostDatabase: Error | null = null;
  const onStop = (): void => {
    for (const a of active.values()) a.controller.abort(stop?.reason);
  };
  stop?.addEventListener('abort', onStop, { once: true });
  leases.startRenewing();
  try {
    for (;;) {
      if (stop?.aborted) break;
      for (const c of await leases.claim(round, options.concurrency - active.size)) {
        if (stop?.aborted) await leases.release(round, c.user); // stopped while claiming
        else start(c.user, c.lost);
      }
      if (active.size === 0) {
        const p = await leases.progress(round);
        if (p.free === 0 && p.leased === 0) break;
        if (p.free > 0) {
          await sleep(50); // freed between our claim and this count: claim again
          continue;
        }
      }
      // Wait for a slot to free up, or poll for expired leases.
      await new Promise<void>((resolve) => {
        // Each wait's listener and timer go when it ends: a long round waits thousands of times.
        const done = (): void => {
          stop?.removeEventListener('abort', done);
          clearTimeout(timer);
          resolve();
        };
        wake = done;
        const timer = setTimeout(done, leases.pollMs);
        timer.unref();
        if (stop?.aborted) done();
        else stop?.addEventListener('abort', done, { once: true });
      });
    }
  } catch (err) {
    lostDatabase = err instanceof EtlError ? err : new EtlError('STATE', `lost the state database ${leases.location}: ${errorMessage(err)}`, {}, { cause: err });
    for (const a of active.values()) a.controller.abort(lostDatabase);
  }
  await Promise.allSettled([...active.values()].map((a) => a.task));
  stop?.removeEventListener('abort', onStop);
  await leases.stopRenewing();
  if (lostDatabase) throw lostDatabase;
  if (!stop?.aborted) await leases.closeRound(round);
  return { done, failed, stopped: Boolean(stop?.aborted) };
}
