// The Human API batch source on its own: window planning, the Link header of the recorded
// pages, and the paginator's guards against small loopback servers that misbehave on purpose
// (another origin, a repeated next link, a next link that drops the window, X-Total-Count
// that does not add up, a bad App Key, a 5xx).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EtlError } from '../lib/errors.js';
import { HttpStats } from '../lib/http.js';
import { silentLogger } from '../lib/log.js';
import {
  HumanApiClient,
  MAX_WINDOW_MS,
  batchPages,
  formatHumanTime,
  parseLinkHeader,
  planWindows,
  type BatchWindow,
} from '../sources/humanapi/index.js';

const DAY = 86_400_000;
const APP_KEY = 'secret-app-key-1234';
const FAST_RETRY = { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 5_000 };
const CASSETTE = new URL('../../shared/data/humanapi-samples/recorded-pagination/get_activities_fetch_all.yml', import.meta.url);

test('planWindows: 95 days are 31 + 31 + 31 + 2, consecutive, never wider than 31 days', (t) => {
  const since = Date.UTC(2016, 1, 7);
  const windows = planWindows(since, since + 95 * DAY);
  t.deepEqual(windows.map((w) => (w.before - w.since) / DAY), [31, 31, 31, 2]);
  t.is(windows[0]!.since, since);
  t.is(windows[3]!.before, since + 95 * DAY);
  for (let i = 1; i < windows.length; i++) t.is(windows[i]!.since, windows[i - 1]!.before);
  t.deepEqual(planWindows(since, since), []);
  t.deepEqual(planWindows(since, since - 1000), []);
  // Odd lengths down to one second.
  for (const seconds of [1, 59, 86_399, 31 * 86_400, 31 * 86_400 + 1, 400 * 86_400 + 7]) {
    const ws = planWindows(since, since + seconds * 1000);
    t.is(ws.reduce((n, w) => n + (w.before - w.since), 0), seconds * 1000);
    t.true(ws.every((w) => w.before - w.since <= MAX_WINDOW_MS && w.before > w.since));
    t.is(ws.length, Math.ceil(seconds / (31 * 86_400)));
  }
  t.throws(() => planWindows(since + 1, since + DAY), { message: /whole seconds/ });
});

test('formatHumanTime is YYYYMMDDTHHmmssZ in UTC', (t) => {
  t.is(formatHumanTime(Date.UTC(2015, 2, 23, 0, 0, 0)), '20150323T000000Z');
  t.is(formatHumanTime(Date.UTC(2016, 11, 31, 23, 59, 59)), '20161231T235959Z');
});

test('parseLinkHeader reads the recorded Link headers (next, prev, last, first)', (t) => {
  // The YAML cassette folds each Link header over several lines; unfold them.
  const lines = readFileSync(CASSETTE, 'utf8').split('\n');
  const headers: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s+Link:$/.test(lines[i]!)) continue;
    const parts: string[] = [];
    for (let j = i + 1; j < lines.length && /^\s+(- )?[<r]/.test(lines[j]!); j++) parts.push(lines[j]!.trim().replace(/^- /, ''));
    headers.push(parts.join(' '));
  }
  t.is(headers.length, 5, 'five recorded pages');
  const rels = ['next', 'prev', 'last', 'first'];
  for (const header of headers) {
    const links = parseLinkHeader(header);
    for (const rel of rels) {
      const expected = new RegExp(`<([^>]+)>;\\s*rel="${rel}"`).exec(header)?.[1];
      t.is(links.get(rel), expected, `${rel} of ${header}`);
    }
  }
  t.is(parseLinkHeader(headers[0]!).get('next'), 'https://api.humanapi.co/v1/human/activities?access_token=token&offset=50');
  t.false(parseLinkHeader(headers[4]!).has('next'), 'the last page has no next');
  // Commas and semicolons inside a target or a quoted parameter do not split it.
  const odd = parseLinkHeader('<https://x.test/a?q=1,2;3>; title="a, b"; rel="prev next", </b>; rel=last');
  t.is(odd.get('next'), 'https://x.test/a?q=1,2;3');
  t.is(odd.get('prev'), 'https://x.test/a?q=1,2;3');
  t.is(odd.get('last'), '/b');
  t.is(parseLinkHeader(null).size, 0);
});

