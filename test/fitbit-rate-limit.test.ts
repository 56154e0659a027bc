// The per-user rate budget, offline with a frozen clock: what it learns from the
// Fitbit-Rate-Limit-* headers, that the lower of its own count and the server's wins, that it
// notices a new window, and how long it waits after a spent budget or a 429.
import test from 'ava';
import { RateBudget, type RateLimitOptions } from '../sources/fitbit/rate-limit.js';

function headers(h: Record<string, string | number>): { get(name: string): string | null } {
  const lower = new Map(Object.entries(h).map(([k, v]) => [k.toLowerCase(), String(v)]));
  return { get: (name) => lower.get(name.toLowerCase()) ?? null };
}

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

const rate = (c: { now: () => number }, extra: Partial<RateLimitOptions> = {}): RateLimitOptions => ({ limit: 150, jitterMs: [100, 200], now: c.now, random: () => 0.5, ...extra });

test('learns the limit and the count from the headers; the lower of ours and the server\'s wins', (t) => {
  const c = clock();
  const b = new RateBudget(rate(c));
  t.is(b.reserve(), 0);
  b.observe(headers({ 'Fitbit-Rate-Limit-Limit': 10, 'Fitbit-Rate-Limit-Remaining': 7, 'Fitbit-Rate-Limit-Reset': 30 }));
  t.deepEqual(b.snapshot(), { limit: 10, remaining: 7, resetAt: c.now() + 31_000 });
  // The server's counter lags (claims more than we know we sent): ours wins.
  t.is(b.reserve(), 0);
  b.observe(headers({ 'Fitbit-Rate-Limit-Limit': 10, 'Fitbit-Rate-Limit-Remaining': 9, 'Fitbit-Rate-Limit-Reset': 29 }));
  t.is(b.snapshot().remaining, 6);
  // Requests we never saw (another client of the same user): the server's wins.
  t.is(b.reserve(), 0);
  b.observe(headers({ 'Fitbit-Rate-Limit-Limit': 10, 'Fitbit-Rate-Limit-Remaining': 2, 'Fitbit-Rate-Limit-Reset': 29 }));
  t.is(b.snapshot().remaining, 2);
});

test('a spent budget waits for the reset plus jitter, then starts a fresh window', (t) => {
  const c = clock();
  const b = new RateBudget(rate(c));
  b.reserve();
  b.observe(headers({ 'fitbit-rate-limit-limit': 3, 'fitbit-rate-limit-remaining': 2, 'fitbit-rate-limit-reset': 10 }));
  t.is(b.reserve(), 0);
  t.is(b.reserve(), 0);
  const wait = b.reserve();
  // Reset in 10 s, counted to the end of that second (+1 s), plus jitter 100 + 0.5·100.
  t.is(wait, 11_000 + 150);
  t.is(b.snapshot().remaining, 2, 'the reserved request belongs to the new window');
  t.is(b.waitedMs, 11_150);
});

test('a window the server started before our conservative reset instant is counted by the server', (t) => {
  const c = clock(0);
  const b = new RateBudget(rate(c));
  b.reserve();
  b.observe(headers({ 'fitbit-rate-limit-limit': 150, 'fitbit-rate-limit-remaining': 1, 'fitbit-rate-limit-reset': 3 }));
  t.is(b.snapshot().remaining, 1);
  // 3.5 s later the server's window has rolled (ours ends at 4 s): it says 149 left and an hour to go.
  c.advance(3_500);
  t.is(b.reserve(), 0);
  b.observe(headers({ 'fitbit-rate-limit-limit': 150, 'fitbit-rate-limit-remaining': 149, 'fitbit-rate-limit-reset': 3_597 }));
  t.is(b.snapshot().remaining, 149, 'not stuck at the old window\'s 0');
  t.is(b.reserve(), 0);
});

test('after a 429 (even with Remaining > 0) it waits for the reset plus jitter; without headers, an hour', (t) => {
  const c = clock();
  const b = new RateBudget(rate(c));
  b.reserve();
  const wait = b.exhausted(headers({ 'fitbit-rate-limit-limit': 150, 'fitbit-rate-limit-remaining': 120, 'fitbit-rate-limit-reset': 42, 'retry-after': 1 }));
  t.is(wait, 43_000 + 150, 'Retry-After is ignored; the reset is used');
  const blind = new RateBudget(rate(c));
  t.is(blind.exhausted(headers({})), 3_600_000 + 150);
});

test('a saved budget carries over; a stale or broken one does not', (t) => {
  const c = clock(50_000);
  const kept = new RateBudget(rate(c), { limit: 150, remaining: 0, resetAt: 60_000 });
  t.is(kept.reserve(), 10_000 + 150);
  const stale = new RateBudget(rate(c), { limit: 150, remaining: 0, resetAt: 40_000 });
  t.is(stale.reserve(), 0);
  const broken = new RateBudget(rate(c), { limit: Number.NaN, remaining: 0, resetAt: 0 } as never);
  t.is(broken.reserve(), 0);
  t.is(broken.snapshot().limit, 150);
});

test('garbage headers change nothing', (t) => {
  const c = clock();
  const b = new RateBudget(rate(c));
  b.reserve();
  const before = b.snapshot();
  b.observe(headers({ 'fitbit-rate-limit-remaining': 0 }));
  b.observe(headers({ 'fitbit-rate-limit-reset': 'soon', 'fitbit-rate-limit-remaining': 0 }));
  b.observe(headers({ 'fitbit-rate-limit-reset': '', 'fitbit-rate-limit-remaining': 0 }));
  t.deepEqual(b.snapshot(), before);
});
