// Three worker processes on one PostgreSQL state and one bucket (test/postgres.ts, test/s3.ts),
// one killed with SIGKILL mid-run: the two others take its users over once the leases expire,
// every user's object is in the bucket whole, no refresh token is spent twice, every
// watermark moved. The workers are test/state-pg-worker-child.ts: the storage, state, lease,
// budget and token modules as a run would use them, without the pipelines around them.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PgState } from '../pipelines/state/index.js';
import { S3Store, s3ClientFromEnv } from '../sinks/object-store/s3.js';
import { startTestPostgres, type TestPostgres } from './postgres.js';
import { startTestS3, type TestS3 } from './s3.js';
import { userObject } from './state-pg-workers.js';

let pgServer: TestPostgres;
let s3: TestS3;
test.before(async () => {
  [pgServer, s3] = await Promise.all([startTestPostgres(), startTestS3()]);
});
test.after.always(async () => {
  await Promise.all([pgServer?.stop(), s3?.close()]);
});

test('three workers, one killed mid-run: the others finish its users; objects whole, no refresh token spent twice', async (t) => {
  const url = await pgServer.createDatabase('workers');
  const users = Array.from({ length: 12 }, (_, i) => `u${i + 1}`);
  const seed = await PgState.open({ url, cipher: null });
  for (const u of users) await seed.seedTokens('fitbit', u, { accessToken: `a0-${u}`, refreshToken: `r0-${u}` });
  await seed.close();

  // The token endpoint: refresh tokens are single-use, as Fitbit's are.
  const spent = new Map<string, string>();
  const reused: string[] = [];
  let issued = 0;
  const tokens = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const { refreshToken, worker } = JSON.parse(body) as { refreshToken: string; worker: string };
      if (spent.has(refreshToken)) {
        reused.push(`${refreshToken} by ${worker} (first by ${spent.get(refreshToken)})`);
        res.writeHead(400).end('invalid_grant');
        return;
      }
      spent.set(refreshToken, worker);
      issued++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accessToken: `a${issued}-${refreshToken}`, refreshToken: `r${issued}-${refreshToken}` }));
    });
  });
  await new Promise<void>((r) => tokens.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => tokens.close(() => r())));
  const tokenUrl = `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/oauth2/token`;

  const child = fileURLToPath(new URL('./state-pg-worker-child.ts', import.meta.url));
  const outputs: string[] = ['', '', ''];
  const start = (i: number): ChildProcess => {
    const c = spawn(process.execPath, ['--import', 'tsx', child, url, `worker-${i}`, tokenUrl, users.join(',')], { env: { ...process.env, ...s3.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout!.on('data', (d: Buffer) => (outputs[i] += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (outputs[i] += d.toString()));
    return c;
  };
  const workers = [0, 1, 2].map(start);
  const exits = workers.map((c) => new Promise<number | null>((r) => c.once('exit', (code) => r(code))));
  // Kill worker 0 once it has claimed a user (it is then mid-run: leases held, work in flight).
  const deadline = Date.now() + 60_000;
  while (!outputs[0]!.includes('claimed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  workers[0]!.kill('SIGKILL');
  const codes = await Promise.all(exits);
  t.is(codes[0], null, 'worker 0 was killed');
  t.deepEqual(codes.slice(1), [0, 0], outputs.join('\n'));

  // Every user's object is there, byte for byte; nothing else is.
  const store = new S3Store({ client: s3ClientFromEnv(s3.env), bucket: s3.bucket, prefix: 'out' });
  const listed: string[] = [];
  for await (const o of store.list('')) listed.push(o.key);
  t.deepEqual(listed.sort(), users.map((u) => `intraday/user=${u}/data.bin`).sort());
  for (const u of users) t.true(Buffer.from((await store.get(`intraday/user=${u}/data.bin`))!).equals(userObject(u)), u);

  t.deepEqual(reused, [], 'no refresh token presented twice');
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  t.teardown(() => db.end());
  const leases = (await db.query<{ user_key: string; done: boolean; claims: number }>('SELECT user_key, done_at IS NOT NULL AS done, claims FROM leases ORDER BY user_key')).rows;
  t.true(leases.every((l) => l.done), 'every user done');
  const killedUsers = [...outputs[0]!.matchAll(/claimed (\S+)/g)].map((m) => m[1]!);
  for (const u of killedUsers) t.true(leases.find((l) => l.user_key === u)!.claims >= 2, `${u} was taken over`);
  const watermarks = (await db.query<{ n: string }>("SELECT count(*) AS n FROM watermarks WHERE value = '2026-01-07'")).rows[0]!.n;
  t.is(Number(watermarks), users.length);
  // Each user's stored pair is the last one the endpoint issued for it (none lost, none stale).
  const stored = (await db.query<{ user_key: string; refresh_token: string }>('SELECT user_key, refresh_token FROM tokens')).rows;
  for (const row of stored) t.false(spent.has(row.refresh_token), `${row.user_key}: the stored refresh token is unspent`);
});
