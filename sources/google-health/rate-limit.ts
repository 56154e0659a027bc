// Google Health allows 300 requests per minute per user (§1.14) and sends no rate-limit headers,
// so the client keeps its own count: a sliding window of the user's last `limit` requests. A
// request goes only when fewer than `limit` were sent in the window before it, so no window of
// the server's, however it is aligned, sees more. A request counts from when its answer came
// (or it failed): never earlier than the server saw it. A 429 pauses every request of the user
// until Retry-After, or a backoff, has passed. With the state in PostgreSQL the same rules run
// there (GhSharedBudget), so every worker of every run takes from one window per user.

export interface GhRateLimitOptions {
  /** Requests per window per user (Google: 300). */
  limit: number;
  /** Window length (Google: one minute). */
  windowMs: number;
  /** Backoff after a 429 without Retry-After: first wait and cap (ms), doubled per 429 in a row. */
  backoffMs: [number, number];
  now?: () => number;
  random?: () => number;
}

export const GH_RATE_DEFAULTS: GhRateLimitOptions = { limit: 300, windowMs: 60_000, backoffMs: [2_000, 60_000] };

/** What the state keeps between runs (the same shape as the Fitbit budget). */
export interface GhRateBudgetState {
  limit: number;
  /** Requests that may still go before resetAt. */
  remaining: number;
  /** Epoch ms by which every counted request has left the window (and any pause is over); 0 = none. */
  resetAt: number;
}

/** Extra ms between the edge of a window and the next request (timer and clock granularity). */
export const MARGIN_MS = 5;
/** How soon to look again when the window is full of requests still on their way. */
export const IN_FLIGHT_POLL_MS = 20;

/**
 * A user's budget kept outside the process (PostgreSQL, pipelines/state), shared by every
 * worker: GhRateBudget's rules, each step one round trip that may fail.
 */
export interface GhSharedBudget {
  /**
   * The check and the reservation in one step: a ticket when the request may go now (it counts
   * as in flight until settled), else how long to wait before asking again.
   */
  take(): Promise<{ ticket: string } | { waitMs: number }>;
  /** The ticket's answer came (or its attempt failed): the request counts from now. */
  settle(ticket: string): Promise<void>;
  /** After a 429: no worker sends for this user for `waitMs` (or longer, if already paused). Returns the ms until the pause ends. */
  pause(waitMs: number): Promise<number>;
}

export class GhRateBudget {
  private readonly options: GhRateLimitOptions;
  /** Times the user's requests counted from, ascending; only the last `limit` matter. */
  private sent: number[] = [];
  /** Requests of the user on their way (several sessions share one budget): each counts as sent. */
  private inFlight = 0;
  private pausedUntil = 0;
  private rateLimitedInARow = 0;
  /** Total ms this budget made its user wait. */
  waitedMs = 0;

  constructor(options: GhRateLimitOptions, saved?: GhRateBudgetState) {
    this.options = options;
    if (saved && isState(saved) && saved.resetAt > 0) {
      // Conservative: the used requests count as sent at the latest instant they could have been.
      const used = Math.max(0, Math.min(options.limit, options.limit - saved.remaining));
      const at = saved.resetAt - options.windowMs;
      for (let i = 0; i < used; i++) this.sent.push(at);
    }
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /**
   * How long the next request must wait (0 = now). When it is 0, `reserve()` at once (no await
   * in between): the check and the reservation are one step, so requests of several sessions
   * of one user cannot all pass the same check.
   */
  delay(): number {
    const now = this.now();
    const { limit, windowMs } = this.options;
    this.sent = this.sent.filter((t) => t > now - windowMs).slice(-limit);
    let at = Math.max(now, this.pausedUntil);
    if (this.sent.length + this.inFlight >= limit) {
      // The request `limit` places back must have left the window; while it is still on its
      // way its time is not known yet, so look again shortly.
      const index = this.sent.length + this.inFlight - limit;
      const oldest = this.sent[index];
      at = Math.max(at, oldest !== undefined ? oldest + windowMs + MARGIN_MS : now + IN_FLIGHT_POLL_MS);
    }
    return at - now;
  }

  /** The request goes now. It counts as sent until its ticket is settled, then from that moment. */
  reserve(): { settle(): void } {
    this.inFlight++;
    let open = true;
    return {
      settle: () => {
        if (!open) return;
        open = false;
        this.inFlight--;
        this.sent.push(this.now());
      },
    };
  }

  /** An answer other than 429 came: the next 429 starts the backoff afresh. */
  succeeded(): void {
    this.rateLimitedInARow = 0;
  }

  /**
   * After a 429: every request of the user waits until Retry-After (seconds or an HTTP date), or
   * a doubling backoff with jitter when the server gave none. Returns the ms to wait.
   */
  rateLimited(retryAfter: string | null): number {
    const now = this.now();
    this.rateLimitedInARow++;
    let wait: number | null = null;
    if (retryAfter !== null && retryAfter.trim() !== '') {
      const seconds = Number(retryAfter);
      if (Number.isFinite(seconds) && seconds >= 0) wait = seconds * 1000;
      else {
        const at = Date.parse(retryAfter);
        if (!Number.isNaN(at)) wait = Math.max(0, at - now);
      }
    }
    if (wait === null) {
      const [base, cap] = this.options.backoffMs;
      const ceiling = Math.min(cap, base * 2 ** (this.rateLimitedInARow - 1));
      wait = Math.max(base / 2, Math.floor((this.options.random ?? Math.random)() * ceiling));
    }
    this.pausedUntil = Math.max(this.pausedUntil, now + wait);
    return this.pausedUntil - now;
  }

  snapshot(): GhRateBudgetState {
    const now = this.now();
    const { limit, windowMs } = this.options;
    const live = this.sent.filter((t) => t > now - windowMs).slice(-limit);
    const newest = live.length > 0 ? live[live.length - 1]! + windowMs : 0;
    if (this.pausedUntil > now) return { limit, remaining: 0, resetAt: Math.max(newest, this.pausedUntil) };
    return { limit, remaining: limit - live.length, resetAt: newest };
  }
}

function isState(o: GhRateBudgetState): boolean {
  return [o.limit, o.remaining, o.resetAt].every((x) => typeof x === 'number' && Number.isFinite(x)) && o.limit > 0;
}
