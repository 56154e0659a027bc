// The Human API application-level connection (API-REFERENCE.md §B.1, §B.9): the App Key as
// the basic-auth user with an empty password, and what Human API's statuses mean. The App Key
// never appears in a message: errors pass through `scrub`, URLs through redactUrl.
import { EtlError, redactSecrets, redactUrl } from '../../lib/errors.js';
import { DEFAULT_RETRY, HttpStats, requestJson, sleep, type HttpResult, type RetryPolicy } from '../../lib/http.js';
import type { Logger } from '../../lib/log.js';

export interface HumanApiClientConfig {
  /** HUMANAPI_API_URL, e.g. https://api.humanapi.co */
  baseUrl: string;
  /** HUMANAPI_CLIENT_ID */
  clientId: string;
  /** HUMANAPI_APP_KEY */
  appKey: string;
  retry?: RetryPolicy;
  stats: HttpStats;
  log: Logger;
  /** Longest wait honoured for one 429's Retry-After (default 60 s). */
  maxRateLimitWaitMs?: number;
}

/** The message a Human API error body carries (`{statusCode, error, message}`), or the start of the text. */
function bodyDetail(text: string): string {
  try {
    const body = JSON.parse(text) as unknown;
    if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
      const o = body as Record<string, unknown>;
      const message = typeof o.message === 'string' ? o.message : typeof o.error === 'string' ? o.error : '';
      if (message) return message.replace(/\s+/g, ' ').slice(0, 200);
    }
  } catch {
    // not JSON: fall through
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

/** Retry-After in ms (seconds or an HTTP date), or null. */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export class HumanApiClient {
  private readonly config: HumanApiClientConfig;
  private readonly authorization: string;

  constructor(config: HumanApiClientConfig) {
    this.config = config;
    this.authorization = 'Basic ' + Buffer.from(`${config.appKey}:`).toString('base64');
  }

  get base(): string {
    return this.config.baseUrl;
  }

  get clientId(): string {
    return this.config.clientId;
  }

  /** The batch endpoint of a data type: <base>/v1/apps/{clientId}/users/{type}?query */
  batchUrl(type: string, query: URLSearchParams): string {
    const base = this.config.baseUrl.endsWith('/') ? this.config.baseUrl : this.config.baseUrl + '/';
    const typePath = type.split('/').map(encodeURIComponent).join('/');
    const url = new URL(`v1/apps/${encodeURIComponent(this.config.clientId)}/users/${typePath}`, base);
    url.search = query.toString();
    // Credentials travel in the Authorization header only.
    url.username = '';
    url.password = '';
    return url.toString();
  }

  /** Removes the App Key from any text that may have come from a server or a URL. */
  redact(text: string): string {
    return redactSecrets(text, [this.config.appKey, Buffer.from(`${this.config.appKey}:`).toString('base64')]);
  }

  /** An error with the App Key removed from its message and context. */
  scrub(err: unknown): unknown {
    if (!(err instanceof EtlError)) return err;
    const context: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(err.context)) context[k] = typeof v === 'string' ? this.redact(v) : v;
    return new EtlError(err.code, this.redact(err.message).replace(/\s+/g, ' '), context);
  }

  /** GET one batch page; `parse` validates the body and may throw (then the page is fetched again). */
  async get<T>(url: string, parse: (text: string, result: HttpResult) => T, stream: string): Promise<{ value: T; result: HttpResult }> {
    let rateWaits = 0;
    try {
      return await requestJson<T>({ url }, parse, {
        policy: this.config.retry ?? DEFAULT_RETRY,
        stats: this.config.stats,
        hooks: {
          context: { stream },
          maxAgain: 20,
          before: async (spec) => ({ ...spec, headers: { ...spec.headers, Authorization: this.authorization, Accept: 'application/json' } }),
          onStatus: async (result) => {
            if (result.status === 429) {
              // Human API documents no rate limit; honour the server's Retry-After when it sends one.
              this.config.stats.rateLimited++;
              rateWaits++;
              const wait = Math.min(this.config.maxRateLimitWaitMs ?? 60_000, retryAfterMs(result.headers.get('retry-after')) ?? 1000 * 2 ** Math.min(rateWaits, 6));
              this.config.log.warn('Human API answered 429 Too Many Requests, waiting', { stream, waitSeconds: Math.round(wait / 1000) });
              await sleep(wait);
              return 'again';
            }
            throw this.statusError(result, stream);
          },
        },
      });
    } catch (err) {
      throw this.scrub(err);
    }
  }

  private statusError(result: HttpResult, stream: string): EtlError {
    const detail = this.redact(bodyDetail(result.text));
    const url = redactUrl(result.url);
    const context = { stream, url, status: result.status };
    const { clientId } = this.config;
    switch (result.status) {
      case 401:
        return new EtlError(
          'AUTH_INVALID',
          `Human API rejected the App Key (HTTP 401): set HUMANAPI_APP_KEY to the App Key of app ${clientId} (sent as the basic-auth user with an empty password)`,
          context,
        );
      case 403:
        return new EtlError(
          'AUTH_INVALID',
          `Human API refused batch access for ${stream} (HTTP 403: ${detail}): check that HUMANAPI_APP_KEY belongs to HUMANAPI_CLIENT_ID ${clientId} and that the app may run batch queries`,
          context,
        );
      case 404:
        return new EtlError(
          'HTTP_CLIENT',
          `Human API has no batch endpoint for ${stream} (HTTP 404: ${detail}): check HUMANAPI_CLIENT_ID (${clientId}), HUMANAPI_API_URL and the data type in --types`,
          context,
        );
      case 400:
        return new EtlError(
          'HTTP_CLIENT',
          `Human API rejected the ${stream} query ${url} (HTTP 400: ${detail}): batch windows must be at most 31 days with updated_since/updated_before as YYYYMMDDTHHmmssZ and limit ≤ 500; if the API now allows less, this ETL needs a smaller window`,
          context,
        );
      default:
        return new EtlError('HTTP_CLIENT', `Human API answered HTTP ${result.status} for ${stream} (${detail}) at ${url}`, context);
    }
  }
}
