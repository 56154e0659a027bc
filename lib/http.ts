// The HTTP layer every source shares: one request with a timeout, bounded retries with
// exponential backoff and jitter for what is worth retrying (5xx, connection resets,
// timeouts, truncated or invalid JSON), and a clear error for everything else.
// Service specifics (auth, rate limits) come in through hooks, so this file knows no API.
import http from 'node:http';
import https from 'node:https';
import fetch, { type Response } from 'node-fetch';
import type { Slots } from './async.js';
import { EtlError, redactSecrets, redactUrl } from './errors.js';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Per attempt, headers and body included. */
  timeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000, timeoutMs: 60_000 };

/**
 * Largest response body read. Every body the APIs send is bounded by their page caps (an
 * intraday day ≤ 1,440 points ≈ 100 KB, 100 activities, 500 Human API records ≈ 200 KB), so a
 * body this size is a broken proxy or a wrong URL, not data: refuse it before parsing.
 */
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

/** Counters for the run summary; shared by every request of a run. */
export class HttpStats {
  requests = 0;
  retries = 0;
  rateLimited = 0;
  refreshes = 0;
  bytes = 0;
  /**
   * Milliseconds requests spent waiting for a rate limit: in the service's `before` hook (its
   * rate budget) and in its handling of 429 answers. Summed over requests that wait side by side.
   */
  rateLimitWaitMs = 0;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  /** Body text, UTF-8 byte-order mark removed. */
  text: string;
  url: string;
}

/** Minimal view of response headers so hooks do not depend on the fetch implementation. */
export interface Headers {
  get(name: string): string | null;
}

