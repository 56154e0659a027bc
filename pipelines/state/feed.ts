// The users a worker claims (leases.ts workLeased), handed one at a time to the user streams of
// a run (pipelines/user-streams.ts). A claimed user's lease is marked done (or failed) only
// when the sink has committed what its stream brought: `finish` is called from the user's
// checkpoint. The streams ask for users from numbered slots, as many as userStreams() runs.
import { EtlError } from '../../lib/errors.js';
import { workLeased, type UserLeases } from './leases.js';

export interface ClaimedUser<U> {
  user: U;
  /** Fires when the lease is lost (taken over, database gone) or the worker stops. */
  signal: AbortSignal;
  /** The user's rows are committed: its lease is done, or failed with `failure`. */
  finish(failure: unknown): void;
}

export interface LeasedFeed<U> {
  /** Slots for mergeConcurrent: one more while users may still come. */
  slots: Iterable<number>;
  /** The next claimed user, or null once the round is done (or the worker stopped). */
  next(): Promise<ClaimedUser<U> | null>;
  /** Settles when no user is left to claim; rejects (STATE) when the database was lost. */
  done: Promise<{ stopped: boolean }>;
  /** The sink failed: users in hand are given back (their leases released, not done). */
  abort(reason: unknown): void;
}

export function leasedFeed<U>(leases: UserLeases, round: number, users: ReadonlyMap<string, U>, concurrency: number, stop?: AbortSignal): LeasedFeed<U> {
  const ready: Array<ClaimedUser<U>> = [];
  const waiting: Array<(c: ClaimedUser<U> | null) => void> = [];
  const aborted = new AbortController();
  let finished = false;
  const pending = new Set<(failure: unknown) => void>();

  const done = workLeased(leases, round, { concurrency, stop: stop ? AbortSignal.any([stop, aborted.signal]) : aborted.signal }, (key, signal) => {
    const user = users.get(key);
    if (user === undefined) return Promise.reject(new EtlError('STATE', `the round holds user ${key}, who is not in this users file`));
    return new Promise<void>((resolve, reject) => {
      const finish = (failure: unknown): void => {
        if (!pending.delete(finish)) return;
        if (failure === null || failure === undefined) resolve();
        else reject(failure);
      };
      pending.add(finish);
      const claimed: ClaimedUser<U> = { user, signal, finish };
      const waiter = waiting.shift();
      if (waiter) waiter(claimed);
      else ready.push(claimed);
    });
  }).finally(() => {
    finished = true;
    for (const w of waiting.splice(0)) w(null);
  });
  // Watched by the caller after the sink; never an unhandled rejection meanwhile.
  done.catch(() => undefined);

  return {
    slots: {
      *[Symbol.iterator]() {
        for (let slot = 0; !finished; slot++) yield slot;
      },
    },
    next: () => {
      const c = ready.shift();
      if (c) return Promise.resolve(c);
      if (finished) return Promise.resolve(null);
      return new Promise((resolve) => waiting.push(resolve));
    },
    done: done.then((r) => ({ stopped: r.stopped })),
    abort: (reason) => {
      aborted.abort(reason);
      for (const finish of [...pending]) finish(reason);
      for (const c of ready.splice(0)) c.finish(reason);
    },
  };
}
