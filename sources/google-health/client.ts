// One Google Health user's connection: a bearer token refreshed through Google's token endpoint
// (client id and secret in the form body), the user's rate budget, and the meaning of Google's
// statuses (§1.14, §1.15). A user's requests go one at a time and share one budget across every
// pipeline of a run, so a 429 pauses all of that user's requests, not only the one that failed.
// Given a GhSharedBudget (the state in PostgreSQL), the budget and its pauses are the database's,
// shared with every other worker.
import * as v from 'valibot';
import { SerialQueue, getOrCreate, requestSlots, type Slots } from '../../lib/async.js';
import { EtlError, redactSecrets } from '../../lib/errors.js';
import { DEFAULT_RETRY, HttpStats, dropped, requestJson, sleep, type HttpResult, type RequestSpec, type RetryPolicy } from '../../lib/http.js';
import type { Logger } from '../../lib/log.js';
import { requestToken } from '../../lib/oauth.js';
import { GhRateBudget, type GhRateBudgetState, type GhRateLimitOptions, type GhSharedBudget } from './rate-limit.js';
import { ErrorBody, OAuthErrorBody, TokenResponse, type GhIdentity, type GhSettings } from './types.js';

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

/**
 * Where a user's tokens live (the users file, through its `rotate`): `rotate` spends the refresh
 * token at most once, writes the new pair before it returns, and adopts a pair another run wrote.
 */
export interface TokenStore {
  /** The tokens as stored now; accessToken is '' when the entry has none. */
  current(): TokenPair;
  rotate(staleAccessToken: string, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair>;
}

export interface GoogleHealthClientConfig {
  /** GOOGLE_HEALTH_API_URL, e.g. https://health.googleapis.com */
  baseUrl: string;
  /** GOOGLE_OAUTH_TOKEN_URL, e.g. https://oauth2.googleapis.com/token */
  tokenUrl: string;
  clientId?: string;
  clientSecret?: string;
  retry?: RetryPolicy;
  rateLimit: GhRateLimitOptions;
  stats: HttpStats;
  log: Logger;
  shared: GoogleHealthShared;
  /** 429 answers one request may wait out before its user fails (default 10). */
  maxRateLimitWaits?: number;
  /** The user's budget shared with other processes; without it, the run's own GhRateBudget. */
  sharedBudget?: GhSharedBudget;
  onWait?: (user: string, waitMs: number) => void;
  /** The run's stop: a rate-limit wait or a backoff ends with it, and the request it held is never sent. */
  stop?: AbortSignal;
}


/** What one user's sessions share within a run: budget, request queue, identity, settings. */
export interface GhUserShared {
  budget: GhRateBudget;
  queue: SerialQueue;
  identity?: GhIdentity;
  settings?: GhSettings;
  /** Set once the user cannot go on (revoked consent): later pipelines of the run skip it. */
  failed?: EtlError;
  /** The shared budget's settling of the last tickets, awaited before the user's next request. */
  settling: Promise<void>;
}

/** Per run: per users-file entry, what its sessions share; requests in flight across users. */
export class GoogleHealthShared {
  private readonly users = new Map<number, GhUserShared>();
  readonly slots: Slots | null;

  constructor(requestsInFlight?: number) {
    this.slots = requestSlots(requestsInFlight);
  }

  user(index: number, create: () => GhRateBudget): GhUserShared {
    return getOrCreate(this.users, index, () => ({ budget: create(), queue: new SerialQueue(), settling: Promise.resolve() }));
  }
}

/** The reason (ErrorInfo.reason, else status) and message of a Google error body. */
export function googleError(text: string): { status: string; reason: string; message: string } {
  try {
    const r = v.safeParse(ErrorBody, JSON.parse(text));
    if (r.success) {
      const e = r.output.error;
      return { status: e.status ?? '', reason: e.details?.find((d) => d.reason)?.reason ?? '', message: (e.message ?? '').replace(/\s+/g, ' ').slice(0, 300) };
    }
  } catch {
    // not JSON
  }
  return { status: '', reason: '', message: text.replace(/\s+/g, ' ').slice(0, 200) };
}

function oauthError(text: string): string {
  try {
    const r = v.safeParse(OAuthErrorBody, JSON.parse(text));
    if (r.success) return r.output.error;
  } catch {
    // not JSON
  }
  return '';
}

export class GoogleHealthSession {
  readonly shared: GhUserShared;
  private readonly seen = new Set<string>();

