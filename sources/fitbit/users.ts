// The Fitbit entries of the users file (CONTRACTS.md): who to fetch, with which tokens.
// The file itself — other providers' entries, the lock, atomic write-back of rotated
// refresh tokens — is lib/users-file.ts.
import { isValidZone } from '../../lib/dates.js';
import { EtlError } from '../../lib/errors.js';
import { UsersFile as SharedUsersFile, acquireUsersFileLock, type TokenPair } from '../../lib/users-file.js';

export type { TokenPair };

export interface UserEntry {
  userId: string;
  humanId: string;
  accessToken: string;
  refreshToken: string;
  timezone?: string;
}

const PROVIDER = 'fitbit';
const KNOWN_KEYS = new Set(['provider', 'userId', 'humanId', 'accessToken', 'refreshToken', 'timezone']);

/** Checks one Fitbit entry of the users file (unknown keys rejected). */
export function parseUser(o: Readonly<Record<string, unknown>>, where: string, file: string): UserEntry {
  for (const key of Object.keys(o)) {
    if (!KNOWN_KEYS.has(key)) throw new EtlError('CONFIG', `${where}: unknown key "${key}" (allowed for Fitbit users: ${[...KNOWN_KEYS].join(', ')})`, { file });
  }
  for (const key of ['userId', 'accessToken', 'refreshToken'] as const) {
    const value = o[key];
    if (typeof value !== 'string' || value.length === 0) throw new EtlError('CONFIG', `${where}: "${key}" must be a non-empty string`, { file });
  }
  for (const key of ['humanId', 'timezone'] as const) {
    const value = o[key];
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
      throw new EtlError('CONFIG', `${where}: "${key}" must be a non-empty string when given`, { file });
    }
  }
  const entry: UserEntry = {
    userId: o['userId'] as string,
    humanId: (o['humanId'] as string | undefined) ?? (o['userId'] as string),
    accessToken: o['accessToken'] as string,
    refreshToken: o['refreshToken'] as string,
  };
  const zone = o['timezone'];
  if (typeof zone === 'string') {
    if (!isValidZone(zone)) throw new EtlError('CONFIG', `${where}: timezone "${zone}" is not an IANA zone`, { file });
    entry.timezone = zone;
  }
  return entry;
}

export { isValidZone };

/** The Fitbit users of a users file (entries without `provider`, or `"provider": "fitbit"`). */
export class UsersFile {
  readonly path: string;
  private readonly file: SharedUsersFile;
  private readonly entries: UserEntry[];
  private readonly indexOf = new Map<string, number>();

  private constructor(file: SharedUsersFile) {
    this.path = file.path;
    this.file = file;
    const parsed = file.entries(PROVIDER).map((e) => ({ index: e.index, entry: parseUser(e.fields, `users file ${file.path}, entry ${e.index}`, file.path) }));
    const seen = new Set<string>();
    for (const { index, entry } of parsed) {
      if (seen.has(entry.humanId)) throw new EtlError('CONFIG', `users file ${file.path}, entry ${index}: humanId "${entry.humanId}" appears twice`, { file: file.path });
      seen.add(entry.humanId);
      this.indexOf.set(entry.humanId, index);
    }
    this.entries = parsed.map((p) => p.entry);
  }

  static async load(file: string): Promise<UsersFile> {
    return new UsersFile(await SharedUsersFile.load(file));
  }

  /** The Fitbit users of an already loaded users file. */
  static of(file: SharedUsersFile): UsersFile {
    return new UsersFile(file);
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
  async rotate(humanId: string, staleAccessToken: string, refresh: (refreshToken: string) => Promise<TokenPair>): Promise<TokenPair> {
    const mine = this.find(humanId);
    const index = this.indexOf.get(humanId) as number;
    const pair = await this.file.rotate(index, staleAccessToken, refresh);
    mine.accessToken = pair.accessToken;
    mine.refreshToken = pair.refreshToken;
    return pair;
  }
}

/** The users-file lock (lib/users-file.ts), under its old name for the tests that hold it. */
export const acquireLock = acquireUsersFileLock;
