// The Google Health source against small loopback servers that answer exactly the case under
// test: pages followed by pageToken past an empty page that carries a token, a repeated token
// refused, a bad record kept out while the rest of its page lands, a 429 pausing every request
// of the user, 401 refreshing once (the returned refresh token replaces the stored one before
// use), invalid_grant stopping the user with a message to re-consent.
import test from 'ava';
import { promises as fs } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HttpStats } from '../lib/http.js';
import { silentLogger } from '../lib/log.js';
import { UsersFile } from '../lib/users-file.js';
import { GoogleHealthSession, GoogleHealthShared, dataPointPages, fetchIdentity, type TokenStore } from '../sources/google-health/index.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function server(t: { teardown(fn: () => Promise<void>): void }, handler: Handler): Promise<{ url: string; seen: Array<{ at: number; path: string; auth: string }> }> {
  const seen: Array<{ at: number; path: string; auth: string }> = [];
  const s = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ at: Date.now(), path: req.url ?? '', auth: String(req.headers.authorization ?? '') });
      handler(req, Buffer.concat(chunks).toString('utf8'), res);
    });
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); }));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen };
}

const json = (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
};

const stepPoint = (minute: number, count: string | number): unknown => ({
  steps: { interval: { startTime: `2016-04-20T15:${String(minute).padStart(2, '0')}:00Z`, startUtcOffset: '-25200s', endTime: `2016-04-20T15:${String(minute + 1).padStart(2, '0')}:00Z`, endUtcOffset: '-25200s' }, count },
});

async function usersFile(t: { teardown(fn: () => Promise<void>): void }, entries: unknown[]): Promise<{ file: UsersFile; path: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ghsrc-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const p = path.join(dir, 'users.json');
  await fs.writeFile(p, JSON.stringify(entries));
  return { file: await UsersFile.load(p), path: p };
}

function store(file: UsersFile, index: number): TokenStore {
  return {
    current: () => {
      const f = file.fieldsOf(index);
      return { accessToken: typeof f['accessToken'] === 'string' ? f['accessToken'] : '', refreshToken: String(f['refreshToken']) };
    },
    rotate: (stale, refresh) => file.rotate(index, stale === '' ? undefined : stale, refresh),
  };
}

function session(url: string, tokens: TokenStore, limit = 300, windowMs = 60_000, shared = new GoogleHealthShared()): GoogleHealthSession {
  return new GoogleHealthSession(
    {
      baseUrl: url, tokenUrl: `${url}/token`, clientId: 'cid', clientSecret: 'client-secret-xyz',
      retry: { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 5_000 },
      rateLimit: { limit, windowMs, backoffMs: [50, 100] }, stats: new HttpStats(), log: silentLogger, shared,
    },
    tokens, 0, 'u1',
  );
}

const W = { from: '2016-04-20', to: '2016-04-21' };

test('pages: an empty page with a token is not the end; a bad record is kept out, the rest lands', async (t) => {
  const { url, seen } = await server(t, (req, _body, res) => {
    const token = new URL(req.url ?? '/', 'http://x').searchParams.get('pageToken');
    if (token === null) json(res, 200, { dataPoints: [stepPoint(3, '5'), stepPoint(2, 'five'), stepPoint(1, '0')], nextPageToken: 'a' });
    else if (token === 'a') json(res, 200, { dataPoints: [], nextPageToken: 'b' });
    else json(res, 200, { dataPoints: [stepPoint(0, 7)] });
  });
  const { file } = await usersFile(t, [{ provider: 'google-health', accessToken: 'at-1', refreshToken: 'rt-1' }]);
  const pages = [];
  for await (const p of dataPointPages(session(url, store(file, 0)), 'steps', W)) pages.push(p);
  t.is(seen.length, 3);
  t.regex(decodeURIComponent(seen[0]!.path), /dataPoints:reconcile\?filter=steps\.interval\.civil_start_time\+>=\+"2016-04-20"\+AND\+steps\.interval\.civil_start_time\+<\+"2016-04-21"&pageSize=10000/);
  t.deepEqual(pages.flatMap((p) => [...p.values.subarray(0, p.length)]), [5, 0, 7]);
  t.is(pages[0]!.invalid.length, 1);
  t.regex(pages[0]!.invalid[0]!.reason, /steps\.count/);
});

test('a repeated page token is a loop, refused', async (t) => {
  const { url } = await server(t, (_req, _body, res) => json(res, 200, { dataPoints: [stepPoint(1, '1')], nextPageToken: 'same' }));
  const { file } = await usersFile(t, [{ provider: 'google-health', accessToken: 'at-1', refreshToken: 'rt-1' }]);
  const err = await t.throwsAsync(async () => {
    for await (const _ of dataPointPages(session(url, store(file, 0)), 'steps', W)) void _;
  });
  t.regex(err!.message, /loop detected/);
});

