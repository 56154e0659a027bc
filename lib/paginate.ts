// A paginated source is a paginator object (first request, next request from the last
// page, or done) driven by one loop with the guards every paginator needs: a request cap,
// an error when a next link repeats, and a stop on an empty page.
import { EtlError, redactUrl } from './errors.js';

export interface Paginator<P> {
  /** URL of the first page. */
  first(): string;
  /** URL of the page after `page` (fetched from `url`), or null when done. */
  next(page: P, url: string): string | null;
  /** True when a page holds no records; pagination stops there. */
  isEmpty(page: P): boolean;
}

export interface PaginateOptions {
  /** Most requests one pagination may make. */
  maxRequests: number;
  context?: Record<string, string | number>;
}

/**
 * The identity of a page URL for loop detection: the same query in another order is the
 * same page (a server that only shuffles its parameters is not advancing).
 */
export function pageKey(url: string): string {
  try {
    const u = new URL(url);
    u.hash = '';
    u.searchParams.sort();
    return u.toString();
  } catch {
    return url;
  }
}

export async function* paginate<P>(
  paginator: Paginator<P>,
  fetchPage: (url: string, index: number) => Promise<P>,
  options: PaginateOptions,
): AsyncGenerator<P> {
  const seen = new Set<string>();
  let url: string | null = paginator.first();
  let index = 0;
  while (url !== null) {
    const key = pageKey(url);
    if (seen.has(key)) {
      throw new EtlError('PAGINATION', `loop detected: the next link repeats ${redactUrl(url)} (page ${index + 1}); refusing to fetch it again`, { ...options.context, page: index });
    }
    if (index >= options.maxRequests) {
      throw new EtlError('PAGINATION', `stopped after ${index} pages: more than the cap of ${options.maxRequests} requests`, { ...options.context, page: index });
    }
    seen.add(key);
    const page: P = await fetchPage(url, index);
    index++;
    if (paginator.isEmpty(page)) return;
    yield page;
    url = paginator.next(page, url);
  }
}
