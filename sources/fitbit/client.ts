// One Fitbit user's connection: bearer token with refresh on expiry, the user's rate budget,
// and the meaning of Fitbit's statuses (API-REFERENCE.md §A.4, §A.6). A user's requests go
// one at a time: every session of one user (within a run) shares a lock and a rate budget,
// so even two pipelines fetching the same user cannot send in parallel or overspend.
import { SerialQueue, getOrCreate, requestSlots, type Slots } from '../../lib/async.js';
import { EtlError, redactSecrets } from '../../lib/errors.js';
import {
  DEFAULT_RETRY,
  HttpStats,
  requestJson,
  dropped,
  sleep,
  summarizeBody,
  type HttpResult,
  type RequestSpec,
  type RetryPolicy,
} from '../../lib/http.js';
import type { Logger } from '../../lib/log.js';
import { requestToken } from '../../lib/oauth.js';
import { RateBudget, type RateBudgetState, type RateLimitOptions, type SharedRateBudget } from './rate-limit.js';
import type { FitbitProfile, UnitSystem } from './types.js';
import type { TokenPair } from './users.js';

/**
 * Where the users' tokens live: the users file (users.ts UsersFile) or the state database.
 * `rotate` spends the refresh token at most once, keeps the new pair before it returns, and
 * adopts a pair someone else already rotated to.
 */
export interface FitbitTokens {
  tokens(humanId: string): TokenPair;
  rotate(humanId: string, staleAccessToken: string, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair>;
}

export interface FitbitClientConfig {
  /** FITBIT_API_URL, e.g. https://api.fitbit.com */
  baseUrl: string;
  clientId?: string;
  clientSecret?: string;
  retry?: RetryPolicy;
  rateLimit: RateLimitOptions;
  stats: HttpStats;
  log: Logger;
  /** What every session of one run shares: rate budgets, per-user locks, profiles, the 410 verdict. */
  shared?: FitbitShared;
  /** Unit system to ask for (Accept-Language); default metric. Every response is read in the system asked for. */
  units?: UnitSystem;
  /** 429 answers one request may wait out before its user fails (default 10). */
  maxRateLimitWaits?: number;
  /** Told before every rate-limit wait (for the progress bar). */
  onWait?: (user: string, waitMs: number) => void;
  /** The run's stop: a rate-limit wait ends with it, and the request it held is never sent. */
  stop?: AbortSignal;
  /** A user's budget shared with other processes; without it, the run's own RateBudget. */
  sharedBudget?: (humanId: string) => SharedRateBudget;
}

/**
 * Any value other than en_US or en_GB selects metric units (§A.5); we send a fixed one and
 * still read every unit field, because a proxy or an old account could answer otherwise.
 */
export const METRIC_ACCEPT_LANGUAGE = 'metric';

/** The Accept-Language header that asks for a unit system. */
export function acceptLanguageFor(units: UnitSystem): string {
  return units === 'metric' ? METRIC_ACCEPT_LANGUAGE : units;
}

export const GOOGLE_HEALTH_SUCCESSOR =
  'the Fitbit Web API answered 410 Gone: Google turned it off in autumn 2026. Its successor is the Google Health API (https://health.googleapis.com/v4); users must re-consent there';


/** Refreshes (or adoptions of a pair another run wrote) one request may go through before its user fails. */
const MAX_ROTATIONS_PER_REQUEST = 2;

interface FitbitErrorBody {
  errors?: Array<{ errorType?: string; message?: string }>;
}

function errorTypes(text: string): string[] {
  try {
    const body = JSON.parse(text) as FitbitErrorBody;
    return (body.errors ?? []).map((e) => e.errorType ?? '');
  } catch {
    return [];
  }
}

export { SerialQueue };

/** Per run: what every session of one API base shares, keyed by the user's humanId. */
export class FitbitShared {
  readonly budgets = new Map<string, RateBudget>();
  readonly queues = new Map<string, SerialQueue>();
  /** Profiles fetched this run, so each user's is fetched once whatever runs after. */
  readonly profiles = new Map<string, FitbitProfile>();
  /** Set by the first 410: no session sends anything after it. */
  gone: EtlError | null = null;
  /** Requests in flight across all users at once (unbounded without). */
  readonly slots: Slots | null;

  constructor(requestsInFlight?: number) {
    this.slots = requestSlots(requestsInFlight);
  }

  budget(key: string, create: () => RateBudget): RateBudget {
    return getOrCreate(this.budgets, key, create);
  }

  queue(key: string): SerialQueue {
    return getOrCreate(this.queues, key, () => new SerialQueue());
  }
}

export class FitbitSession {
  readonly humanId: string;
  readonly userId: string;
  readonly budget: RateBudget;
  readonly shared: FitbitShared;
  private readonly config: FitbitClientConfig;
  private readonly users: FitbitTokens;
  private readonly queue: SerialQueue;
  private readonly sharedBudget: SharedRateBudget | null;
  /** The shared budget's reading of the last answer, awaited before the next request (one at a time per user). */
  private observing: Promise<void> = Promise.resolve();
  /** Every token this session has held: a server may quote an old one back. */
  private readonly seenSecrets = new Set<string>();