export interface RequestSpec {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

/**
 * What a service plugs in. Each hook may wait (rate limits) and decides what a
 * non-2xx status means: 'again' (repeat without counting as a failed attempt, e.g. after a
 * token refresh or a rate-limit wait), 'fail', or throw.
 */
export interface ServiceHooks {
  /** Called before every attempt: wait for budget, add auth headers. */
  before?(spec: RequestSpec): Promise<RequestSpec>;
  /**
   * Called once the request holds its slot (`slots`), right before it is sent: throw to keep it
   * from going out after all (a waiting request learns here what happened while it waited).
   */
  beforeSend?(): void;
  /** Called after every response (any status), e.g. to read rate-limit headers. */
  observe?(result: HttpResult): void;
  /** Called for statuses other than 2xx and 5xx. Return 'again' to repeat, or throw. */
  onStatus?(result: HttpResult, spec: RequestSpec): Promise<'again' | 'fail'>;
  /** Called before the wait that precedes a retry (for logs). */
  onRetry?(reason: string, failures: number, delayMs: number): void;
  /** Secrets to remove from every message this layer builds from a server's answer. */
  secrets?(): Iterable<string | undefined>;
  /** Upper bound on 'again' answers for one request (guards against loops). */
  maxAgain?: number;
  /** Adds context (user, stream) to errors. */
  context?: Record<string, string | number>;
}

export interface RequestOptions {
  policy?: RetryPolicy;
  hooks?: ServiceHooks;
  stats: HttpStats;
  random?: () => number;
  /** Bodies larger than this fail at once with BAD_RESPONSE (default DEFAULT_MAX_BODY_BYTES). */
  maxBodyBytes?: number;
  /**
   * Held from sending each attempt until its body is read: bounds the requests in flight
   * across callers. Waits (backoff, rate limits, hooks) and parsing happen outside it.
   */
  slots?: Slots;
  /** The run's stop: a backoff before another attempt ends with it, and that attempt is never sent. */
  stop?: AbortSignal;
}

const keepAliveHttp = new http.Agent({ keepAlive: true, maxSockets: 64 });
const keepAliveHttps = new https.Agent({ keepAlive: true, maxSockets: 64 });

/** Waits `ms`; ends early (and clears its timer) when `signal` aborts, so a stopped run leaves no timer behind. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });

/** Never settles: a request the stopped run has dropped (user-streams) is never sent; nothing keeps the process alive for it. */
export const dropped = (): Promise<never> => new Promise<never>(() => undefined);

/** Full jitter: a random delay in [0, min(max, base·2^attempt)], at least base/2. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.max(policy.baseDelayMs / 2, Math.floor(random() * cap));
}

/** A failure worth another attempt (connection, timeout, 5xx, unreadable body). */
export class RetryableError extends Error {}

function tooLarge(url: string, limit: number, size?: number): EtlError {
  return new EtlError(
    'BAD_RESPONSE',
    `refused a response body ${size !== undefined ? `of ${size} bytes ` : ''}over the ${Math.round(limit / 1024 / 1024)} MiB cap from ${redactUrl(url)}: no page of these APIs is that large (a proxy error page or a wrong URL?)`,
    { url: redactUrl(url), limit },
  );
}

async function attempt(spec: RequestSpec, timeoutMs: number, stats: HttpStats, maxBodyBytes: number): Promise<HttpResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response: Response;
  try {
    stats.requests++;
    response = await fetch(spec.url, {
      method: spec.method ?? 'GET',
      headers: spec.headers ?? {},
      body: spec.body,
      signal: controller.signal,
      redirect: 'manual',
      compress: true,
      size: maxBodyBytes,
      agent: (u: URL) => (u.protocol === 'https:' ? keepAliveHttps : keepAliveHttp),
    });
    const declared = Number(response.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      controller.abort();
      throw tooLarge(spec.url, maxBodyBytes, declared);
    }
    const buffer = Buffer.from(await response.arrayBuffer());
    stats.bytes += buffer.length;
    let text = buffer.toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return { status: response.status, headers: response.headers, text, url: spec.url };
  } catch (err) {
    if (err instanceof EtlError) throw err;
    if ((err as { type?: unknown }).type === 'max-size') throw tooLarge(spec.url, maxBodyBytes);
    // Connection refused/reset, socket hang up, body cut short, timeout: all worth another try.
    const reason = controller.signal.aborted ? `timed out after ${timeoutMs} ms` : (err as Error).message;
    throw new RetryableError(reason);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends one request and returns its successful result parsed by `parse`.
 * `parse` throwing counts as a truncated/invalid body and is retried, except an EtlError
 * with code BAD_RESPONSE: a well-formed body of the wrong shape will not improve by asking
 * again, so it fails at once.
 */
export async function requestJson<T>(
  spec: RequestSpec,
  parse: (text: string, result: HttpResult) => T,
  options: RequestOptions,
): Promise<{ value: T; result: HttpResult }> {
  const policy = options.policy ?? DEFAULT_RETRY;
  const hooks = options.hooks ?? {};
  const maxAgain = hooks.maxAgain ?? 20;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const where = { url: redactUrl(spec.url), ...(hooks.context ?? {}) };
  const scrub = (text: string): string => (hooks.secrets ? redactSecrets(text, hooks.secrets()) : text);
  let failures = 0;
  let again = 0;
  let lastReason = '';
  for (;;) {
    const beforeStart = performance.now();
    const prepared = hooks.before ? await hooks.before(spec) : spec;
    options.stats.rateLimitWaitMs += performance.now() - beforeStart;
    let result: HttpResult | undefined;
    try {
      const release = options.slots ? await options.slots.acquire() : null;
      try {
        hooks.beforeSend?.();
        result = await attempt(prepared, policy.timeoutMs, options.stats, maxBodyBytes);
        // Before the slot passes on: what the answer says (a 410) is known to the next one.
        hooks.observe?.(result);
      } finally {
        release?.();
      }
      // The request that takes the freed slot goes out first (its sending is a chain of
      // microtasks); this answer is parsed after. Parsing first kept the slot idle ~2 ms.
      if (release !== null) await new Promise<void>((resolve) => setImmediate(resolve));
      if (result.status >= 200 && result.status < 300) {
        try {
          return { value: parse(result.text, result), result };
        } catch (err) {
          if (err instanceof EtlError && err.code === 'BAD_RESPONSE') throw err;
          throw new RetryableError(`invalid JSON body (${scrub((err as Error).message)})`);
        }
      }
      if (result.status >= 500) throw new RetryableError(`HTTP ${result.status}`);
      const statusStart = performance.now();
      const verdict = hooks.onStatus ? await hooks.onStatus(result, prepared) : 'fail';
      if (result.status === 429) options.stats.rateLimitWaitMs += performance.now() - statusStart;
      if (verdict === 'again' && again < maxAgain) {
        again++;
        continue;
      }
      const why = verdict === 'again' ? ` (still failing after ${again} repeats)` : '';
      throw new EtlError('HTTP_CLIENT', `HTTP ${result.status} from ${where.url}${why}: ${summarizeBody(scrub(result.text))}`, { ...where, status: result.status });
    } catch (err) {
      if (!(err instanceof RetryableError)) throw err;
      failures++;
      lastReason = err.message;
      if (failures >= policy.maxAttempts) {
        throw new EtlError(
          'HTTP_RETRY_EXHAUSTED',
          `gave up after ${failures} attempts (last: ${lastReason}) for ${where.url}`,
          { ...where, attempts: failures },
        );
      }
      options.stats.retries++;
      const delay = backoffDelay(policy, failures - 1, options.random);
      hooks.onRetry?.(lastReason, failures, delay);
      await sleep(delay, options.stop);
      if (options.stop?.aborted) await dropped();
    }
  }
}

/** The first error message of a Fitbit-style error body, or the start of the text. Redact secrets before calling. */
export function summarizeBody(text: string): string {
  try {
    const body = JSON.parse(text) as { errors?: Array<{ errorType?: string; message?: string }> };
    const first = body.errors?.[0];
    if (first) return `${first.errorType ?? 'error'}: ${first.message ?? ''}`.replace(/\s+/g, ' ').slice(0, 300);
  } catch {
    // not JSON: fall through
  }
  return text.replace(/\s+/g, ' ').slice(0, 200);
}

/** Resolves a next-page link against the base and refuses other origins (credentials stay home). */
export function resolveNext(next: string, base: string, context: Record<string, string | number> = {}): string {
  let resolved: URL;
  try {
    resolved = new URL(next, base);
  } catch {
    throw new EtlError('PAGINATION', `the next link is not a URL (${next.slice(0, 80)})`, { ...context });
  }
  const home = new URL(base);
  if (resolved.origin !== home.origin) {
    throw new EtlError(
      'PAGINATION',
      `refused to follow a next link to another origin (${resolved.origin}, expected ${home.origin})`,
      { ...context, next: redactUrl(resolved) },
    );
  }
  // Credentials travel in headers only, never in a URL a server handed us.
  resolved.username = '';
  resolved.password = '';
  return resolved.toString();
}