// ------------------------------------------------------------------ small servers

interface Served {
  url: string;
  requests: Array<{ path: string; authorization: string | undefined }>;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, url: URL, origin: string, index: number) => { status?: number; body: unknown; headers?: Record<string, string> };

async function serve(handler: Handler): Promise<Served> {
  const requests: Served['requests'] = [];
  let origin = '';
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', origin);
    requests.push({ path: url.pathname + url.search, authorization: req.headers.authorization });
    const reply = handler(req, url, origin, requests.length - 1);
    const body = Buffer.from(JSON.stringify(reply.body));
    res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', 'content-length': String(body.length), ...reply.headers });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: origin,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function client(base: string, stats = new HttpStats()): HumanApiClient {
  return new HumanApiClient({ baseUrl: base, clientId: 'app-1', appKey: APP_KEY, stats, log: silentLogger, retry: FAST_RETRY });
}

const WINDOW: BatchWindow = { since: Date.UTC(2016, 0, 1), before: Date.UTC(2016, 0, 20) };

/** The records of every page as the server sent them, in order (each one checked or rejected by the source). */
async function drain(pages: AsyncIterable<{ records: Array<{ raw: unknown }> }>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const p of pages) out.push(...p.records.map((r) => r.raw));
  return out;
}

function recordsOf(n: number, from = 0): Array<{ id: string }> {
  return Array.from({ length: n }, (_, i) => ({ id: `r${from + i}` }));
}

/** A next link keeping the query, with another offset. */
function nextLink(origin: string, url: URL, offset: number): string {
  const q = new URLSearchParams(url.search);
  q.set('offset', String(offset));
  return `<${origin}${url.pathname}?${q.toString()}>; rel="next"`;
}

function assertNoKey(t: { false(v: boolean, m?: string): void }, err: unknown): void {
  const e = err as EtlError;
  const text = `${e.message} ${JSON.stringify(e.context)}`;
  t.false(text.includes(APP_KEY), 'the App Key never appears');
  t.false(text.includes(Buffer.from(`${APP_KEY}:`).toString('base64')), 'nor its basic-auth form');
  t.false(/\n/.test(e.message), 'one line');
}

test('batchPages: follows rel="next" with the App Key as basic-auth user, window and limit on every request', async (t) => {
  const all = recordsOf(7);
  const api = await serve((_req, url, origin) => {
    const offset = Number(url.searchParams.get('offset') ?? 0);
    const limit = Number(url.searchParams.get('limit'));
    const page = all.slice(offset, offset + limit);
    return { body: page, headers: { 'x-total-count': String(all.length), ...(offset + limit < all.length ? { link: nextLink(origin, url, offset + limit) } : {}) } };
  });
  t.teardown(() => api.close());
  const got = await drain(batchPages(client(api.url), 'heart_rates', WINDOW, { pageSize: 3 }));
  t.deepEqual(got, all);
  t.is(api.requests.length, 3);
  for (const r of api.requests) {
    t.is(r.authorization, 'Basic ' + Buffer.from(`${APP_KEY}:`).toString('base64'));
    const q = new URL(r.path, api.url).searchParams;
    t.is(q.get('updated_since'), '20160101T000000Z');
    t.is(q.get('updated_before'), '20160120T000000Z');
    t.is(q.get('limit'), '3');
    t.true(r.path.startsWith('/v1/apps/app-1/users/heart_rates?'));
  }
});

