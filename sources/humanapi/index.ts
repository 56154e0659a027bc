// Human API batch source (API-REFERENCE.md §B.2–B.4): `/v1/apps/{clientId}/users/{type}` over
// consecutive updated_since/updated_before windows of at most 31 days, each paged by the
// `Link: <…>; rel="next"` header and cross-checked against X-Total-Count. Bodies are validated
// here (an array of records), and so is each record (types.ts): one that fails is handed on as
// Rejected, with its reason, and the rest of the page lands.
import { EtlError, redactUrl } from '../../lib/errors.js';
import { resolveNext, type Headers, type HttpResult } from '../../lib/http.js';
import { paginate, type Paginator } from '../../lib/paginate.js';
import type { Checked } from '../../lib/validate.js';
import type { HumanApiClient } from './client.js';
import { batchRecordChecker, type HumanApiRecord } from './types.js';

export { HumanApiClient, retryAfterMs } from './client.js';
export type { HumanApiClientConfig } from './client.js';
export { HUMANAPI_BATCH_TYPES, batchRecordChecker } from './types.js';
export type { HumanApiBatchType, HumanApiRecord, RawBloodPressure, RawHumanActivity, RawHumanReading, RawHumanSummary } from './types.js';

const DAY_MS = 86_400_000;
/** One batch query may span at most 31 days (§B.3). */
export const MAX_WINDOW_MS = 31 * DAY_MS;
/** Human API's largest page (§B.3); also our default. */
export const MAX_PAGE_SIZE = 500;

/** An updated_since/updated_before window: [since, before) in epoch ms, whole seconds. */
export interface BatchWindow {
  since: number;
  before: number;
}

/** `YYYYMMDDTHHmmssZ` (UTC), the batch filter format. */
export function formatHumanTime(ms: number): string {
  if (!Number.isInteger(ms) || ms % 1000 !== 0) throw new Error(`batch filter times are whole seconds, got ${ms}`);
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.000Z$/, 'Z');
}

export function describeWindow(w: BatchWindow): string {
  return `${new Date(w.since).toISOString()} .. ${new Date(w.before).toISOString()}`;
}

/** Consecutive windows of at most `maxMs` from `since` up to `before` (empty when since ≥ before). */
export function planWindows(since: number, before: number, maxMs = MAX_WINDOW_MS): BatchWindow[] {
  for (const [name, v] of [['since', since], ['before', before]] as const) {
    if (!Number.isInteger(v) || v % 1000 !== 0) throw new Error(`window ${name} must be whole seconds, got ${v}`);
  }
  if (maxMs < 1000 || maxMs > MAX_WINDOW_MS) throw new Error(`window length must be 1 s .. 31 days, got ${maxMs} ms`);
  const out: BatchWindow[] = [];
  for (let start = since; start < before; start += maxMs) out.push({ since: start, before: Math.min(before, start + maxMs) });
  return out;
}

/** The query of a window's first page. Never without updated_since, never wider than 31 days. */
export function windowQuery(w: BatchWindow, pageSize: number): URLSearchParams {
  if (!(w.since < w.before) || w.before - w.since > MAX_WINDOW_MS) {
    throw new EtlError('USAGE', `internal: refusing a batch window of ${(w.before - w.since) / 1000} s (must be 1 s .. 31 days): ${describeWindow(w)}`);
  }
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    throw new EtlError('USAGE', `Human API page size must be 1..${MAX_PAGE_SIZE}, got ${pageSize}`);
  }
  return new URLSearchParams({ updated_since: formatHumanTime(w.since), updated_before: formatHumanTime(w.before), limit: String(pageSize) });
}

/**
 * Parses an RFC 8288 Link header into rel → target (the first target of each rel).
 * Targets may hold commas and semicolons, so the header is split on `<…>` groups, not on commas.
 */
export function parseLinkHeader(header: string | null): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  let i = 0;
  while (i < header.length) {
    const open = header.indexOf('<', i);
    if (open < 0) break;
    const close = header.indexOf('>', open + 1);
    if (close < 0) break;
    const target = header.slice(open + 1, close).trim();
    // Parameters run to the next comma outside quotes.
    let j = close + 1;
    let quoted = false;
    while (j < header.length && (quoted || header[j] !== ',')) {
      if (header[j] === '"') quoted = !quoted;
      j++;
    }
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;\s]+))/i.exec(header.slice(close + 1, j));
    for (const name of (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/).filter(Boolean)) {
      if (!out.has(name)) out.set(name, target);
    }
    i = j + 1;
  }
  return out;
}

export interface BatchPage {
  /** Each record validated on its own. */
  records: Checked<HumanApiRecord>[];
  /** X-Total-Count: records in the whole window; null when the server sent none. */
  total: number | null;
  /** rel="next" as sent (unresolved), or null on the last page. */
  next: string | null;
}

