// The users file (CONTRACTS.md): one JSON array for every provider. An entry's `provider`
// names who validates it (sources/<provider>/users.ts); an entry without one is a legacy
// Fitbit user. This module knows only the file: reading it, handing each provider its own
// entries, and rotating one entry's tokens.
//
// Refresh tokens are single-use (API-REFERENCE.md §A.6, §D.6; Google's rotate too): a rotated
// pair is written back atomically before it is used, under a lock, so two refreshes for one
// user never both spend the old token — neither within this process nor across two runs
// sharing the file.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { EtlError } from './errors.js';
import { writeFileAtomic } from './fs.js';
import { acquireLock as acquireFileLock } from './lock.js';

/** The provider of an entry that names none (the users files written before there were others). */
export const LEGACY_PROVIDER = 'fitbit';

export interface UsersFileEntry {
  /** Position in the file's array (for messages and rotation). */
  readonly index: number;
  readonly provider: string;
  /** The entry as written; the provider's parser checks it. */
  readonly fields: Readonly<Record<string, unknown>>;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

function parseArray(text: string, file: string): UsersFileEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new EtlError('CONFIG', `users file ${file} is not valid JSON: ${(err as Error).message}`, { file });
  }
  if (!Array.isArray(data)) throw new EtlError('CONFIG', `users file ${file} must hold a JSON array of users`, { file });
  return data.map((item: unknown, index: number): UsersFileEntry => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new EtlError('CONFIG', `users file ${file}, entry ${index}: not an object`, { file });
    const fields = item as Record<string, unknown>;
    const provider = fields['provider'] ?? LEGACY_PROVIDER;
    if (typeof provider !== 'string' || provider.length === 0) throw new EtlError('CONFIG', `users file ${file}, entry ${index}: "provider" must be a non-empty string`, { file });
    return { index, provider, fields };
  });
}

function tokensOf(fields: Readonly<Record<string, unknown>>): TokenPair | null {
  const { accessToken, refreshToken } = fields;
  return typeof accessToken === 'string' && typeof refreshToken === 'string' ? { accessToken, refreshToken } : null;
}

/** Which of an entry's fields name it across edits of the file (its position may change). */
const IDENTITY_KEYS = ['provider', 'humanId', 'userId', 'archive'] as const;

function sameEntry(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  return IDENTITY_KEYS.every((k) => a[k] === b[k]);
}

export class UsersFile {
  readonly path: string;
  /** Relative paths inside entries (a Takeout archive) are relative to this folder. */
  readonly dir: string;
  private readonly all: UsersFileEntry[];
  private readonly inflight = new Map<number, Promise<TokenPair>>();

  private constructor(file: string, entries: UsersFileEntry[]) {
    this.path = file;
    this.dir = path.dirname(file);
    this.all = entries;
  }