  /** `label`: the output name of the user (settled after identity; the entry's index until then). */
  constructor(
    private readonly config: GoogleHealthClientConfig,
    private readonly tokens: TokenStore,
    readonly index: number,
    public label: string,
    saved?: GhRateBudgetState,
  ) {
    this.shared = config.shared.user(index, () => new GhRateBudget(config.rateLimit, saved));
    this.remember(tokens.current());
  }

  get budget(): GhRateBudget {
    return this.shared.budget;
  }

  /** Absolute URL of a path below the API base. */
  url(pathAndQuery: string): string {
    const base = this.config.baseUrl.endsWith('/') ? this.config.baseUrl : this.config.baseUrl + '/';
    return new URL(pathAndQuery, base).toString();
  }

  get base(): string {
    return this.config.baseUrl;
  }

  private remember(t: TokenPair): void {
    if (t.accessToken) this.seen.add(t.accessToken);
    if (t.refreshToken) this.seen.add(t.refreshToken);
  }

  private secrets(): string[] {
    return [...this.seen, ...(this.config.clientSecret ? [this.config.clientSecret] : [])];
  }

  /** Removes every token and the client secret from a text. */
  redact(text: string): string {
    return redactSecrets(text, this.secrets());
  }

  /** GET (or POST with a JSON body) a resource; `parse` validates the body. One request of the user at a time. */
  request<T>(spec: RequestSpec, parse: (text: string) => T): Promise<T> {
    if (this.shared.failed) return Promise.reject(this.shared.failed);
    return this.shared.queue.run(async () => {
      try {
        return await this.send(spec, parse);
      } finally {
        // The last answer is counted in the shared budget before this user's next request.
        await this.shared.settling;
      }
    });
  }

  /**
   * The attempt may go: waits until the budget has room, then reserves it. Checked again after
   * every wait: other sessions of this user (or, shared, other workers) may have taken the room.
   */
  private async reserve(): Promise<{ settle(): void }> {
    const budget = this.budget;
    const remote = this.config.sharedBudget;
    for (;;) {
      let wait: number;
      if (remote) {
        await this.shared.settling;
        const taken = await remote.take();
        if ('ticket' in taken) {
          const id = taken.ticket;
          return {
            settle: () => {
              this.shared.settling = this.shared.settling.then(() => remote.settle(id));
            },
          };
        }
        wait = taken.waitMs;
      } else {
        wait = budget.delay();
        // No await between the check and the reservation: they are one step.
        if (wait <= 0) return budget.reserve();
      }
      this.config.log.info('rate budget spent, waiting', { user: this.label, waitMs: wait });
      this.config.onWait?.(this.label, wait);
      budget.waitedMs += wait;
      await sleep(wait, this.config.stop);
      if (this.config.stop?.aborted) await dropped();
    }
  }