/** A batch page: a JSON array body plus the Link and X-Total-Count headers. Throws when malformed (then it is fetched again). */
export function parseBatchPage(text: string, headers: Headers, check: (raw: unknown) => Checked<HumanApiRecord>): BatchPage {
  const body: unknown = JSON.parse(text);
  if (!Array.isArray(body)) throw new Error('batch body is not a JSON array of records');
  const totalText = headers.get('x-total-count');
  let total: number | null = null;
  if (totalText !== null) {
    if (!/^\s*\d+\s*$/.test(totalText)) throw new Error(`X-Total-Count "${totalText.slice(0, 40)}" is not a whole number`);
    total = Number(totalText);
  }
  return { records: body.map(check), total, next: parseLinkHeader(headers.get('link')).get('next') ?? null };
}

/**
 * The paginator of one batch window: the window's first URL, then each page's rel="next"
 * resolved against the API base. A next link to another origin is refused (the App Key goes
 * with every request), userinfo in it is dropped (auth travels in the header), and a next link
 * that changes or drops the window is refused (no query without updated_since, none wider).
 */
export function batchPaginator(client: HumanApiClient, type: string, w: BatchWindow, pageSize: number): Paginator<BatchPage> {
  const first = client.batchUrl(type, windowQuery(w, pageSize));
  const expected = new URL(first).searchParams;
  const context = { stream: type, window: describeWindow(w) };
  return {
    first: () => first,
    next: (page, url) => {
      if (page.next === null) return null;
      const resolved = new URL(resolveNext(page.next, url, context));
      resolved.username = '';
      resolved.password = '';
      for (const key of ['updated_since', 'updated_before'] as const) {
        if (resolved.searchParams.get(key) !== expected.get(key)) {
          throw new EtlError(
            'PAGINATION',
            `Human API's next link for ${type} changed ${key} (${String(resolved.searchParams.get(key))}, expected ${String(expected.get(key))}); refusing to follow ${redactUrl(resolved)}`,
            context,
          );
        }
      }
      return resolved.toString();
    },
    isEmpty: (page) => page.records.length === 0,
  };
}

export interface BatchPagesOptions {
  /** Records per page, 1..500 (default 500). */
  pageSize?: number;
  /** Most requests for one window (guard against a server that never ends). */
  maxPages?: number;
}

export interface FetchedPage extends BatchPage {
  /** 0-based page number within the window. */
  index: number;
  /** The page URL, credentials removed. */
  url: string;
}

/**
 * Yields the pages of one window in order. Once the last page is done (no rel="next", or an
 * empty page), the records read must equal X-Total-Count; so must every page's count agree with
 * the first one. Either mismatch means the data moved under offset paging (records added,
 * deleted or re-updated mid-window): it fails loudly, and the window is fetched again next run.
 */
export async function* batchPages(client: HumanApiClient, type: string, w: BatchWindow, options: BatchPagesOptions = {}): AsyncGenerator<FetchedPage> {
  const pageSize = options.pageSize ?? MAX_PAGE_SIZE;
  const context = { stream: type, window: describeWindow(w) };
  let total: number | null | undefined;
  let read = 0;
  let pages = 0;
  const check = batchRecordChecker(type);
  const fetchPage = async (url: string, index: number): Promise<FetchedPage> => {
    const { value } = await client.get(url, (text: string, result: HttpResult) => parseBatchPage(text, result.headers, check), type);
    pages++;
    if (total === undefined) total = value.total;
    else if (value.total !== total) {
      throw new EtlError(
        'PAGINATION',
        `Human API's X-Total-Count for ${type} ${describeWindow(w)} changed from ${String(total)} to ${String(value.total)} on page ${index + 1}: records changed while paging; the watermark stays before this window, so the next run fetches it again`,
        { ...context, page: index },
      );
    }
    read += value.records.length;
    if (total !== null && read > total) {
      throw new EtlError(
        'PAGINATION',
        `Human API sent more ${type} records than X-Total-Count says (${read} > ${total}) for ${describeWindow(w)} by page ${index + 1}; the watermark stays before this window, so the next run fetches it again`,
        { ...context, page: index },
      );
    }
    return { ...value, index, url: redactUrl(url) };
  };
  const paginator = batchPaginator(client, type, w, pageSize);
  try {
    for await (const page of paginate<FetchedPage>(paginator, fetchPage, { maxRequests: options.maxPages ?? 10_000, context })) yield page;
  } catch (err) {
    throw client.scrub(err);
  }
  if (typeof total === 'number' && read !== total) {
    throw new EtlError(
      'PAGINATION',
      `Human API's X-Total-Count says ${total} ${type} records for ${describeWindow(w)} but ${pages} page(s) held ${read}: records changed while paging or the server pages wrongly; the watermark stays before this window, so the next run fetches it again`,
      { ...context, read, total },
    );
  }
}
