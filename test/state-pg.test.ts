// State in PostgreSQL (pipelines/state/) against a throwaway server (test/postgres.ts): each
// test gets its own database. "Two workers" are two PgState instances, each with its own pool
// of connections, as two processes would have.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { FITBIT_RATE_DEFAULTS, type RateLimitOptions } from '../sources/fitbit/rate-limit.js';
import {
  MIGRATIONS,
  PgState,
  TokenCipher,
  UserLeases,
  migrate,
  pgStateStore,
  redactStateUrl,
  resolveStateTarget,
  tokenCipherFromEnv,
  workLeased,
  type TicketOptions,
  type TokenPair,
} from '../pipelines/state/index.js';
import { GOOGLE_HEALTH_PROVIDER } from '../sources/google-health/users.js';
import { startTestPostgres, type TestPostgres } from './postgres.js';

let server: TestPostgres;
test.before(async () => {
  server = await startTestPostgres();
});
test.after.always(async () => {
  await server?.stop();
});

async function fresh(name: string, cipher: TokenCipher | null = null, count = 1): Promise<{ url: string; states: PgState[] }> {
  const url = await server.createDatabase(name);
  const states: PgState[] = [];
  for (let i = 0; i < count; i++) states.push(await PgState.open({ url, cipher, poolSize: 6 }));
  return { url, states };
}

async function raw<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

const closeAll = (states: PgState[]) => Promise.all(states.map((s) => s.close()));