  private async send<T>(spec: RequestSpec, parse: (text: string) => T): Promise<T> {
    const budget = this.budget;
    const state = { rotations: 0, rateWaits: 0 };
    // This attempt's place in the user's budget, from the check until its answer (or failure).
    let ticket: { settle(): void } | null = null;
    const settle = (): void => {
      ticket?.settle();
      ticket = null;
    };
    try {
      // An entry without an access token gets one before its first request.
      if (this.tokens.current().accessToken === '') await this.rotate('');
      const { value } = await requestJson<T>(spec, (text) => parse(text), {
        policy: this.config.retry ?? DEFAULT_RETRY,
        stats: this.config.stats,
        ...(this.config.shared.slots ? { slots: this.config.shared.slots } : {}),
        ...(this.config.stop ? { stop: this.config.stop } : {}),
        hooks: {
          context: { user: this.label },
          maxAgain: 50,
          secrets: () => this.secrets(),
          before: async (s: RequestSpec) => {
            settle(); // a retry: the attempt before it has ended
            ticket = await this.reserve();
            const { accessToken } = this.tokens.current();
            this.seen.add(accessToken);
            return {
              ...s,
              headers: {
                ...s.headers,
                Authorization: `Bearer ${accessToken}`,
                Accept: 'application/json',
                ...(s.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
              },
            };
          },
          observe: (result) => {
            settle();
            if (result.status !== 429) budget.succeeded();
          },
          onRetry: (reason, failures, delayMs) => {
            settle();
            this.config.log.warn('request failed, retrying', { user: this.label, reason: this.redact(reason), attempt: failures, delayMs });
          },
          onStatus: (result, s) => this.onStatus(result, s, state),
        },
      });
      return value;
    } catch (err) {
      if (err instanceof EtlError && err.code === 'AUTH_INVALID') this.shared.failed = err;
      throw err;
    } finally {
      settle();
    }
  }

  private async onStatus(result: HttpResult, spec: RequestSpec, state: { rotations: number; rateWaits: number }): Promise<'again' | 'fail'> {
    const e = googleError(this.redact(result.text));
    const what = [e.status, e.reason].filter(Boolean).join(' ') || `HTTP ${result.status}`;
    if (result.status === 429) {
      this.config.stats.rateLimited++;
      state.rateWaits++;
      const limit = this.config.maxRateLimitWaits ?? 10;
      if (state.rateWaits > limit) {
        throw new EtlError('HTTP_RETRY_EXHAUSTED', `user ${this.label}: Google Health kept answering 429 RESOURCE_EXHAUSTED after ${limit} waits`, { user: this.label, status: 429 });
      }
      let wait = this.budget.rateLimited(result.headers.get('retry-after'));
      // Shared: every worker pauses this user; a longer pause already set by another stands.
      if (this.config.sharedBudget) wait = await this.config.sharedBudget.pause(wait);
      this.config.log.warn('429 RESOURCE_EXHAUSTED, pausing the user', { user: this.label, waitMs: wait, retryAfter: result.headers.get('retry-after') ?? 'none' });
      this.config.onWait?.(this.label, wait);
      return 'again'; // `before` waits for the pause
    }
    if (result.status === 401) {
      state.rotations++;
      if (state.rotations > 1) {
        throw new EtlError('AUTH_INVALID', `user ${this.label}: Google Health still answers 401 ${what} right after a token refresh; the user must re-consent (see README, "Google Health API")`, { user: this.label, status: 401 });
      }
      const stale = (spec.headers?.Authorization ?? '').replace(/^Bearer /, '');
      await this.rotate(stale);
      return 'again';
    }
    if (result.status === 403) {
      throw new EtlError('AUTH_INVALID', `user ${this.label}: Google Health refused access (403 ${what}: ${e.message}); check the scopes, then have the user remove the app at myaccount.google.com/connections and re-consent`, { user: this.label, status: 403 });
    }
    throw new EtlError('HTTP_CLIENT', `user ${this.label}: Google Health answered HTTP ${result.status} ${what}: ${e.message}`, { user: this.label, status: result.status });
  }

  private async rotate(stale: string): Promise<void> {
    const pair = await this.tokens.rotate(stale, (refreshToken) => this.refresh(refreshToken));
    this.remember(pair);
  }

  /** POST the token endpoint with the refresh token; a refresh token in the answer replaces the stored one. */
  private async refresh(refreshToken: string): Promise<TokenPair> {
    const { clientId, clientSecret, tokenUrl } = this.config;
    if (!clientId || !clientSecret) {
      throw new EtlError('AUTH_EXPIRED', `user ${this.label}: the access token is missing or expired and GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET are not set, so it cannot be refreshed`, { user: this.label });
    }
    this.seen.add(refreshToken);
    const value = await requestToken(
      this.config,
      { user: this.label, secrets: () => this.secrets() },
      {
        url: tokenUrl,
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, client_secret: clientSecret }).toString(),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      },
      (text) => {
        const r = v.safeParse(TokenResponse, JSON.parse(text));
        // Never quote the body: it holds the new tokens.
        if (!r.success) throw new EtlError('BAD_RESPONSE', `user ${this.label}: the token endpoint's answer has no access_token`);
        return r.output;
      },
      (result, lostAnswer) => {
        const error = oauthError(result.text);
        if (error === 'invalid_client' || error === 'unauthorized_client') {
          return new EtlError('CONFIG', `the Google token endpoint rejected the OAuth client (${error}); check GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET`, { status: result.status });
        }
        if (error === 'invalid_grant') {
          const why = lostAnswer
            ? `the refresh token was spent by an earlier attempt whose answer was lost (${this.redact(lostAnswer)})`
            : 'the refresh token was revoked, expired or already used';
          return new EtlError('AUTH_INVALID', `user ${this.label}: Google refused the refresh token (invalid_grant: ${why}); the user must re-consent and the new refresh token go into the users file (see README, "Google Health API")`, { user: this.label, status: result.status });
        }
        return new EtlError('AUTH_EXPIRED', `user ${this.label}: refreshing the token failed: HTTP ${result.status} ${error}`, { user: this.label, status: result.status });
      },
    );
    const pair = { accessToken: value.access_token, refreshToken: value.refresh_token ?? refreshToken };
    this.remember(pair);
    this.config.log.info('access token refreshed', { user: this.label, refreshTokenRotated: value.refresh_token !== undefined });
    return pair;
  }
}

export type { GhRateBudgetState };