  static async load(file: string): Promise<UsersFile> {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new EtlError('CONFIG', `cannot read users file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
    }
    return UsersFile.parse(text, path.resolve(file));
  }

  static parse(text: string, file: string): UsersFile {
    return new UsersFile(file, parseArray(text, file));
  }

  /** Every provider named in the file, legacy entries as `fitbit`. */
  providers(): Set<string> {
    return new Set(this.all.map((e) => e.provider));
  }

  entries(provider: string): UsersFileEntry[] {
    return this.all.filter((e) => e.provider === provider);
  }

  /** Fails on an entry whose provider is none of `known`, naming it. */
  checkProviders(known: readonly string[]): void {
    for (const e of this.all) {
      if (!known.includes(e.provider)) {
        throw new EtlError('CONFIG', `users file ${this.path}, entry ${e.index}: unknown provider "${e.provider}" (known: ${known.join(', ')})`, { file: this.path });
      }
    }
  }

  /**
   * Rotates the tokens of the entry at `index`. `refresh` spends the refresh token it is given
   * and returns the new pair. Concurrent callers share one rotation; a rotation another process
   * already wrote to the file is adopted instead of spending a token twice. Only the two tokens
   * of that entry change; every other entry and key stays as the file had it.
   */
  rotate(index: number, staleAccessToken: string | undefined, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair> {
    const running = this.inflight.get(index);
    if (running) return running;
    const job = this.rotateLocked(index, staleAccessToken, refresh).finally(() => this.inflight.delete(index));
    this.inflight.set(index, job);
    return job;
  }

  private async rotateLocked(index: number, staleAccessToken: string | undefined, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair> {
    const mine = this.all[index];
    if (!mine) throw new EtlError('CONFIG', `users file ${this.path} has no entry ${index}`);
    const current = tokensOf(mine.fields);
    // Already rotated by an earlier caller of this run.
    if (current && current.accessToken !== staleAccessToken) return { ...current };
    const who = String(mine.fields['humanId'] ?? mine.fields['userId'] ?? `entry ${index}`);
    const release = await acquireUsersFileLock(this.path + '.lock');
    try {
      // Another run may have rotated since we read the file: adopt its tokens.
      const text = await fs.readFile(this.path, 'utf8');
      const onDisk = parseArray(text, this.path);
      const theirs = onDisk[index] && sameEntry(onDisk[index].fields, mine.fields) ? onDisk[index] : onDisk.find((e) => sameEntry(e.fields, mine.fields));
      if (!theirs) throw new EtlError('CONFIG', `user ${who}: the entry is no longer in ${this.path} (the file changed during the run)`, { user: who, file: this.path });
      const onDiskPair = tokensOf(theirs.fields);
      if (onDiskPair && onDiskPair.accessToken !== staleAccessToken) return this.adopt(index, onDiskPair);
      const refreshToken = theirs.fields['refreshToken'] ?? mine.fields['refreshToken'];
      if (typeof refreshToken !== 'string' || refreshToken.length === 0) throw new EtlError('AUTH_EXPIRED', `user ${who}: no refresh token in ${this.path}; authorise this user again`, { user: who });
      const fresh = await refresh(refreshToken);
      // Persist before use: the old refresh token is already spent.
      const raw = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as Array<Record<string, unknown>>;
      raw[theirs.index] = { ...raw[theirs.index], accessToken: fresh.accessToken, refreshToken: fresh.refreshToken };
      try {
        await writeFileAtomic(this.path, JSON.stringify(raw, null, 2) + '\n', 0o600);
      } catch (err) {
        throw new EtlError(
          'AUTH_EXPIRED',
          `user ${who}: the token was refreshed but the new pair could not be written to ${this.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the old refresh token is spent, so re-authorise this user`,
          { user: who, file: this.path },
        );
      }
      return this.adopt(index, fresh);
    } finally {
      await release();
    }
  }

  private adopt(index: number, pair: TokenPair): TokenPair {
    const e = this.all[index];
    this.all[index] = { ...e, fields: { ...e.fields, accessToken: pair.accessToken, refreshToken: pair.refreshToken } };
    return { ...pair };
  }

  /** The entry's current fields (after any rotation). */
  fieldsOf(index: number): Readonly<Record<string, unknown>> {
    const e = this.all[index];
    if (!e) throw new EtlError('CONFIG', `users file ${this.path} has no entry ${index}`);
    return e.fields;
  }
}

/**
 * The users-file lock: held only around a token refresh, so a live owner is waited for (up to
 * `timeoutMs`); taken over when its owner is gone or after 30 minutes.
 */
export function acquireUsersFileLock(lockPath: string, staleMs = 120_000, timeoutMs = 600_000): Promise<() => Promise<void>> {
  return acquireFileLock(lockPath, {
    waitMs: timeoutMs,
    staleMs,
    maxAgeMs: 30 * 60_000,
    busy: () => new EtlError('CONFIG', `users file is locked by another run (${lockPath}); remove the lock if no run is active`),
  });
}