test('batchPages: each record is checked on its own; one that fails is rejected with its reason and the rest of the page lands', async (t) => {
  const good = (i: number): Record<string, unknown> => ({ id: `r${i}`, humanId: 'h-1', timestamp: '2016-01-02T10:00:00.000Z', value: 60 + i, unit: 'bpm' });
  const sent = [good(0), { ...good(1), value: 'fast' }, { ...good(2), humanId: undefined }, good(3)];
  const api = await serve(() => ({ body: sent, headers: { 'x-total-count': String(sent.length) } }));
  t.teardown(() => api.close());
  const records = [];
  for await (const page of batchPages(client(api.url), 'heart_rates', WINDOW)) records.push(...page.records);
  t.deepEqual(records.map((r) => (r.ok ? 'ok' : r.reason)), ['ok', 'value: expected a number, received "fast"', 'humanId is missing', 'ok']);
  t.deepEqual(records.map((r) => r.raw), JSON.parse(JSON.stringify(sent)));
  const first = records[0]!;
  t.true(first.ok && first.value.kind === 'reading' && first.value.record.value === 60);
});

test('batchPages: a next link to another origin is refused and nothing is sent there', async (t) => {
  const other = await serve(() => ({ body: [] }));
  const api = await serve((_req, url) => ({
    body: recordsOf(2),
    headers: { 'x-total-count': '4', link: nextLink(other.url.replace('127.0.0.1', 'localhost'), url, 2) },
  }));
  t.teardown(() => Promise.all([api.close(), other.close()]).then(() => undefined));
  const err = await t.throwsAsync(drain(batchPages(client(api.url), 'activities', WINDOW, { pageSize: 2 })), { instanceOf: EtlError });
  t.is(err?.code, 'PAGINATION');
  t.regex(err!.message, /another origin/);
  t.is(other.requests.length, 0);
  assertNoKey(t, err);
});

test('batchPages: userinfo in a next link is dropped, a key in its query is redacted from errors', async (t) => {
  const api = await serve((_req, url, origin, index) => {
    if (index === 0) {
      const q = new URLSearchParams(url.search);
      q.set('offset', '2');
      q.set('app_key', APP_KEY);
      const withUser = origin.replace('http://', `http://${APP_KEY}:@`);
      return { body: recordsOf(2), headers: { 'x-total-count': '4', link: `<${withUser}${url.pathname}?${q.toString()}>; rel="next"` } };
    }
    return { status: 500, body: { statusCode: 500, error: 'Internal Server Error', message: `boom ${APP_KEY}` } };
  });
  t.teardown(() => api.close());
  const err = await t.throwsAsync(drain(batchPages(client(api.url), 'activities', WINDOW, { pageSize: 2 })), { instanceOf: EtlError });
  t.is(err?.code, 'HTTP_RETRY_EXHAUSTED');
  t.is(api.requests.length, 1 + FAST_RETRY.maxAttempts, 'the 5xx page was retried');
  assertNoKey(t, err);
});

test('batchPages: a repeated next link is a loop, not an endless fetch', async (t) => {
  const api = await serve((_req, url, origin) => ({ body: recordsOf(2), headers: { 'x-total-count': '100', link: nextLink(origin, url, 2) } }));
  t.teardown(() => api.close());
  const err = await t.throwsAsync(drain(batchPages(client(api.url), 'activities', WINDOW, { pageSize: 2 })), { instanceOf: EtlError });
  t.is(err?.code, 'PAGINATION');
  t.regex(err!.message, /loop detected/);
  t.is(api.requests.length, 2);
});

test('batchPages: a next link that drops or widens the window is never followed', async (t) => {
  for (const change of [(q: URLSearchParams) => q.delete('updated_since'), (q: URLSearchParams) => q.set('updated_before', '20160301T000000Z')]) {
    const api = await serve((_req, url, origin) => {
      const q = new URLSearchParams(url.search);
      change(q);
      q.set('offset', '2');
      return { body: recordsOf(2), headers: { 'x-total-count': '4', link: `<${origin}${url.pathname}?${q.toString()}>; rel="next"` } };
    });
    t.teardown(() => api.close());
    const err = await t.throwsAsync(drain(batchPages(client(api.url), 'activities', WINDOW, { pageSize: 2 })), { instanceOf: EtlError });
    t.is(err?.code, 'PAGINATION');
    t.regex(err!.message, /changed updated_(since|before)/);
    t.is(api.requests.length, 1, 'the changed link was not requested');
  }
});

