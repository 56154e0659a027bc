// The Fitbit users file (CONTRACTS.md): who to fetch, with which tokens. Refresh tokens are
// single-use (API-REFERENCE.md §A.6, §D.6): a rotated pair is written back atomically before
// it is used, under a lock, so two refreshes for one user never both spend the old token —
// neither within this process nor across two runs sharing the file.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { EtlError } from '../../lib/errors.js';
import { writeFileAtomic } from '../../lib/fs.js';
import { acquireLock as acquireFileLock } from '../../lib/lock.js';

export interface UserEntry {
  userId: string;
  humanId: string;
  accessToken: string;
  refreshToken: string;
  timezone?: string;
}

const KNOWN_KEYS = new Set(['userId', 'humanId', 'accessToken', 'refreshToken', 'timezone']);

export function parseUsers(text: string, file: string): UserEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new EtlError('CONFIG', `users file ${file} is not valid JSON: ${(err as Error).message}`, { file });
  }
  if (!Array.isArray(data)) throw new EtlError('CONFIG', `users file ${file} must hold a JSON array of users`, { file });
  const seen = new Set<string>();
  return data.map((item: unknown, i: number): UserEntry => {
    const where = `users file ${file}, entry ${i}`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new EtlError('CONFIG', `${where}: not an object`, { file });
    const o = item as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (!KNOWN_KEYS.has(key)) throw new EtlError('CONFIG', `${where}: unknown key "${key}" (allowed: ${[...KNOWN_KEYS].join(', ')})`, { file });
    }
    for (const key of ['userId', 'accessToken', 'refreshToken'] as const) {
      if (typeof o[key] !== 'string' || (o[key] as string).length === 0) throw new EtlError('CONFIG', `${where}: "${key}" must be a non-empty string`, { file });
    }
    for (const key of ['humanId', 'timezone'] as const) {
      if (o[key] !== undefined && (typeof o[key] !== 'string' || (o[key] as string).length === 0)) {
        throw new EtlError('CONFIG', `${where}: "${key}" must be a non-empty string when given`, { file });
      }
    }
    const entry: UserEntry = {
      userId: o.userId as string,
      humanId: (o.humanId as string | undefined) ?? (o.userId as string),
      accessToken: o.accessToken as string,
      refreshToken: o.refreshToken as string,
    };
    if (typeof o.timezone === 'string') {
      if (!isValidZone(o.timezone)) throw new EtlError('CONFIG', `${where}: timezone "${o.timezone}" is not an IANA zone`, { file });
      entry.timezone = o.timezone;
    }
    if (seen.has(entry.humanId)) throw new EtlError('CONFIG', `${where}: humanId "${entry.humanId}" appears twice`, { file });
    seen.add(entry.humanId);
    return entry;
  });
}

export function isValidZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

export class UsersFile {
  readonly path: string;
  private entries: UserEntry[];
  private readonly inflight = new Map<string, Promise<TokenPair>>();

  private constructor(file: string, entries: UserEntry[]) {
    this.path = file;
    this.entries = entries;
  }

  static async load(file: string): Promise<UsersFile> {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new EtlError('CONFIG', `cannot read users file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
    }
    return new UsersFile(path.resolve(file), parseUsers(text, file));
  }

  users(): readonly UserEntry[] {
    return this.entries;
  }

  tokens(humanId: string): TokenPair {
    const e = this.find(humanId);
    return { accessToken: e.accessToken, refreshToken: e.refreshToken };
  }

  private find(humanId: string): UserEntry {
    const e = this.entries.find((u) => u.humanId === humanId);
    if (!e) throw new EtlError('CONFIG', `user ${humanId} is not in ${this.path}`);
    return e;
  }

  /**
   * Rotates the tokens of one user. `refresh` spends the refresh token it is given and
   * returns the new pair. Concurrent callers share one rotation; a rotation another process
   * already wrote to the file is adopted instead of spending a token twice.
   */
  rotate(humanId: string, staleAccessToken: string, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair> {
    const running = this.inflight.get(humanId);
    if (running) return running;
    const job = this.rotateLocked(humanId, staleAccessToken, refresh).finally(() => this.inflight.delete(humanId));
    this.inflight.set(humanId, job);
    return job;
  }

  private async rotateLocked(humanId: string, staleAccessToken: string, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair> {
    const mine = this.find(humanId);
    if (mine.accessToken !== staleAccessToken) return { accessToken: mine.accessToken, refreshToken: mine.refreshToken };
    const release = await acquireLock(this.path + '.lock');
    try {
      // Another run may have rotated since we read the file: adopt its tokens.
      const text = await fs.readFile(this.path, 'utf8');
      const onDisk = parseUsers(text, this.path);
      const index = onDisk.findIndex((u) => u.humanId === humanId);
      const theirs = index >= 0 ? onDisk[index] : undefined;
      if (theirs && theirs.accessToken !== staleAccessToken) {
        mine.accessToken = theirs.accessToken;
        mine.refreshToken = theirs.refreshToken;
        return { accessToken: mine.accessToken, refreshToken: mine.refreshToken };
      }
      const fresh = await refresh(theirs?.refreshToken ?? mine.refreshToken);
      // Persist before use: the old refresh token is already spent. Only the two tokens change;
      // every other entry and key stays as the file had it.
      const raw = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as Array<Record<string, unknown>>;
      if (index >= 0) raw[index] = { ...raw[index], accessToken: fresh.accessToken, refreshToken: fresh.refreshToken };
      else raw.push({ userId: mine.userId, humanId, accessToken: fresh.accessToken, refreshToken: fresh.refreshToken });
      try {
        await writeFileAtomic(this.path, JSON.stringify(raw, null, 2) + '\n', 0o600);
      } catch (err) {
        throw new EtlError(
          'AUTH_EXPIRED',
          `user ${humanId}: the token was refreshed but the new pair could not be written to ${this.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the old refresh token is spent, so re-authorise this user`,
          { user: humanId, file: this.path },
        );
      }
      mine.accessToken = fresh.accessToken;
      mine.refreshToken = fresh.refreshToken;
      return fresh;
    } finally {
      await release();
    }
  }
}

/**
 * The users-file lock: held only around a token refresh, so a live owner is waited for (up to
 * `timeoutMs`); taken over when its owner is gone or after 30 minutes.
 */
export function acquireLock(lockPath: string, staleMs = 120_000, timeoutMs = 600_000): Promise<() => Promise<void>> {
  return acquireFileLock(lockPath, {
    waitMs: timeoutMs,
    staleMs,
    maxAgeMs: 30 * 60_000,
    busy: () => new EtlError('CONFIG', `users file is locked by another run (${lockPath}); remove the lock if no run is active`),
  });
}
