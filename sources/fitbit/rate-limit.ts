// Fitbit allows 150 requests per hour per user (API-REFERENCE.md §A.4, §D.2). The counters
// in the Fitbit-Rate-Limit-* headers are approximate and a 429 can come while Remaining > 0,
// and Retry-After does not track the real reset: so we keep our own count, take the lower
// of ours and the server's, and after a 429 wait for the reset plus jitter.
import type { Headers } from '../../lib/http.js';

export interface RateBudgetState {
  limit: number;
  /** Requests this client may still send before resetAt. */
  remaining: number;
  /** Epoch ms when the window resets; 0 = unknown. */
  resetAt: number;
}

export interface RateLimitOptions {
  /** Requests per window when the server has not told us yet. */
  limit: number;
  /** Random extra wait after the reset, [min, max] ms (clock skew: Fitbit resets on its own clock). */
  jitterMs: [number, number];
  now?: () => number;
  random?: () => number;
}

/**
 * A user's budget kept outside the process (PostgreSQL, pipelines/state), shared by every
 * worker: the same steps as RateBudget, each one a round trip that may fail.
 */
export interface SharedRateBudget {
  /** Takes one request; the ms to wait before sending it. */
  reserve(): Promise<number>;
  observe(headers: Headers): Promise<void>;
  /** After a 429: the ms to wait. */
  exhausted(headers: Headers): Promise<number>;
}

export const FITBIT_RATE_DEFAULTS: RateLimitOptions = { limit: 150, jitterMs: [30_000, 120_000] };

/** The documented window, used when a wait is needed and the server never said when it resets. */
const UNKNOWN_RESET_MS = 3_600_000;

/**
 * Within one window the reset instant we compute moves by less than a second (the header is
 * rounded to whole seconds) plus the response's latency; a reset that moved later by more
 * than this means the server started a new window.
 */
const NEW_WINDOW_MS = 2_000;

export class RateBudget {
  private state: RateBudgetState;
  private readonly options: RateLimitOptions;
  /** Total ms this budget has made its user wait. */
  waitedMs = 0;

  constructor(options: RateLimitOptions, saved?: RateBudgetState) {
    this.options = options;
    this.state = saved && isState(saved) ? { ...saved } : { limit: options.limit, remaining: options.limit, resetAt: 0 };
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private jitter(): number {
    const [min, max] = this.options.jitterMs;
    return min + Math.floor((this.options.random ?? Math.random)() * Math.max(0, max - min));
  }

  /** How long to wait before the next request may go (0 = now), and takes one request from the budget. */
  reserve(): number {
    const now = this.now();
    let wait = 0;
    if (this.state.resetAt > 0 && now >= this.state.resetAt) {
      this.state.remaining = this.state.limit;
      this.state.resetAt = 0;
    }
    if (this.state.remaining <= 0) {
      // Spent: wait for the reset (unknown reset: a full hour is the documented window).
      const resetAt = this.state.resetAt > 0 ? this.state.resetAt : now + UNKNOWN_RESET_MS;
      wait = resetAt - now + this.jitter();
      this.state.remaining = this.state.limit;
      this.state.resetAt = 0;
    }
    this.state.remaining--;
    this.waitedMs += wait;
    return wait;
  }

  /** Reads the rate-limit headers of any response (call once per response, in order). */
  observe(headers: Headers): void {
    const resetText = headers.get('fitbit-rate-limit-reset');
    const reset = Number(resetText);
    if (resetText === null || resetText.trim() === '' || !Number.isFinite(reset) || reset < 0) return;
    const now = this.now();
    // The header is whole seconds, rounded either way: count the reset as the end of that second.
    const resetAt = now + (Math.ceil(reset) + 1) * 1000;
    const limitText = headers.get('fitbit-rate-limit-limit');
    const limit = Number(limitText);
    if (limitText !== null && Number.isInteger(limit) && limit > 0) this.state.limit = limit;
    const newWindow = this.state.resetAt > 0 && resetAt > this.state.resetAt + NEW_WINDOW_MS;
    const remainingText = headers.get('fitbit-rate-limit-remaining');
    const remaining = Number(remainingText);
    if (remainingText !== null && remainingText.trim() !== '' && Number.isFinite(remaining)) {
      // A window we had not seen (the server reset before our conservative reset instant):
      // its count is the server's. Within a window, ours and the server's: the lower one wins,
      // so neither a lagging server counter nor a forgotten request of ours can overspend.
      this.state.remaining = newWindow ? Math.min(remaining, this.state.limit) : Math.min(this.state.remaining, remaining);
    } else if (newWindow) {
      this.state.remaining = this.state.limit - 1;
    }
    this.state.resetAt = newWindow || this.state.resetAt === 0 ? resetAt : Math.max(this.state.resetAt, resetAt);
  }

  /** After a 429: nothing more until the reset. Returns the ms to wait. */
  exhausted(headers: Headers): number {
    this.observe(headers);
    const now = this.now();
    const resetAt = this.state.resetAt > now ? this.state.resetAt : now + UNKNOWN_RESET_MS;
    const wait = resetAt - now + this.jitter();
    this.state.remaining = this.state.limit;
    this.state.resetAt = 0;
    this.waitedMs += wait;
    return wait;
  }

  snapshot(): RateBudgetState {
    return { ...this.state };
  }
}

function isState(o: RateBudgetState): boolean {
  return [o.limit, o.remaining, o.resetAt].every((v) => typeof v === 'number' && Number.isFinite(v)) && o.limit > 0;
}