  constructor(config: FitbitClientConfig, users: FitbitTokens, humanId: string, userId: string, savedBudget?: RateBudgetState) {
    this.config = config;
    this.users = users;
    this.humanId = humanId;
    this.userId = userId;
    this.shared = config.shared ?? new FitbitShared();
    this.budget = this.shared.budget(humanId, () => new RateBudget(config.rateLimit, savedBudget));
    this.queue = this.shared.queue(humanId);
    this.sharedBudget = config.sharedBudget?.(humanId) ?? null;
    this.remember();
  }

  /** Absolute URL for a path below the API base. */
  url(pathAndQuery: string): string {
    return new URL(pathAndQuery, this.config.baseUrl.endsWith('/') ? this.config.baseUrl : this.config.baseUrl + '/').toString();
  }

  get base(): string {
    return this.config.baseUrl;
  }

  /** The unit system every response of this session is written in (what Accept-Language asks for). */
  get units(): UnitSystem {
    return this.config.units ?? 'metric';
  }

  /** Removes every token, the client secret and the Basic credentials from a text. */
  redact(text: string): string {
    return redactSecrets(text, this.secrets());
  }

  private remember(): void {
    const t = this.users.tokens(this.humanId);
    this.seenSecrets.add(t.accessToken);
    this.seenSecrets.add(t.refreshToken);
  }

  private secrets(): string[] {
    const out = [...this.seenSecrets];
    const { clientId, clientSecret } = this.config;
    if (clientSecret) {
      out.push(clientSecret, Buffer.from(`${clientId ?? ''}:${clientSecret}`).toString('base64'));
    }
    return out;
  }

  /**
   * GET a Fitbit JSON resource; `parse` validates the body and may throw (then it is retried,
   * unless it throws an EtlError BAD_RESPONSE). Requests of one user wait for each other.
   */
  get<T>(url: string, parse: (text: string) => T): Promise<{ value: T; result: HttpResult }> {
    return this.queue.run(async () => {
      try {
        return await this.send(url, parse);
      } finally {
        // The last answer's reading reaches the shared budget before this user's next request.
        await this.observing;
      }
    });
  }

  private async send<T>(url: string, parse: (text: string) => T): Promise<{ value: T; result: HttpResult }> {
    const context = { user: this.humanId };
    const state = { rotations: 0, rateWaits: 0 };
    return requestJson<T>({ url }, (text) => parse(text), {
      policy: this.config.retry ?? DEFAULT_RETRY,
      stats: this.config.stats,
      ...(this.shared.slots ? { slots: this.shared.slots } : {}),
      ...(this.config.stop ? { stop: this.config.stop } : {}),
      hooks: {
        context,
        maxAgain: 50,
        secrets: () => this.secrets(),
        before: async (spec: RequestSpec) => {
          if (this.shared.gone) throw this.shared.gone;
          await this.observing;
          const wait = this.sharedBudget ? await this.sharedBudget.reserve() : this.budget.reserve();
          if (wait > 0) {
            this.config.log.info('rate budget spent, waiting for the reset', { user: this.humanId, waitSeconds: Math.round(wait / 1000) });
            this.config.onWait?.(this.humanId, wait);
            await sleep(wait, this.config.stop);
            if (this.config.stop?.aborted) await dropped();
          }
          this.remember();
          const { accessToken } = this.users.tokens(this.humanId);
          return {
            ...spec,
            headers: { ...spec.headers, Authorization: `Bearer ${accessToken}`, 'Accept-Language': acceptLanguageFor(this.units), Accept: 'application/json' },
          };
        },
        // A 410 seen while this request waited for a slot: it does not go out.
        beforeSend: () => {
          if (this.shared.gone) throw this.shared.gone;
        },
        observe: (result) => {
          if (this.sharedBudget) {
            const budget = this.sharedBudget;
            this.observing = this.observing.then(() => budget.observe(result.headers));
            // Awaited before the user's next request; a user that makes none (stopped, or the
            // run ended) must not leave its failure unhandled.
            this.observing.catch(() => undefined);
          } else this.budget.observe(result.headers);
          if (result.status === 410) this.gone();
        },
        onRetry: (reason, failures, delayMs) => {
          this.config.log.warn('request failed, retrying', { user: this.humanId, reason: this.redact(reason), attempt: failures, delayMs });
        },
        onStatus: (result, spec) => this.onStatus(result, spec, state),
      },
    });
  }