test('batchPages: X-Total-Count that does not match the records read fails loudly', async (t) => {
  // Fewer records than announced (a record vanished between pages), more than announced, and a
  // total that changes from one page to the next.
  const cases: Array<{ name: string; pages: Array<{ n: number; total: string }>; message: RegExp }> = [
    { name: 'short', pages: [{ n: 2, total: '5' }, { n: 2, total: '5' }], message: /says 5 .* held 4/ },
    { name: 'long', pages: [{ n: 2, total: '3' }, { n: 2, total: '3' }], message: /more activities records than X-Total-Count says \(4 > 3\)/ },
    { name: 'moving', pages: [{ n: 2, total: '4' }, { n: 2, total: '5' }], message: /changed from 4 to 5/ },
    { name: 'empty page before the end', pages: [{ n: 2, total: '4' }, { n: 0, total: '4' }], message: /says 4 .* held 2/ },
  ];
  for (const c of cases) {
    const api = await serve((_req, url, origin, index) => {
      const p = c.pages[index]!;
      const more = index + 1 < c.pages.length;
      return { body: recordsOf(p.n, index * 10), headers: { 'x-total-count': p.total, ...(more ? { link: nextLink(origin, url, (index + 1) * 2) } : {}) } };
    });
    t.teardown(() => api.close());
    const err = await t.throwsAsync(drain(batchPages(client(api.url), 'activities', WINDOW, { pageSize: 2 })), { instanceOf: EtlError }, c.name);
    t.is(err?.code, 'PAGINATION', c.name);
    t.regex(err!.message, c.message, c.name);
  }
});

test('batchPages: 401 says to fix HUMANAPI_APP_KEY in one line without the key; 400 and 404 say what to check', async (t) => {
  const statuses = [
    { status: 401, code: 'AUTH_INVALID', message: /HUMANAPI_APP_KEY/ },
    { status: 400, code: 'HTTP_CLIENT', message: /at most 31 days/ },
    { status: 404, code: 'HTTP_CLIENT', message: /HUMANAPI_CLIENT_ID/ },
  ] as const;
  for (const s of statuses) {
    const api = await serve(() => ({ status: s.status, body: { statusCode: s.status, error: 'x', message: `no\nway ${APP_KEY}` } }));
    t.teardown(() => api.close());
    const err = await t.throwsAsync(drain(batchPages(client(api.url), 'activities', WINDOW)), { instanceOf: EtlError });
    t.is(err?.code, s.code);
    t.regex(err!.message, s.message);
    assertNoKey(t, err);
    t.is(api.requests.length, 1, `${s.status} is not retried`);
  }
});

test('batchPages: 429 waits for Retry-After and asks again', async (t) => {
  const stats = new HttpStats();
  const api = await serve((_req, _url, _origin, index) =>
    index === 0 ? { status: 429, body: { message: 'slow down' }, headers: { 'retry-after': '0' } as Record<string, string> } : { body: recordsOf(1), headers: { 'x-total-count': '1' } },
  );
  t.teardown(() => api.close());
  t.deepEqual(await drain(batchPages(client(api.url, stats), 'activities', WINDOW)), recordsOf(1));
  t.is(stats.rateLimited, 1);
  t.is(api.requests.length, 2);
});

test('a window wider than 31 days or a page size over 500 is refused before any request', async (t) => {
  const api = await serve(() => ({ body: [] }));
  t.teardown(() => api.close());
  const wide = { since: WINDOW.since, before: WINDOW.since + MAX_WINDOW_MS + 1000 };
  await t.throwsAsync(drain(batchPages(client(api.url), 'activities', wide)), { message: /refusing a batch window/ });
  await t.throwsAsync(drain(batchPages(client(api.url), 'activities', WINDOW, { pageSize: 501 })), { message: /page size/ });
  t.is(api.requests.length, 0);
});
