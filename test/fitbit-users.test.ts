// The users file and token rotation, on real files: refresh tokens are single-use, so two
// rotations of one user (in one run, or two runs sharing the file) must spend the old refresh
// token once, and the new pair must be on disk before anyone uses it.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EtlError } from '../lib/errors.js';
import { acquireLock, UsersFile, type TokenPair } from '../sources/fitbit/users.js';

async function tempUsers(t: { teardown(fn: () => Promise<void>): void }, entries: unknown[]): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-users-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'users.json');
  await fs.writeFile(file, JSON.stringify(entries, null, 2));
  return file;
}

const ENTRIES = [
  { userId: 'AAA111', humanId: 'h-a', accessToken: 'at-a-0', refreshToken: 'rt-a-0', timezone: 'Europe/Berlin' },
  { refreshToken: 'rt-b-0', accessToken: 'at-b-0', userId: 'BBB222' },
];

/** A token endpoint stand-in: single-use refresh tokens, counts what it was asked. */
function tokenServer(): { refresh: (rt: string) => Promise<TokenPair>; spent: string[] } {
  const spent: string[] = [];
  let generation = 0;
  return {
    spent,
    refresh: async (rt) => {
      if (spent.includes(rt)) throw new EtlError('AUTH_EXPIRED', `refresh token ${rt} already used`);
      spent.push(rt);
      await new Promise((r) => setTimeout(r, 30));
      generation++;
      return { accessToken: `at-new-${generation}`, refreshToken: `rt-new-${generation}` };
    },
  };
}

test('two runs (two UsersFile instances) rotating one user at once spend the refresh token once', async (t) => {
  const file = await tempUsers(t, ENTRIES);
  const runA = await UsersFile.load(file);
  const runB = await UsersFile.load(file);
  const server = tokenServer();
  const [a, b, a2] = await Promise.all([
    runA.rotate('h-a', 'at-a-0', server.refresh),
    runB.rotate('h-a', 'at-a-0', server.refresh),
    runA.rotate('h-a', 'at-a-0', server.refresh),
  ]);
  t.deepEqual(server.spent, ['rt-a-0']);
  t.deepEqual(a, { accessToken: 'at-new-1', refreshToken: 'rt-new-1' });
  t.deepEqual(b, a);
  t.deepEqual(a2, a);
  t.deepEqual(runA.tokens('h-a'), a);
  t.deepEqual(runB.tokens('h-a'), a);
  // On disk: only the two tokens changed; the other entry keeps its keys (no humanId added).
  const onDisk = JSON.parse(await fs.readFile(file, 'utf8')) as Array<Record<string, unknown>>;
  t.deepEqual(onDisk, [{ ...ENTRIES[0], accessToken: 'at-new-1', refreshToken: 'rt-new-1' }, ENTRIES[1]]);
  t.deepEqual(Object.keys(onDisk[1]!), Object.keys(ENTRIES[1]!));
  t.is((await fs.stat(file)).mode & 0o777, 0o600, 'the file holding tokens is private');
  await t.throwsAsync(fs.stat(file + '.lock'), { code: 'ENOENT' });
});

test('a run that still holds a replaced access token adopts the pair another run wrote, without a refresh', async (t) => {
  const file = await tempUsers(t, ENTRIES);
  const early = await UsersFile.load(file);
  const other = await UsersFile.load(file);
  const server = tokenServer();
  await other.rotate('h-a', 'at-a-0', server.refresh);
  const adopted = await early.rotate('h-a', 'at-a-0', server.refresh);
  t.deepEqual(server.spent, ['rt-a-0']);
  t.deepEqual(adopted, { accessToken: 'at-new-1', refreshToken: 'rt-new-1' });
  // A second expiry later rotates again, with the adopted refresh token.
  const next = await early.rotate('h-a', 'at-new-1', server.refresh);
  t.deepEqual(server.spent, ['rt-a-0', 'rt-new-1']);
  t.deepEqual(next, { accessToken: 'at-new-2', refreshToken: 'rt-new-2' });
});

test('a failed refresh leaves the file as it was and releases the lock', async (t) => {
  const file = await tempUsers(t, ENTRIES);
  const before = await fs.readFile(file, 'utf8');
  const users = await UsersFile.load(file);
  const err = await t.throwsAsync(users.rotate('BBB222', 'at-b-0', async () => {
    throw new EtlError('AUTH_EXPIRED', 'refresh refused');
  }));
  t.is((err as EtlError).code, 'AUTH_EXPIRED');
  t.is(await fs.readFile(file, 'utf8'), before);
  await t.throwsAsync(fs.stat(file + '.lock'), { code: 'ENOENT' });
  const server = tokenServer();
  t.deepEqual(await users.rotate('BBB222', 'at-b-0', server.refresh), { accessToken: 'at-new-1', refreshToken: 'rt-new-1' });
});

test('a lock left by a dead process is taken over at once; a live owner is waited for', async (t) => {
  const file = await tempUsers(t, ENTRIES);
  const lock = file + '.lock';
  // A pid that surely is not running: a child that has exited.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  await fs.writeFile(lock, dead);
  const started = Date.now();
  const release = await acquireLock(lock);
  t.true(Date.now() - started < 1_000);
  t.is(await fs.readFile(lock, 'utf8'), String(process.pid));

  // Held by a live process (this one): the next taker waits for the release.
  let second = false;
  const waiting = acquireLock(lock).then((r) => {
    second = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 150));
  t.false(second, 'still waiting while the owner lives');
  await release();
  const release2 = await waiting;
  t.true(second);
  await release2();
});

test('users file validation: unknown keys, missing tokens and bad zones are usage errors', async (t) => {
  for (const [entries, pattern] of [
    [[{ userId: 'A', accessToken: 'x', refreshToken: 'y', token: 'z' }], /unknown key "token"/],
    [[{ userId: 'A', accessToken: '', refreshToken: 'y' }], /"accessToken" must be a non-empty string/],
    [[{ userId: 'A', accessToken: 'x', refreshToken: 'y', timezone: 'Mars/Base' }], /not an IANA zone/],
    [[{ userId: 'A', accessToken: 'x', refreshToken: 'y' }, { userId: 'A', accessToken: 'x2', refreshToken: 'y2' }], /appears twice/],
  ] as const) {
    const file = await tempUsers(t, [...entries]);
    const err = await t.throwsAsync(UsersFile.load(file));
    t.is((err as EtlError).code, 'CONFIG');
    t.regex(err!.message, pattern);
    const message = err!.message.replaceAll(file, '<file>'); // the temp folder's random name may hold anything
    t.false(message.includes('"x"') || message.includes('y2'), 'no token in the message');
  }
});