test('migrations: applied once, idempotent, upgradeable from an older schema, concurrent starts safe', async (t) => {
  const url = await server.createDatabase('migrations');
  const pool = new pg.Pool({ connectionString: url });
  t.teardown(() => pool.end());
  t.deepEqual(await migrate(pool, MIGRATIONS, 1), [1]);
  await pool.query("INSERT INTO watermarks (pipeline, user_key, stream, value) VALUES ('p', 'u', 's', '2026-01-01')");
  t.deepEqual(await migrate(pool), [2, 3], 'an older schema is brought up to date');
  t.deepEqual(await migrate(pool), [], 'nothing applied twice');
  t.deepEqual(await raw(url, 'SELECT value FROM watermarks'), [{ value: '2026-01-01' }], 'data kept across the upgrade');
  t.deepEqual((await raw<{ version: number }>(url, 'SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version), [1, 2, 3]);

  // Three workers starting at once on an empty database: each migration is applied exactly once.
  const url2 = await server.createDatabase('migrations_race');
  const pools = [0, 1, 2].map(() => new pg.Pool({ connectionString: url2 }));
  t.teardown(() => Promise.all(pools.map((p) => p.end())));
  const applied = await Promise.all(pools.map((p) => migrate(p)));
  t.deepEqual(applied.flat().sort(), [1, 2, 3]);

  // A database migrated by a newer wearable-etl is refused.
  await pool.query("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')");
  await t.throwsAsync(() => migrate(pool), { message: /schema version 99, newer than this wearable-etl knows \(3\); upgrade wearable-etl/ });
});

test('watermarks move forward only; two workers saving their own users do not clobber each other', async (t) => {
  const { states } = await fresh('watermarks', null, 2);
  t.teardown(() => closeAll(states));
  const [a, b] = states.map((s) => pgStateStore(s)) as [ReturnType<typeof pgStateStore>, ReturnType<typeof pgStateStore>];
  const sa = await a.load('fitbit-intraday');
  sa.users['u1'] = { streams: { steps: '2026-01-05', calories: '2026-01-04' } };
  const sb = await b.load('fitbit-intraday');
  sb.users['u2'] = { streams: { steps: '2026-01-03' } };
  await Promise.all([a.save(sa), b.save(sb)]);
  const after = await a.load('fitbit-intraday');
  t.deepEqual(after.users, { u1: { streams: { steps: '2026-01-05', calories: '2026-01-04' } }, u2: { streams: { steps: '2026-01-03' } } });
  // An older value (a slow worker saving late) does not move a watermark back.
  sb.users['u1'] = { streams: { steps: '2026-01-01' } };
  await b.save(sb);
  t.is((await a.load('fitbit-intraday')).users['u1']!.streams['steps'], '2026-01-05');
  t.deepEqual((await a.load('fitbit-activities')).users, {}, 'per pipeline');
  // An instant watermark moves forward only too; a Takeout archive's fingerprint is not ordered:
  // a newer archive whose fingerprint sorts lower replaces the older one's.
  const st = await a.load('takeout');
  st.users['u1'] = { streams: { archive: 'f0e1d2c3', activities: '2026-01-05T10:00:00.000Z' } };
  await a.save(st);
  st.users['u1'] = { streams: { archive: '0a1b2c3d', activities: '2026-01-04T10:00:00.000Z' } };
  await a.save(st);
  t.deepEqual((await b.load('takeout')).users['u1']!.streams, { archive: '0a1b2c3d', activities: '2026-01-05T10:00:00.000Z' });
});

test('two workers claiming users at once never get the same user, and together get all of them', async (t) => {
  const { states } = await fresh('claims', null, 2);
  t.teardown(() => closeAll(states));
  const users = Array.from({ length: 60 }, (_, i) => `user-${String(i).padStart(2, '0')}`);
  const workers = states.map((s, i) => new UserLeases(s, `worker-${i}`, { ttlMs: 60_000 }));
  const rounds = await Promise.all(workers.map((w) => w.join('fitbit-intraday|users.json', users)));
  t.is(rounds[0], rounds[1], 'both joined the one open round');
  const got = workers.map(() => [] as string[]);
  await Promise.all(
    workers.map(async (w, i) => {
      for (;;) {
        // Small claims, several at once per worker, so the claims really interleave.
        const batch = (await Promise.all([w.claim(rounds[0]!, 2), w.claim(rounds[0]!, 1)])).flat();
        if (batch.length === 0) break;
        got[i]!.push(...batch.map((c) => c.user));
      }
    }),
  );
  const all = [...got[0]!, ...got[1]!];
  t.is(new Set(all).size, all.length, 'no user claimed twice');
  t.deepEqual([...all].sort(), users);
  t.true(got[0]!.length > 0 && got[1]!.length > 0, 'both workers got users');
});

test('a lease that is not renewed is taken over; a released one at once; lost leases are signalled', async (t) => {
  const { url, states } = await fresh('takeover', null, 2);
  t.teardown(() => closeAll(states));
  const dead = new UserLeases(states[0]!, 'dead', { ttlMs: 60_000 });
  const alive = new UserLeases(states[1]!, 'alive', { ttlMs: 60_000 });
  const round = await dead.join('k', ['a', 'b', 'c']);
  await alive.join('k', ['a', 'b', 'c']);
  const mine = await dead.claim(round, 2);
  t.deepEqual(mine.map((c) => c.user), ['a', 'b']);
  t.deepEqual((await alive.claim(round, 5)).map((c) => c.user), ['c']);
  t.deepEqual(await alive.claim(round, 5), [], 'leased users are not claimable');
  await dead.release(round, 'b'); // a graceful stop gives a user back at once
  t.deepEqual((await alive.claim(round, 5)).map((c) => c.user), ['b']);
  // Time passes without a renewal of 'a' (set on the database's clock, so the test does not
  // race the machine's load; workLeased's test below waits for a real expiry).
  await raw(url, "UPDATE leases SET expires_at = now() - interval '1 second' WHERE holder = 'dead' AND user_key = 'a'");
  t.deepEqual((await alive.claim(round, 5)).map((c) => c.user), ['a'], 'taken over once expired');
  t.deepEqual(await dead.renew(), ['a'], 'the old holder learns it lost the lease');
  t.true(mine[0]!.lost.aborted);
  t.false(await dead.finish(round, 'a'), 'and cannot mark it done');
  t.true(await alive.finish(round, 'a'));
});

test('workLeased: a dead worker\'s users are finished by another within the lease time; the round closes', async (t) => {
  const { states } = await fresh('worklease', null, 2);
  t.teardown(() => closeAll(states));
  const users = ['u1', 'u2', 'u3', 'u4', 'u5'];
  const dead = new UserLeases(states[0]!, 'dead', { ttlMs: 1_000 });
  const round = await dead.join('k', users);
  await dead.claim(round, 2); // then it "dies": no renewal, no release
  const survivor = new UserLeases(states[1]!, 'survivor', { ttlMs: 1_000, pollMs: 100 });
  const worked: string[] = [];
  const started = Date.now();
  const result = await workLeased(survivor, round, { concurrency: 2 }, async (user) => {
    worked.push(user);
    if (user === 'u4') throw new Error('the API said no');
  });
  const elapsed = Date.now() - started;
  t.deepEqual([...worked].sort(), users, 'every user worked, the dead worker\'s included');
  t.deepEqual(result.done.sort(), ['u1', 'u2', 'u3', 'u5']);
  t.deepEqual(result.failed, [{ user: 'u4', reason: 'the API said no' }]);
  t.true(elapsed >= 900 && elapsed < 5_000, `took over after the lease expired (${elapsed} ms)`);
  t.deepEqual(await dead.failures(round), [{ user: 'u4', reason: 'the API said no' }]);
  // The round is closed: the next run opens a new one with every user free again.
  const next = await survivor.join('k', users);
  t.not(next, round);
  t.deepEqual(await survivor.progress(next), { free: 5, leased: 0, done: 0, failed: 0 });
});

test('workLeased: a graceful stop releases users in progress so another worker takes them at once', async (t) => {
  const { states } = await fresh('graceful', null, 2);
  t.teardown(() => closeAll(states));
  const a = new UserLeases(states[0]!, 'a', { ttlMs: 60_000, pollMs: 50 });
  const round = await a.join('k', ['x', 'y']);
  const stop = new AbortController();
  const running = workLeased(a, round, { concurrency: 2, stop: stop.signal }, (_user, signal) => new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve()))));
  // Stop once both users are claimed (or at once on a slow machine: then nothing is started).
  for (let i = 0; i < 200; i++) {
    const p = await a.progress(round);
    if (p.leased === 2) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  stop.abort();
  const result = await running;
  t.true(result.stopped);
  t.deepEqual(result.done, []);
  const b = new UserLeases(states[1]!, 'b', { ttlMs: 60_000 });
  t.deepEqual((await b.claim(round, 5)).map((c) => c.user).sort(), ['x', 'y'], 'released, not left to expire');
});

test('the rate budget is never exceeded by concurrent takers in two workers', async (t) => {
  const { states } = await fresh('budget', null, 2);
  t.teardown(() => closeAll(states));
  const now = Date.UTC(2026, 0, 1, 12);
  const options: RateLimitOptions = { ...FITBIT_RATE_DEFAULTS, limit: 10, jitterMs: [0, 0], now: () => now };
  // 35 requests at once (half per worker) for one user, on a frozen clock. A request goes out
  // at now + its wait: no instant (window) may see more than the limit of 10.
  const waits = await Promise.all(Array.from({ length: 35 }, (_, i) => states[i % 2]!.reserve('fitbit', 'u1', options)));
  const perInstant = new Map<number, number>();
  for (const w of waits) perInstant.set(w, (perInstant.get(w) ?? 0) + 1);
  t.is(perInstant.get(0), 10, 'the first 10 go now');
  t.true([...perInstant.values()].every((n) => n <= 10), JSON.stringify([...perInstant]));
  t.true([...perInstant.keys()].filter((w) => w > 0).every((w) => w >= 3_600_000), 'the others wait for the next (unknown, so one-hour) window');
  t.is(perInstant.size, 4, '35 requests need four windows of 10');

  // The server's headers are shared too: a worker that reads "2 remaining" lowers everyone's count.
  const headers = { get: (h: string) => ({ 'fitbit-rate-limit-remaining': '2', 'fitbit-rate-limit-reset': '600', 'fitbit-rate-limit-limit': '10' })[h] ?? null };
  await states[0]!.observe('fitbit', 'u2', options, headers);
  const next = await Promise.all([0, 1, 2, 3].map((i) => states[i % 2]!.reserve('fitbit', 'u2', options)));
  t.is(next.filter((w) => w === 0).length, 2);
  t.true(next.filter((w) => w > 0).every((w) => w >= 601_000), 'the rest wait for the reset the server named');
  // A 429 seen by one worker holds back the other's next request.
  const wait429 = await states[0]!.exhausted('fitbit', 'u3', options, headers);
  t.true(wait429 >= 601_000);
  t.true((await states[1]!.reserve('fitbit', 'u3', options)) >= wait429);
});

const GH = GOOGLE_HEALTH_PROVIDER;

test('Google Health budget: two workers taking at once get at most the limit; settled tickets leave the window; a dead worker\'s ticket expires', async (t) => {
  const { states } = await fresh('gh_budget', null, 2);
  t.teardown(() => closeAll(states));
  const [a, b] = states as [PgState, PgState];
  const t0 = Date.UTC(2026, 0, 1, 12);
  let clock = t0;
  const options: TicketOptions = { limit: 5, windowMs: 1000, flightMs: 10_000, now: () => clock };
  const takeAll = (n: number) => Promise.all(Array.from({ length: n }, (_, i) => states[i % 2]!.takeTicket(GH, 'u1', options)));
  const ticketsOf = (taken: Array<{ ticket: string } | { waitMs: number }>) => taken.flatMap((r) => ('ticket' in r ? [r.ticket] : []));
  const waitsOf = (taken: Array<{ ticket: string } | { waitMs: number }>) => taken.flatMap((r) => ('waitMs' in r ? [r.waitMs] : []));

  // 12 at once, half per worker: 5 go; the rest look again shortly (the 5 are still in flight).
  const first = await takeAll(12);
  const sent = ticketsOf(first);
  t.is(sent.length, 5);
  t.deepEqual(waitsOf(first), Array(7).fill(20));
  // Answered at t0 + 100: the next request waits for the oldest of them to leave the window.
  clock = t0 + 100;
  await Promise.all(sent.map((id, i) => states[i % 2]!.settleTicket(GH, 'u1', id, options)));
  t.deepEqual(await b.takeTicket(GH, 'u1', options), { waitMs: 1005 });
  clock = t0 + 1099;
  t.deepEqual(await a.takeTicket(GH, 'u1', options), { waitMs: 6 }, 'the edge of the window and a 5 ms margin');
  clock = t0 + 1105;
  const second = await takeAll(7);
  t.is(ticketsOf(second).length, 5, 'a full window again, no more');
  t.deepEqual(
    (await a.tickets(GH, 'u1')).map((x) => x.settled),
    Array(5).fill(false),
    'the answered tickets were deleted as they left the window',
  );

  // Four answered; the fifth's worker died. It counts as in flight until flightMs has passed...
  clock = t0 + 1200;
  const live = ticketsOf(second).slice(1);
  for (const id of live) await b.settleTicket(GH, 'u1', id, options);
  clock = t0 + 2205;
  const third = ticketsOf(await takeAll(5));
  t.is(third.length, 4, 'the four answered left the window; the dead one still counts');
  clock = t0 + 2300;
  for (const id of third) await a.settleTicket(GH, 'u1', id, options);
  // ...then as answered at its deadline (t0 + 11105), until it leaves the window in turn.
  clock = t0 + 11_106;
  const fourth = await takeAll(5);
  t.is(ticketsOf(fourth).length, 4);
  t.deepEqual(waitsOf(fourth), [1004], 'the fifth waits for the dead ticket to leave the window');
  t.true((await a.tickets(GH, 'u1')).some((x) => !x.settled && x.countedFrom === t0 + 11_105));
  clock = t0 + 12_200;
  await a.takeTicket(GH, 'u1', options);
  t.false((await a.tickets(GH, 'u1')).some((x) => x.countedFrom === t0 + 11_105), 'deleted once out of the window');

  // A 429 seen by one worker pauses the user for the other; a shorter pause does not shorten it.
  t.is(await a.pauseUser(GH, 'u2', 3000, options), 3000);
  t.deepEqual(await b.takeTicket(GH, 'u2', options), { waitMs: 3000 });
  t.is(await b.pauseUser(GH, 'u2', 1000, options), 3000);
  t.is(await b.pauseUser(GH, 'u3', 1000, options), 1000, 'other users are not paused');
  clock += 3000;
  t.true('ticket' in (await b.takeTicket(GH, 'u2', options)), 'the pause is over');
  t.true('ticket' in (await a.takeTicket(GH, 'u3', options)));
});

/**
 * Sessions of two workers sending for one user on real time (the database's clock) for a while:
 * each request is sent after its take and answered before its settle. Returns the most requests
 * that some window of `windowMs` could have seen, wherever within its send..answer the server
 * saw each one.
 */
async function simulateWorkers(takers: Array<{ take(): Promise<{ ticket: string } | { waitMs: number }>; settle(ticket: string): Promise<void> }>, runMs: number, windowMs: number): Promise<{ requests: number; worst: number }> {
  const spans: Array<{ send: number; answer: number }> = [];
  const end = Date.now() + runMs;
  await Promise.all(
    takers.map(async (budget) => {
      while (Date.now() < end) {
        const taken = await budget.take();
        if ('waitMs' in taken) {
          await new Promise((r) => setTimeout(r, taken.waitMs));
          continue;
        }
        const send = Date.now();
        await new Promise((r) => setTimeout(r, Math.random() * 40));
        spans.push({ send, answer: Date.now() });
        await budget.settle(taken.ticket);
      }
    }),
  );
  // A window ending at a send sees every request sent by then and answered after its start.
  let worst = 0;
  for (const s of spans) worst = Math.max(worst, spans.filter((o) => o.send <= s.send && o.answer > s.send - windowMs).length);
  return { requests: spans.length, worst };
}

test('Google Health budget on real time: three sessions in each of two workers never put more than the limit in any window', async (t) => {
  const { states } = await fresh('gh_budget_real', null, 2);
  t.teardown(() => closeAll(states));
  const options: TicketOptions = { limit: 5, windowMs: 1000 };
  const takers = (user: (worker: number) => string) =>
    [0, 1, 2, 3, 4, 5].map((i) => {
      const db = states[i % 2]!;
      const u = user(i % 2);
      return { take: () => db.takeTicket(GH, u, options), settle: (id: string) => db.settleTicket(GH, u, id, options) };
    });
  const shared = await simulateWorkers(takers(() => 'u1'), 2500, 1000);
  t.log(`shared: ${shared.requests} requests in 2.5 s, at most ${shared.worst} in a window`);
  t.true(shared.worst <= 5, `${shared.worst} requests in one window`);
  t.true(shared.requests >= 10, 'the window refills: requests keep going');
  // The same load with a budget per worker (not shared) does exceed the limit: the check can fail.
  const apart = await simulateWorkers(takers((w) => `u1-worker${w}`), 1500, 1000);
  t.true(apart.worst > 5, `apart: ${apart.worst}`);
});

function fakeTokenServer(delayMs = 30) {
  const spent: string[] = [];
  let n = 0;
  return {
    spent,
    refresh: async (refreshToken: string): Promise<TokenPair> => {
      spent.push(refreshToken);
      await new Promise((r) => setTimeout(r, delayMs));
      n++;
      return { accessToken: `access-${n}`, refreshToken: `refresh-${n}` };
    },
  };
}

test('a refresh token is never spent twice by concurrent rotators in two workers; the new pair is committed first', async (t) => {
  const { url, states } = await fresh('rotate', null, 2);
  t.teardown(() => closeAll(states));
  t.is(await states[0]!.seedTokens('fitbit', 'u1', { accessToken: 'access-0', refreshToken: 'refresh-0' }), 'inserted');
  const server1 = fakeTokenServer();
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => states[i % 2]!.rotate('fitbit', 'u1', 'access-0', server1.refresh)));
  t.deepEqual(server1.spent, ['refresh-0'], 'spent once');
  t.true(results.every((r) => r.accessToken === 'access-1' && r.refreshToken === 'refresh-1'), 'everyone got the one new pair');
  t.deepEqual(await raw(url, "SELECT access_token, refresh_token, rotations FROM tokens WHERE user_key = 'u1'"), [{ access_token: 'access-1', refresh_token: 'refresh-1', rotations: 1 }]);

  // A refresh that fails leaves the pair as it was; the next rotation spends the same token.
  await t.throwsAsync(() => states[0]!.rotate('fitbit', 'u1', 'access-1', async () => { throw new Error('token endpoint down'); }), { message: 'token endpoint down' });
  t.deepEqual(await states[1]!.tokens('fitbit', 'u1'), { accessToken: 'access-1', refreshToken: 'refresh-1' });
  const server2 = fakeTokenServer();
  await states[1]!.rotate('fitbit', 'u1', 'access-1', server2.refresh);
  t.deepEqual(server2.spent, ['refresh-1']);

  // The users file still holds the first pair: seeding again keeps the rotated one...
  t.is(await states[0]!.seedTokens('fitbit', 'u1', { accessToken: 'access-0', refreshToken: 'refresh-0' }), 'kept');
  t.is((await states[0]!.tokens('fitbit', 'u1'))!.refreshToken, 'refresh-1');
  // ...and a new pair in the file (the person consented again) replaces it.
  t.is(await states[0]!.seedTokens('fitbit', 'u1', { accessToken: 'new-a', refreshToken: 'new-r' }), 'replaced');
  t.deepEqual(await states[1]!.tokens('fitbit', 'u1'), { accessToken: 'new-a', refreshToken: 'new-r' });
  await t.throwsAsync(() => states[0]!.rotate('fitbit', 'nobody', 'x', server2.refresh), { message: /has no tokens in the state database/ });
});

