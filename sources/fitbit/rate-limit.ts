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

export const FITBIT_RATE_DEFAULTS: RateLimitOptions = { limit: 150, jitterMs: [30_000, 120_000] };

export class RateBudget {
  private state: RateBudgetState;
  private readonly options: RateLimitOptions;
  /** Total ms this budget has made its user wait. */
  waitedMs = 0;

  constructor(options: RateLimitOptions, saved?: RateBudgetState) {
    this.options = options;
    this.state = saved ? { ...saved } : { limit: options.limit, remaining: options.limit, resetAt: 0 };
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
      const resetAt = this.state.resetAt > 0 ? this.state.resetAt : now + 3_600_000;
      wait = resetAt - now + this.jitter();
      this.state.remaining = this.state.limit;
      this.state.resetAt = 0;
    }
    this.state.remaining--;
    this.waitedMs += wait;
    return wait;
  }

  /** Reads the rate-limit headers of any response. */
  observe(headers: Headers): void {
    const limit = Number(headers.get('fitbit-rate-limit-limit'));
    const remaining = Number(headers.get('fitbit-rate-limit-remaining'));
    const reset = Number(headers.get('fitbit-rate-limit-reset'));
    if (!Number.isFinite(reset) || headers.get('fitbit-rate-limit-reset') === null) return;
    const now = this.now();
    // The header is whole seconds, rounded either way: count the reset as the end of that second.
    this.state.resetAt = now + (Math.ceil(reset) + 1) * 1000;
    if (Number.isFinite(limit) && limit > 0) this.state.limit = limit;
    if (Number.isFinite(remaining) && headers.get('fitbit-rate-limit-remaining') !== null) {
      // Our own count and the server's: the lower one wins, so neither can overspend.
      this.state.remaining = Math.min(this.state.remaining, remaining);
    }
  }

  /** After a 429: nothing more until the reset. Returns the ms to wait. */
  exhausted(headers: Headers): number {
    this.observe(headers);
    const now = this.now();
    const resetAt = this.state.resetAt > now ? this.state.resetAt : now + 3_600_000;
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
