// The paginator loop and next-link resolution, offline: the guards every paginator needs
// (loop, empty page, request cap, cross-origin next), and the Fitbit activity-list paginator
// driven over the real captured pages (Fitbit.NET samples, UTF-8 BOM and all).
import test from 'ava';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtlError } from '../lib/errors.js';
import { HttpStats, resolveNext } from '../lib/http.js';
import { silentLogger } from '../lib/log.js';
import { paginate, pageKey, type Paginator } from '../lib/paginate.js';
import { FitbitSession, activityListPaginator, parseActivityPage, type ActivityPage } from '../sources/fitbit/index.js';
import { FITBIT_RATE_DEFAULTS } from '../sources/fitbit/rate-limit.js';
import { UsersFile } from '../sources/fitbit/users.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const samples = path.resolve(here, '..', 'fixtures', 'data', 'fitbit');

interface Page {
  items: number[];
  next: string | null;
}

/** A paginator over an in-memory site: url → page. */
function site(pages: Record<string, Page>, first = 'https://api.example/p1'): { paginator: Paginator<Page>; fetched: string[]; fetchPage: (url: string) => Promise<Page> } {
  const fetched: string[] = [];
  return {
    paginator: { first: () => first, next: (p) => p.next, isEmpty: (p) => p.items.length === 0 },
    fetched,
    fetchPage: async (url) => {
      fetched.push(url);
      const page = pages[url];
      if (!page) throw new Error(`no page ${url}`);
      return page;
    },
  };
}

async function collect<P>(gen: AsyncGenerator<P>): Promise<{ pages: P[]; error?: unknown }> {
  const pages: P[] = [];
  try {
    for await (const p of gen) pages.push(p);
    return { pages };
  } catch (error) {
    return { pages, error };
  }
}

test('follows next links until done, one request per page, in order', async (t) => {
  const s = site({
    'https://api.example/p1': { items: [1, 2], next: 'https://api.example/p2' },
    'https://api.example/p2': { items: [3], next: 'https://api.example/p3' },
    'https://api.example/p3': { items: [4, 5], next: null },
  });
  const { pages, error } = await collect(paginate(s.paginator, s.fetchPage, { maxRequests: 10 }));
  t.is(error, undefined);
  t.deepEqual(pages.flatMap((p) => p.items), [1, 2, 3, 4, 5]);
  t.deepEqual(s.fetched, ['https://api.example/p1', 'https://api.example/p2', 'https://api.example/p3']);
});

test('a next link that repeats an earlier page is an error, not a loop; pages before it were yielded', async (t) => {
  const s = site({
    'https://api.example/p1': { items: [1], next: 'https://api.example/p2?offset=1&limit=1' },
    // Same page, parameters shuffled: still the same page.
    'https://api.example/p2?offset=1&limit=1': { items: [2], next: 'https://api.example/p2?limit=1&offset=1' },
  });
  const { pages, error } = await collect(paginate(s.paginator, s.fetchPage, { maxRequests: 100, context: { stream: 'x' } }));
  t.deepEqual(pages.map((p) => p.items[0]), [1, 2]);
  t.true(error instanceof EtlError);
  t.is((error as EtlError).code, 'PAGINATION');
  t.regex((error as EtlError).message, /loop detected/);
  t.is((error as EtlError).context.stream, 'x');
  t.is(s.fetched.length, 2, 'the repeated page was not fetched again');
});

test('an empty page ends pagination even when it carries a next link', async (t) => {
  const s = site({
    'https://api.example/p1': { items: [1], next: 'https://api.example/p2' },
    'https://api.example/p2': { items: [], next: 'https://api.example/p3' },
  });
  const { pages, error } = await collect(paginate(s.paginator, s.fetchPage, { maxRequests: 10 }));
  t.is(error, undefined);
  t.deepEqual(pages.map((p) => p.items), [[1]]);
  t.deepEqual(s.fetched, ['https://api.example/p1', 'https://api.example/p2']);
});

test('the request cap stops a pagination that never ends', async (t) => {
  let n = 0;
  const paginator: Paginator<Page> = { first: () => 'https://api.example/0', next: (p) => p.next, isEmpty: () => false };
  const fetchPage = async (): Promise<Page> => {
    n++;
    return { items: [n], next: `https://api.example/${n}` };
  };
  const { pages, error } = await collect(paginate(paginator, fetchPage, { maxRequests: 5 }));
  t.is(pages.length, 5);
  t.is(n, 5);
  t.is((error as EtlError).code, 'PAGINATION');
  t.regex((error as EtlError).message, /cap of 5/);
});

test('pageKey ignores parameter order and fragments, nothing else', (t) => {
  t.is(pageKey('https://a.example/x?b=2&a=1#f'), pageKey('https://a.example/x?a=1&b=2'));
  t.not(pageKey('https://a.example/x?a=1&b=2'), pageKey('https://a.example/x?a=1&b=3'));
  t.not(pageKey('https://a.example/x?a=1'), pageKey('https://a.example/y?a=1'));
});

