// Shared set-up for the Fitbit source tests: the fixture API on loopback, a users file in a
// temporary folder, and sessions built the way the pipelines build them (small delays).
import type { Checked } from '../lib/validate.js';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFixtureApi, writeUsersFile, type FixtureApi, type FixtureOptions } from '../fixtures/server.js';
import { HttpStats, type RetryPolicy } from '../lib/http.js';
import { silentLogger, type Logger } from '../lib/log.js';
import { FitbitSession, FitbitShared, type FitbitClientConfig } from '../sources/fitbit/client.js';
import type { RateLimitOptions } from '../sources/fitbit/rate-limit.js';
import { UsersFile } from '../sources/fitbit/users.js';

/** Small delays so failure modes take milliseconds, not the production minutes. */
export const FAST_RETRY: RetryPolicy = { maxAttempts: 8, baseDelayMs: 5, maxDelayMs: 40, timeoutMs: 400 };
export const FAST_RATE: RateLimitOptions = { limit: 150, jitterMs: [5, 25] };

export interface Rig {
  api: FixtureApi;
  dir: string;
  usersPath: string;
  users: UsersFile;
  stats: HttpStats;
  shared: FitbitShared;
  /** A session for a fixture user id (its humanId as the fixture names it). */
  session(userId: string, extra?: Partial<FitbitClientConfig>, users?: UsersFile): FitbitSession;
}

export async function rig(
  t: { teardown(fn: () => Promise<void>): void },
  options: FixtureOptions = {},
  userIds?: readonly string[],
  log: Logger = silentLogger,
): Promise<Rig> {
  const api = await startFixtureApi(options);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-fitbit-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const usersPath = await writeUsersFile(api, path.join(dir, 'users.json'), userIds);
  const users = await UsersFile.load(usersPath);
  const stats = new HttpStats();
  const shared = new FitbitShared();
  return {
    api,
    dir,
    usersPath,
    users,
    stats,
    shared,
    session: (userId, extra = {}, file = users) => {
      const u = api.fitbit.user(userId);
      return new FitbitSession(
        {
          baseUrl: api.url,
          clientId: api.fitbit.clientId,
          clientSecret: api.fitbit.clientSecret,
          retry: FAST_RETRY,
          rateLimit: FAST_RATE,
          stats,
          log,
          shared,
          ...extra,
        },
        file,
        u.humanId,
        u.userId,
      );
    },
  };
}

/** Fitbit requests of the fixture's log (not token POSTs). */
export function fitbitRequests(api: FixtureApi): FixtureApi['log'] {
  return api.log.filter((e) => e.service === 'fitbit');
}

/** Every token, secret and key the fixture ever issued or holds: none may appear in any output. */
export function fixtureSecrets(api: FixtureApi): string[] {
  const basic = Buffer.from(`${api.fitbit.clientId}:${api.fitbit.clientSecret}`).toString('base64');
  return [...api.fitbit.issuedAccess.keys(), ...api.fitbit.issuedRefresh.keys(), api.fitbit.clientSecret, basic, api.humanapi.appKey];
}

/** Every file below a folder, recursively. */
export async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesBelow(p)));
    else out.push(p);
  }
  return out;
}

/** Secrets found in texts and in every file below the given folders (as bytes, any encoding of the file). */
export async function leakedSecrets(secrets: readonly string[], texts: readonly string[], dirs: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  const haystacks: Array<[string, string]> = texts.map((text, i) => [`text #${i}`, text]);
  for (const dir of dirs) {
    for (const file of await filesBelow(dir)) haystacks.push([file, (await fs.readFile(file)).toString('latin1')]);
  }
  for (const s of secrets) {
    for (const [where, text] of haystacks) {
      if (text.includes(s)) found.push(`${s.slice(0, 6)}… in ${where}`);
    }
  }
  return found;
}

/** The value of a record the source accepted; a rejected one fails the test with its reason. */
export function accepted<T>(checked: Checked<T>): T {
  if (!checked.ok) throw new Error(`the source rejected a record: ${checked.reason}`);
  return checked.value;
}

/** Polls `predicate` every 2 ms until it holds (true) or `timeoutMs` has passed (false). */
export async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (predicate()) return true;
    await new Promise((r) => setTimeout(r, 2));
  }
  return false;
}