test('tokens are encrypted at rest with WEARABLE_ETL_TOKEN_KEY, bound to their user, and unreadable without the key', async (t) => {
  const key = randomBytes(32);
  const cipher = tokenCipherFromEnv({ WEARABLE_ETL_TOKEN_KEY: key.toString('base64') })!;
  t.truthy(cipher);
  const { url, states } = await fresh('encrypted', cipher);
  const [db] = states as [PgState];
  t.teardown(() => db.close());
  const secretA = 'eyJhbGciOi.secret-access-' + randomBytes(8).toString('hex');
  const secretR = 'secret-refresh-' + randomBytes(8).toString('hex');
  await db.seedTokens('fitbit', 'u1', { accessToken: secretA, refreshToken: secretR });
  await db.seedTokens('fitbit', 'u2', { accessToken: 'other-a', refreshToken: 'other-r' });
  const rows = await raw<{ user_key: string; access_token: string; refresh_token: string; encrypted: boolean }>(url, 'SELECT user_key, access_token, refresh_token, encrypted FROM tokens ORDER BY user_key');
  for (const r of rows) {
    t.true(r.encrypted);
    t.regex(r.access_token, /^v1:[^:]+:[^:]+:[^:]+$/);
    t.false(r.access_token.includes('secret') || r.refresh_token.includes('secret') || r.access_token.includes('other'));
  }
  t.deepEqual(await db.tokens('fitbit', 'u1'), { accessToken: secretA, refreshToken: secretR });
  const rotated = await db.rotate('fitbit', 'u1', secretA, async () => ({ accessToken: 'rotated-a', refreshToken: 'rotated-r' }));
  t.is(rotated.accessToken, 'rotated-a');
  const after = await raw<{ access_token: string }>(url, "SELECT access_token FROM tokens WHERE user_key = 'u1'");
  t.false(after[0]!.access_token.includes('rotated'), 'a rotated pair is encrypted too');

  // Without the key, or with another key: a clear error, never the ciphertext taken as a token.
  const noKey = await PgState.open({ url, cipher: null });
  t.teardown(() => noKey.close());
  await t.throwsAsync(() => noKey.tokens('fitbit', 'u1'), { message: /encrypted in the state database; set WEARABLE_ETL_TOKEN_KEY/ });
  const otherKey = await PgState.open({ url, cipher: new TokenCipher(randomBytes(32)) });
  t.teardown(() => otherKey.close());
  await t.throwsAsync(() => otherKey.tokens('fitbit', 'u1'), { message: /does not decrypt: WEARABLE_ETL_TOKEN_KEY is not the key/ });
  // A ciphertext copied into another user's row does not decrypt there.
  await raw(url, "UPDATE tokens SET access_token = (SELECT access_token FROM tokens WHERE user_key = 'u1') WHERE user_key = 'u2'");
  await t.throwsAsync(() => db.tokens('fitbit', 'u2'), { message: /does not decrypt/ });

  // Plain rows from before the key was set are encrypted when the users file is read again.
  const { url: url2, states: plain } = await fresh('plain_then_key');
  await plain[0]!.seedTokens('fitbit', 'p', { accessToken: 'plain-a', refreshToken: 'plain-r' });
  await plain[0]!.close();
  t.deepEqual(await raw(url2, 'SELECT access_token, encrypted FROM tokens'), [{ access_token: 'plain-a', encrypted: false }]);
  const keyed = await PgState.open({ url: url2, cipher });
  t.teardown(() => keyed.close());
  t.is(await keyed.seedTokens('fitbit', 'p', { accessToken: 'plain-a', refreshToken: 'plain-r' }), 'kept');
  const sealed = await raw<{ access_token: string; encrypted: boolean }>(url2, 'SELECT access_token, encrypted FROM tokens');
  t.true(sealed[0]!.encrypted && !sealed[0]!.access_token.includes('plain'));
  t.deepEqual(await keyed.tokens('fitbit', 'p'), { accessToken: 'plain-a', refreshToken: 'plain-r' });
});

