// One Fitbit user's connection: bearer token with refresh on expiry, the user's rate budget,
// and the meaning of Fitbit's statuses (API-REFERENCE.md §A.4, §A.6). A session sends one
// request at a time: callers never run two requests of one user in parallel.
import { EtlError, redactSecrets } from '../../lib/errors.js';
import {
  DEFAULT_RETRY,
  HttpStats,
  requestJson,
  sleep,
  summarizeBody,
  type HttpResult,
  type RequestSpec,
  type RetryPolicy,
} from '../../lib/http.js';
import type { Logger } from '../../lib/log.js';
import { RateBudget, type RateBudgetState, type RateLimitOptions } from './rate-limit.js';
import type { TokenPair, UsersFile } from './users.js';

export interface FitbitClientConfig {
  /** FITBIT_API_URL, e.g. https://api.fitbit.com */
  baseUrl: string;
  clientId?: string;
  clientSecret?: string;
  retry?: RetryPolicy;
  rateLimit: RateLimitOptions;
  stats: HttpStats;
  log: Logger;
}

/**
 * Any value other than en_US or en_GB selects metric units (§A.5); we send a fixed one and
 * still read every unit field, because a proxy or an old account could answer otherwise.
 */
export const METRIC_ACCEPT_LANGUAGE = 'metric';

export const GOOGLE_HEALTH_SUCCESSOR =
  'the Fitbit Web API answered 410 Gone: Google turned it off in autumn 2026. Its successor is the Google Health API (https://health.googleapis.com/v4); users must re-consent there';

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

export class FitbitSession {
  readonly humanId: string;
  readonly userId: string;
  readonly budget: RateBudget;
  private readonly config: FitbitClientConfig;
  private readonly users: UsersFile;

  constructor(config: FitbitClientConfig, users: UsersFile, humanId: string, userId: string, savedBudget?: RateBudgetState) {
    this.config = config;
    this.users = users;
    this.humanId = humanId;
    this.userId = userId;
    this.budget = new RateBudget(config.rateLimit, savedBudget);
  }

  /** Absolute URL for a path below the API base. */
  url(pathAndQuery: string): string {
    return new URL(pathAndQuery, this.config.baseUrl.endsWith('/') ? this.config.baseUrl : this.config.baseUrl + '/').toString();
  }

  get base(): string {
    return this.config.baseUrl;
  }

  /** GET a Fitbit JSON resource; `parse` validates the body and may throw (then it is retried). */
  async get<T>(url: string, parse: (text: string) => T): Promise<{ value: T; result: HttpResult }> {
    const context = { user: this.humanId };
    return requestJson<T>({ url }, (text) => parse(text), {
      policy: this.config.retry ?? DEFAULT_RETRY,
      stats: this.config.stats,
      hooks: {
        context,
        maxAgain: 50,
        before: async (spec: RequestSpec) => {
          const wait = this.budget.reserve();
          if (wait > 0) {
            this.config.log.info('rate budget spent, waiting for the reset', { user: this.humanId, waitSeconds: Math.round(wait / 1000) });
            await sleep(wait);
          }
          const { accessToken } = this.users.tokens(this.humanId);
          return {
            ...spec,
            headers: { ...spec.headers, Authorization: `Bearer ${accessToken}`, 'Accept-Language': METRIC_ACCEPT_LANGUAGE, Accept: 'application/json' },
          };
        },
        observe: (result) => this.budget.observe(result.headers),
        onStatus: (result, spec) => this.onStatus(result, spec),
      },
    });
  }

  private async onStatus(result: HttpResult, spec: RequestSpec): Promise<'again' | 'fail'> {
    const types = errorTypes(result.text);
    const secrets = [this.users.tokens(this.humanId).accessToken, this.users.tokens(this.humanId).refreshToken];
    const detail = redactSecrets(summarizeBody(result.text), secrets);
    if (result.status === 429) {
      this.config.stats.rateLimited++;
      const wait = this.budget.exhausted(result.headers);
      this.config.log.warn('429 Too Many Requests, waiting for the rate-limit reset', { user: this.humanId, waitSeconds: Math.round(wait / 1000) });
      await sleep(wait);
      return 'again';
    }
    if (result.status === 401 && types.includes('expired_token')) {
      const stale = (spec.headers?.Authorization ?? '').replace(/^Bearer /, '');
      await this.users.rotate(this.humanId, stale, (refreshToken) => this.refresh(refreshToken));
      return 'again';
    }
    if (result.status === 401) {
      throw new EtlError(
        'AUTH_INVALID',
        `user ${this.humanId}: Fitbit rejected the access token (${types.join(',') || 'HTTP 401'}); re-authorise this user and put the new tokens in the users file`,
        { user: this.humanId, status: 401 },
      );
    }
    if (result.status === 410) {
      throw new EtlError('API_GONE', GOOGLE_HEALTH_SUCCESSOR, { user: this.humanId, status: 410 });
    }
    if (result.status === 403) {
      throw new EtlError('HTTP_CLIENT', `user ${this.humanId}: Fitbit refused access (403, ${detail}); check the app's scopes and the user's consent`, { user: this.humanId, status: 403 });
    }
    throw new EtlError('HTTP_CLIENT', `user ${this.humanId}: Fitbit answered HTTP ${result.status} (${detail})`, { user: this.humanId, status: result.status });
  }

  /** POST /oauth2/token with the refresh token (Basic client auth); returns the new pair. */
  private async refresh(refreshToken: string): Promise<TokenPair> {
    const { clientId, clientSecret } = this.config;
    if (!clientId || !clientSecret) {
      throw new EtlError('AUTH_EXPIRED', `user ${this.humanId}: the access token expired and FITBIT_CLIENT_ID / FITBIT_CLIENT_SECRET are not set, so it cannot be refreshed`, { user: this.humanId });
    }
    this.config.stats.refreshes++;
    const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString();
    const secrets = [refreshToken, clientSecret];
    const { value } = await requestJson(
      {
        url: this.url('oauth2/token'),
        method: 'POST',
        body,
        headers: {
          Authorization: 'Basic ' + Buffer.from(`${clientId}:${clientSecret}`).toString('base64'),
          'Content-Type': 'application/x-www-form-urlencoded',
        },
      },
      (text) => {
        const o = JSON.parse(text) as Record<string, unknown>;
        if (typeof o.access_token !== 'string' || typeof o.refresh_token !== 'string') throw new Error('token response without access_token/refresh_token');
        return { accessToken: o.access_token, refreshToken: o.refresh_token };
      },
      {
        policy: this.config.retry ?? DEFAULT_RETRY,
        stats: this.config.stats,
        hooks: {
          context: { user: this.humanId },
          onStatus: async (result) => {
            throw new EtlError(
              'AUTH_EXPIRED',
              `user ${this.humanId}: refreshing the token failed (HTTP ${result.status}, ${redactSecrets(summarizeBody(result.text), secrets)}); re-authorise this user`,
              { user: this.humanId, status: result.status },
            );
          },
        },
      },
    );
    this.config.log.info('access token refreshed', { user: this.humanId });
    return value;
  }
}
