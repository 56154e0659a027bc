// The shared HTTP layer over a real loopback server that misbehaves on purpose: what is
// retried (5xx, a connection reset mid-body, a timeout, a truncated or non-JSON body), what
// fails at once (a body of the wrong shape, an absurdly large body), and that messages built
// from a server's answer never carry a secret.
import test from 'ava';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EtlError } from '../lib/errors.js';
import { backoffDelay, HttpStats, requestJson, type RetryPolicy } from '../lib/http.js';

const FAST: RetryPolicy = { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 300 };

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>;

/** A server answering each request with the next handler (the last one repeats). */
async function serve(t: { teardown(fn: () => Promise<void>): void }, handlers: Handler[]): Promise<{ url: string; hits: () => number }> {
  let n = 0;
  const server = createServer((req, res) => {
    const h = handlers[Math.min(n, handlers.length - 1)]!;
    n++;
    void h(req, res, n);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/data`, hits: () => n };
}

const json = (body: string, status = 200): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
};

const parseObject = (text: string): { ok: boolean } => {
  const v = JSON.parse(text) as { ok?: unknown };
  if (typeof v.ok !== 'boolean') throw new Error('no ok field');
  return { ok: v.ok };
};

test('a UTF-8 byte-order mark is removed before parsing', async (t) => {
  const s = await serve(t, [
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"ok":true}')]));
    },
  ]);
  const { value, result } = await requestJson({ url: s.url }, parseObject, { policy: FAST, stats: new HttpStats() });
  t.deepEqual(value, { ok: true });
  t.is(result.text, '{"ok":true}');
});

test('500, 503, a reset mid-body, a timeout, a truncated body and an HTML page are each retried until the answer comes', async (t) => {
  const good = '{"ok":true,"padding":"' + 'x'.repeat(2000) + '"}';
  const s = await serve(t, [
    json('{"errors":[{"errorType":"request","message":"boom"}]}', 500),
    (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html>503</html>');
    },
    (_req, res) => {
      // Headers promise the whole body; half of it leaves, then the connection dies.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(good.length) });
      res.write(good.slice(0, 1000));
      setImmediate(() => res.socket?.destroy());
    },
    (_req, res) => {
      setTimeout(() => json(good)(_req, res, 0), 1_000).unref();
    },
    json(good.slice(0, 500)),
    json('<!DOCTYPE html><html>gateway</html>'),
    json(good),
  ]);
  const stats = new HttpStats();
  const reasons: string[] = [];
  const { value } = await requestJson({ url: s.url }, parseObject, {
    policy: { ...FAST, maxAttempts: 7 },
    stats,
    hooks: { onRetry: (reason) => reasons.push(reason) },
  });
  t.deepEqual(value, { ok: true });
  t.is(s.hits(), 7);
  t.is(stats.requests, 7);
  t.is(stats.retries, 6);
  t.is(reasons.length, 6);
  t.regex(reasons[0]!, /HTTP 500/);
  t.regex(reasons[1]!, /HTTP 503/);
  t.regex(reasons[3]!, /timed out after 300 ms/);
  t.regex(reasons[4]!, /invalid JSON body/);
  t.regex(reasons[5]!, /invalid JSON body/);
});

test('past the bound: one clear line saying how many attempts and the last reason', async (t) => {
  const s = await serve(t, [json('{}', 503)]);
  const err = await t.throwsAsync(requestJson({ url: s.url + '?access_token=SECRETQUERY' }, parseObject, { policy: FAST, stats: new HttpStats(), hooks: { context: { user: 'u7' } } }));
  t.true(err instanceof EtlError);
  t.is((err as EtlError).code, 'HTTP_RETRY_EXHAUSTED');
  t.is((err as EtlError).context.user, 'u7');
  t.regex(err!.message, /^gave up after 4 attempts \(last: HTTP 503\)/);
  t.false(err!.message.includes('\n'));
  t.false(err!.message.includes('SECRETQUERY'), 'secret query values are redacted');
  t.is(s.hits(), 4);
});

test('a body of the wrong shape (parse throws BAD_RESPONSE) fails at once', async (t) => {
  const s = await serve(t, [json('{"unexpected":1}')]);
  const err = await t.throwsAsync(
    requestJson(
      { url: s.url },
      () => {
        throw new EtlError('BAD_RESPONSE', 'no ok field');
      },
      { policy: FAST, stats: new HttpStats() },
    ),
  );
  t.is((err as EtlError).code, 'BAD_RESPONSE');
  t.is(s.hits(), 1);
});

test('an absurdly large body is refused with a clear error and never retried, declared or streamed', async (t) => {
  const big = Buffer.alloc(300_000, 0x20);
  const s = await serve(t, [
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(big.length) });
      res.end(big);
    },
    (_req, res) => {
      // No content-length: chunked, the cap is enforced while reading.
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < 10; i++) res.write(big.subarray(0, 30_000));
      res.end();
    },
  ]);
  for (let i = 0; i < 2; i++) {
    const err = await t.throwsAsync(requestJson({ url: s.url }, parseObject, { policy: FAST, stats: new HttpStats(), maxBodyBytes: 100_000 }));
    t.is((err as EtlError).code, 'BAD_RESPONSE');
    t.regex(err!.message, /cap/);
  }
  t.is(s.hits(), 2, 'one request each');
  // Under the cap the same body is read.
  const small = await serve(t, [json('{"ok":false}')]);
  t.deepEqual((await requestJson({ url: small.url }, parseObject, { policy: FAST, stats: new HttpStats(), maxBodyBytes: 100_000 })).value, { ok: false });
});

test('other statuses go to onStatus; messages built from the body are scrubbed of secrets', async (t) => {
  const token = 'tok_5ecret_abcdef';
  const s = await serve(t, [json(`{"errors":[{"errorType":"expired_token","message":"Access token expired: ${token}"}]}`, 401)]);
  let calls = 0;
  const err = await t.throwsAsync(
    requestJson({ url: s.url }, parseObject, {
      policy: FAST,
      stats: new HttpStats(),
      hooks: {
        maxAgain: 2,
        secrets: () => [token],
        onStatus: async () => {
          calls++;
          return 'again';
        },
      },
    }),
  );
  t.is(calls, 3);
  t.is((err as EtlError).code, 'HTTP_CLIENT');
  t.regex(err!.message, /HTTP 401/);
  t.regex(err!.message, /expired_token/);
  t.false(err!.message.includes(token));
});

test('backoff: exponential cap, full jitter, bounded', (t) => {
  const policy: RetryPolicy = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000, timeoutMs: 1 };
  t.is(backoffDelay(policy, 0, () => 0), 250);
  t.is(backoffDelay(policy, 0, () => 0.999), 499);
  t.is(backoffDelay(policy, 3, () => 0.999), 3_996);
  t.is(backoffDelay(policy, 20, () => 0.999), 29_970);
  for (let a = 0; a < 10; a++) {
    const d = backoffDelay(policy, a);
    t.true(d >= 250 && d <= 30_000);
  }
});