test('a 429 pauses every request of the user until Retry-After, or a backoff when there is none', async (t) => {
  let n = 0;
  const { url, seen } = await server(t, (_req, _body, res) => {
    n++;
    if (n === 1) json(res, 429, { error: { code: 429, status: 'RESOURCE_EXHAUSTED', message: 'Quota exceeded' } }, { 'retry-after': '1' });
    else if (n === 3) json(res, 429, { error: { code: 429, status: 'RESOURCE_EXHAUSTED', message: 'Quota exceeded' } });
    else json(res, 200, { healthUserId: '7000000000000000001' });
  });
  const { file } = await usersFile(t, [{ provider: 'google-health', accessToken: 'at-1', refreshToken: 'rt-1' }]);
  const shared = new GoogleHealthShared();
  const a = session(url, store(file, 0), 300, 60_000, shared);
  const b = session(url, store(file, 0), 300, 60_000, shared); // another pipeline's session of the same user
  await Promise.all([fetchIdentity(a), b.request({ url: `${url}/v4/users/me/identity` }, (x) => x)]);
  t.is(seen.length, 4);
  t.true(seen[1]!.at - seen[0]!.at >= 990, `resumed after ${seen[1]!.at - seen[0]!.at} ms (Retry-After: 1)`);
  t.true(seen[3]!.at - seen[2]!.at >= 25, `resumed after ${seen[3]!.at - seen[2]!.at} ms (backoff)`);
});

test('the budget holds a sliding window: no window of the server sees more than the limit', async (t) => {
  const { url, seen } = await server(t, (_req, _body, res) => json(res, 200, { healthUserId: '7000000000000000001' }));
  const { file } = await usersFile(t, [{ provider: 'google-health', accessToken: 'at-1', refreshToken: 'rt-1' }]);
  const s = session(url, store(file, 0), 5, 300);
  for (let i = 0; i < 16; i++) await s.request({ url: `${url}/v4/users/me/identity` }, (x) => x);
  for (let i = 5; i < seen.length; i++) t.true(seen[i]!.at - seen[i - 5]!.at >= 300, `requests ${i - 5} and ${i}: ${seen[i]!.at - seen[i - 5]!.at} ms`);
  t.true(seen.at(-1)!.at - seen[0]!.at >= 900);
});

test('401 refreshes once: the new refresh token is in the users file before it is used; invalid_grant asks to re-consent', async (t) => {
  const forms: URLSearchParams[] = [];
  let grants = 0;
  const { url, seen } = await server(t, (req, body, res) => {
    if (req.url === '/token') {
      const form = new URLSearchParams(body);
      forms.push(form);
      if (form.get('refresh_token') === 'rt-1' && grants++ === 0) json(res, 200, { access_token: 'at-2', refresh_token: 'rt-2', expires_in: 3599 });
      else json(res, 400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
      return;
    }
    if (req.headers.authorization === 'Bearer at-2') json(res, 200, { healthUserId: '7000000000000000001', legacyUserId: 'CV5TKH' });
    else json(res, 401, { error: { code: 401, status: 'UNAUTHENTICATED', message: 'Request had invalid authentication credentials.' } });
  });
  const { file, path: p } = await usersFile(t, [{ provider: 'google-health', accessToken: 'at-1', refreshToken: 'rt-1' }, { provider: 'google-health', accessToken: 'at-x', refreshToken: 'rt-x' }]);
  const id = await fetchIdentity(session(url, store(file, 0)));
  t.is(id.legacyUserId, 'CV5TKH');
  t.deepEqual(seen.map((s) => s.auth), ['Bearer at-1', '', 'Bearer at-2']);
  t.deepEqual([...forms[0]!.entries()], [['grant_type', 'refresh_token'], ['refresh_token', 'rt-1'], ['client_id', 'cid'], ['client_secret', 'client-secret-xyz']]);
  const written = JSON.parse(await fs.readFile(p, 'utf8')) as Array<{ accessToken: string; refreshToken: string }>;
  t.deepEqual(written.map((e) => [e.accessToken, e.refreshToken]), [['at-2', 'rt-2'], ['at-x', 'rt-x']]);
  // The second entry's refresh token is refused: the user stops with a message, and its later
  // requests do not go out.
  const s2 = session(url, store(file, 1), 300, 60_000, new GoogleHealthShared());
  const err = await t.throwsAsync(fetchIdentity(s2));
  t.regex(err!.message, /invalid_grant.*re-consent/);
  t.false(err!.message.includes('rt-x') || err!.message.includes('client-secret-xyz'));
  const before = seen.length;
  await t.throwsAsync(s2.request({ url: `${url}/v4/users/me/settings` }, (x) => x));
  t.is(seen.length, before);
});
