// One OAuth refresh-token request, as every source that refreshes tokens sends it (Fitbit's and
// Google's token endpoints): a longer timeout than data requests, a bounded wait on 429 (the
// refresh token was not spent), and the reason of an attempt whose answer was lost, so that the
// source can say a later invalid_grant means "spent by that attempt", not "revoked".
import { DEFAULT_RETRY, requestJson, sleep, type HttpResult, type HttpStats, type RequestSpec, type RetryPolicy } from './http.js';
import { redactSecrets } from './errors.js';
import type { Logger } from './log.js';

/** A refresh is given at least this long: abandoning one the server completed spends the refresh token. */
export const TOKEN_TIMEOUT_MS = 30_000;

/** 429 answers of the token endpoint one refresh waits out before it fails. */
const MAX_TOKEN_RATE_WAITS = 5;

/** What a source's client brings to a refresh: its retry policy, counters and log. */
export interface TokenClient {
  retry?: RetryPolicy;
  stats: HttpStats;
  log: Logger;
}

/** Whose refresh it is, and the secrets to keep out of every message. */
export interface TokenUser {
  user: string;
  secrets: () => string[];
}

/**
 * POSTs a refresh. `parse` reads the answer and never quotes the body in an error (it holds the
 * new tokens). `fail` turns any other answer than a success or a 429 waited out into the error
 * it means; `lostAnswer` is the reason an earlier attempt's answer was lost (a timeout, a
 * reset), '' when none was.
 */
export async function requestToken<T>(client: TokenClient, who: TokenUser, request: RequestSpec, parse: (text: string) => T, fail: (result: HttpResult, lostAnswer: string) => Error): Promise<T> {
  const policy = client.retry ?? DEFAULT_RETRY;
  const { user, secrets } = who;
  let lostAnswer = '';
  let rateWaits = 0;
  const { value } = await requestJson(request, parse, {
    policy: { ...policy, timeoutMs: Math.max(policy.timeoutMs, TOKEN_TIMEOUT_MS) },
    stats: client.stats,
    hooks: {
      context: { user },
      secrets,
      onRetry: (reason, failures, delayMs) => {
        if (!reason.startsWith('HTTP ')) lostAnswer = reason;
        client.log.warn('token refresh failed, retrying', { user, reason: redactSecrets(reason, secrets()), attempt: failures, delayMs });
      },
      onStatus: async (result) => {
        if (result.status === 429 && rateWaits < MAX_TOKEN_RATE_WAITS) {
          // Throttled: the refresh token was not spent. Wait as asked (bounded) and try again.
          rateWaits++;
          client.stats.rateLimited++;
          const asked = Number(result.headers.get('retry-after'));
          const wait = Math.min(60_000, Math.max(1_000, Number.isFinite(asked) && asked > 0 ? asked * 1000 : 1_000 * 2 ** rateWaits));
          client.log.warn('token endpoint answered 429, waiting', { user, waitSeconds: Math.round(wait / 1000) });
          await sleep(wait);
          return 'again';
        }
        throw fail(result, lostAnswer);
      },
    },
  });
  client.stats.refreshes++;
  return value;
}