test('resolveNext: relative links resolve on the base; another origin is refused; credentials are stripped', (t) => {
  const base = 'http://127.0.0.1:8080';
  t.is(resolveNext('/1/user/-/activities/list.json?offset=100', base), 'http://127.0.0.1:8080/1/user/-/activities/list.json?offset=100');
  t.is(resolveNext('http://127.0.0.1:8080/next', base), 'http://127.0.0.1:8080/next');
  for (const other of ['http://127.0.0.1:8081/next', 'https://127.0.0.1:8080/next', 'http://evil.example/next', 'javascript:alert(1)']) {
    const err = t.throws(() => resolveNext(other, base, { user: 'u1' }));
    t.true(err instanceof EtlError, other);
    t.is((err as EtlError).code, 'PAGINATION');
    t.is((err as EtlError).context.user, 'u1');
  }
  t.is(resolveNext('http://someone:pw@127.0.0.1:8080/next', base), 'http://127.0.0.1:8080/next');
  const secretNext = t.throws(() => resolveNext('http://evil.example/next?access_token=SECRET123', base));
  t.false(secretNext!.message.includes('SECRET123'));
  t.false(JSON.stringify((secretNext as EtlError).context).includes('SECRET123'));
});

// ---------------------------------------------------------------- the Fitbit activity-list paginator

async function offlineSession(t: { teardown(fn: () => Promise<void>): void }, baseUrl: string): Promise<FitbitSession> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-pag-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'users.json');
  await fs.writeFile(file, JSON.stringify([{ userId: '-', humanId: 'h1', accessToken: 'at-offline-1', refreshToken: 'rt-offline-1' }]));
  const users = await UsersFile.load(file);
  return new FitbitSession({ baseUrl, rateLimit: FITBIT_RATE_DEFAULTS, stats: new HttpStats(), log: silentLogger }, users, 'h1', '-');
}

test('activity list: first page asks afterDate + sort=asc + limit=100 + offset=0, then follows the real next link verbatim until ""', async (t) => {
  const session = await offlineSession(t, 'https://api.fitbit.com');
  const paginator = activityListPaginator(session, '2017-01-01');
  const first = new URL(paginator.first());
  t.is(first.pathname, '/1/user/-/activities/list.json');
  t.deepEqual(Object.fromEntries(first.searchParams), { afterDate: '2017-01-01', sort: 'asc', limit: '100', offset: '0' });

  // Real captured pages (BOM stripped as the HTTP layer does): page 1 links to page 2.
  const read = (name: string): ActivityPage => parseActivityPage(readFileSync(path.join(samples, name), 'utf8').replace(/^\uFEFF/, ''));
  const page1 = read('GetActivityLogsList.json');
  const page2 = read('GetActivityLogsList2.json');
  t.is(page1.activities.length, 20);
  t.true(page1.next.startsWith('https://api.fitbit.com/'));
  t.is(paginator.next(page1, first.toString()), page1.next, 'followed verbatim');
  const last = { ...page2, next: '' };
  t.is(paginator.next(last, page1.next), null);
  t.false(paginator.isEmpty(page1));
  t.true(paginator.isEmpty({ activities: [], next: 'https://api.fitbit.com/x' }));

  // A next link to another origin is refused (the bearer token must not travel there).
  const evil = { ...page1, next: 'https://fitbit.example.net/1/user/-/activities/list.json?offset=20' };
  const err = t.throws(() => paginator.next(evil, first.toString()));
  t.is((err as EtlError).code, 'PAGINATION');
  t.regex(err!.message, /another origin/);
});

test('activity list parsing keeps 64-bit logIds exact, rejects a bad record on its own and bodies of the wrong shape without retrying', (t) => {
  const big = '18446744073709551615';
  const page = parseActivityPage(`{"activities":[{"logId": ${big},"activityName":"Walk","startTime":"2017-01-01T10:00:00.000Z","duration":1},{"activityName":"Walk"}],"pagination":{"next":""}}`);
  const [first, second] = page.activities;
  t.true(first!.ok && first!.value.logId === big);
  // A record without a logId is rejected with its reason; the record before it still lands.
  t.deepEqual(second, { ok: false, reason: 'logId is missing', raw: { activityName: 'Walk' } });
  const bodies: Array<[string, RegExp]> = [
    ['{"activities":{},"pagination":{"next":""}}', /activities: expected Array, received Object/],
    ['{"activities":[],"pagination":{}}', /pagination\.next is missing/],
    ['{"activities":[]}', /pagination is missing/],
  ];
  for (const [body, reason] of bodies) {
    const err = t.throws(() => parseActivityPage(body));
    t.is((err as EtlError).code, 'BAD_RESPONSE', body);
    t.regex(err!.message, reason);
  }
  // Not JSON at all (cut short): a plain error, which the HTTP layer retries.
  const cut = t.throws(() => parseActivityPage('{"activities":[{"logId":1'));
  t.false(cut instanceof EtlError);
});