  private async onStatus(result: HttpResult, spec: RequestSpec, state: { rotations: number; rateWaits: number }): Promise<'again' | 'fail'> {
    const types = errorTypes(result.text);
    const detail = summarizeBody(this.redact(result.text));
    if (result.status === 429) {
      this.config.stats.rateLimited++;
      state.rateWaits++;
      const limit = this.config.maxRateLimitWaits ?? 10;
      if (state.rateWaits > limit) {
        throw new EtlError('HTTP_RETRY_EXHAUSTED', `user ${this.humanId}: Fitbit kept answering 429 Too Many Requests after ${limit} waits for the rate-limit reset`, { user: this.humanId, status: 429 });
      }
      await this.observing;
      const wait = this.sharedBudget ? await this.sharedBudget.exhausted(result.headers) : this.budget.exhausted(result.headers);
      this.config.log.warn('429 Too Many Requests, waiting for the rate-limit reset', { user: this.humanId, waitSeconds: Math.round(wait / 1000) });
      this.config.onWait?.(this.humanId, wait);
      await sleep(wait, this.config.stop);
      if (this.config.stop?.aborted) await dropped();
      return 'again';
    }
    if (result.status === 401 && types.includes('expired_token')) {
      state.rotations++;
      if (state.rotations > MAX_ROTATIONS_PER_REQUEST) {
        throw new EtlError('AUTH_EXPIRED', `user ${this.humanId}: Fitbit still says the access token expired right after it was refreshed; re-authorise this user and put the new tokens in the users file`, { user: this.humanId, status: 401 });
      }
      const stale = (spec.headers?.Authorization ?? '').replace(/^Bearer /, '');
      await this.users.rotate(this.humanId, stale, (refreshToken) => this.refresh(refreshToken));
      this.remember();
      return 'again';
    }
    if (result.status === 401) {
      throw new EtlError(
        'AUTH_INVALID',
        `user ${this.humanId}: Fitbit rejected the access token (${types.join(',') || 'HTTP 401'}); re-authorise this user and put the new tokens in the users file`,
        { user: this.humanId, status: 401 },
      );
    }
    if (result.status === 410) throw this.gone();
    if (result.status === 403) {
      throw new EtlError('HTTP_CLIENT', `user ${this.humanId}: Fitbit refused access (403, ${detail}); check the app's scopes and the user's consent`, { user: this.humanId, status: 403 });
    }
    throw new EtlError('HTTP_CLIENT', `user ${this.humanId}: Fitbit answered HTTP ${result.status} (${detail})`, { user: this.humanId, status: result.status });
  }

  private gone(): EtlError {
    this.shared.gone ??= new EtlError('API_GONE', GOOGLE_HEALTH_SUCCESSOR, { status: 410 });
    return this.shared.gone;
  }

  /** POST /oauth2/token with the refresh token (Basic client auth); returns the new pair. */
  private async refresh(refreshToken: string): Promise<TokenPair> {
    const { clientId, clientSecret } = this.config;
    if (!clientId || !clientSecret) {
      throw new EtlError('AUTH_EXPIRED', `user ${this.humanId}: the access token expired and FITBIT_CLIENT_ID / FITBIT_CLIENT_SECRET are not set, so it cannot be refreshed`, { user: this.humanId });
    }
    this.seenSecrets.add(refreshToken);
    const value = await requestToken(
      this.config,
      { user: this.humanId, secrets: () => this.secrets() },
      {
        url: this.url('oauth2/token'),
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
        headers: {
          Authorization: 'Basic ' + Buffer.from(`${clientId}:${clientSecret}`).toString('base64'),
          'Content-Type': 'application/x-www-form-urlencoded',
          Accept: 'application/json',
        },
      },
      parseTokenResponse,
      (result, lostAnswer) => {
        if (result.status === 410) return this.gone();
        const types = errorTypes(result.text);
        const detail = summarizeBody(this.redact(result.text));
        if (types.includes('invalid_client')) {
          return new EtlError('AUTH_EXPIRED', `user ${this.humanId}: the token endpoint rejected the app's credentials (${detail}); check FITBIT_CLIENT_ID and FITBIT_CLIENT_SECRET`, { user: this.humanId, status: result.status });
        }
        const spent = types.includes('invalid_grant') || result.status === 409;
        const why = spent
          ? lostAnswer
            ? `the refresh token was spent by an earlier attempt whose answer was lost (${this.redact(lostAnswer)})`
            : 'the refresh token was already used or revoked (by another run, or consent was withdrawn)'
          : `HTTP ${result.status}, ${detail}`;
        return new EtlError('AUTH_EXPIRED', `user ${this.humanId}: refreshing the token failed: ${why}; re-authorise this user and put the new tokens in the users file`, { user: this.humanId, status: result.status });
      },
    );
    this.seenSecrets.add(value.accessToken);
    this.seenSecrets.add(value.refreshToken);
    this.config.log.info('access token refreshed', { user: this.humanId });
    return value;
  }
}

/** The token response; never quotes the body in an error (it holds the new tokens). */
export function parseTokenResponse(text: string): TokenPair {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw new Error(`token response is not valid JSON (${text.length} characters)`);
  }
  const r = (typeof o === 'object' && o !== null ? o : {}) as Record<string, unknown>;
  if (typeof r.access_token !== 'string' || r.access_token === '' || typeof r.refresh_token !== 'string' || r.refresh_token === '') {
    throw new Error('token response without access_token/refresh_token');
  }
  return { accessToken: r.access_token, refreshToken: r.refresh_token };
}