test('run records', async (t) => {
  const { url, states } = await fresh('runs');
  t.teardown(() => closeAll(states));
  await states[0]!.startRun('20260101T000000Z-abc', 'host-1/123');
  await states[0]!.finishRun('20260101T000000Z-abc', 3, { exitCode: 3, datasets: [] });
  t.deepEqual(await raw(url, 'SELECT run_id, worker, exit_code, summary, finished_at IS NOT NULL AS finished FROM runs'), [
    { run_id: '20260101T000000Z-abc', worker: 'host-1/123', exit_code: 3, summary: { exitCode: 3, datasets: [] }, finished: true },
  ]);
});

test('an unreachable state database is one clear line with the password removed', async (t) => {
  const err = await t.throwsAsync(() => PgState.open({ url: 'postgres://etl:hunter2@127.0.0.1:1/db', cipher: null }));
  t.regex(err!.message, /^cannot use the state database postgres:\/\/etl:REDACTED@127\.0\.0\.1:1\/db: /);
  t.false(err!.message.includes('hunter2'));
});

test('--state and WEARABLE_ETL_STATE_URL; WEARABLE_ETL_TOKEN_KEY', (t) => {
  t.deepEqual(resolveStateTarget(undefined, {}, '/w'), { kind: 'file', path: null });
  t.deepEqual(resolveStateTarget('st.json', {}, '/w'), { kind: 'file', path: '/w/st.json' });
  t.deepEqual(resolveStateTarget('postgres://u@h/db', {}), { kind: 'postgres', url: 'postgres://u@h/db' });
  t.deepEqual(resolveStateTarget(undefined, { WEARABLE_ETL_STATE_URL: 'postgresql://u@h:5433/db' }), { kind: 'postgres', url: 'postgresql://u@h:5433/db' });
  t.deepEqual(resolveStateTarget('x.json', { WEARABLE_ETL_STATE_URL: 'postgres://u@h/db' }, '/w'), { kind: 'file', path: '/w/x.json' }, '--state wins');
  const mysql = t.throws(() => resolveStateTarget('mysql://u:pw@h/db', {}));
  t.regex(mysql!.message, /--state takes a file or a postgres:\/\/.*the scheme mysql:\/\/ is not supported/);
  t.false(mysql!.message.includes(':pw@'));
  t.throws(() => resolveStateTarget(undefined, { WEARABLE_ETL_STATE_URL: '/tmp/state.json' }), { message: /WEARABLE_ETL_STATE_URL takes .*postgres/ });
  t.is(redactStateUrl('postgres://me:secret@db:5432/etl?sslmode=require'), 'postgres://me:REDACTED@db:5432/etl?sslmode=require');

  t.is(tokenCipherFromEnv({}), null);
  t.truthy(tokenCipherFromEnv({ WEARABLE_ETL_TOKEN_KEY: 'ab'.repeat(32) }));
  const short = t.throws(() => tokenCipherFromEnv({ WEARABLE_ETL_TOKEN_KEY: 'c2hvcnQ=' }));
  t.regex(short!.message, /must be 32 bytes written as 64 hex digits or base64/);
  t.false(short!.message.includes('c2hvcnQ'), 'the key is never echoed');
});

test('a worker that loses the database stops its users and fails with one line', async (t) => {
  // Its own server, stopped under the worker.
  const own = await startTestPostgres();
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await own.stop();
  });
  const db = await PgState.open({ url: own.url, cipher: null });
  t.teardown(() => db.close().catch(() => undefined));
  const leases = new UserLeases(db, 'w', { ttlMs: 600, pollMs: 100 });
  const round = await leases.join('k', ['a', 'b', 'c']);
  const signals: AbortSignal[] = [];
  const running = workLeased(leases, round, { concurrency: 2 }, (_user, signal) => {
    signals.push(signal);
    return new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve())));
  });
  while (signals.length < 2) await new Promise((r) => setTimeout(r, 20));
  await own.stop();
  stopped = true;
  const err = await t.throwsAsync(running);
  t.regex(err!.message, /^lost the state database postgres:\/\/etl@127\.0\.0\.1:\d+\/postgres: /);
  t.false(err!.message.includes('\n'));
  t.true(signals.every((s) => s.aborted), 'every user in progress was told to stop');
});
