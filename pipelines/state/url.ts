// `--state` / WEARABLE_ETL_STATE_URL: a state file (the default, <out>/_state/<pipeline>.json)
// or a PostgreSQL URL. Any other URL scheme is a usage error, never a file named `mysql:`.
import path from 'node:path';
import { EtlError } from '../../lib/errors.js';

export type StateTarget =
  /** null: the default file per pipeline under <out>/_state/ */
  | { kind: 'file'; path: string | null }
  | { kind: 'postgres'; url: string };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]+):\/\//;

function postgresOrError(value: string, where: string): StateTarget {
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  if (scheme !== 'postgres' && scheme !== 'postgresql') {
    throw new EtlError('USAGE', `${where} takes a file or a postgres://user@host:port/database URL; the scheme ${scheme ?? '(none)'}:// is not supported (${redactStateUrl(value)})`);
  }
  try {
    new URL(value);
  } catch {
    throw new EtlError('USAGE', `${where}: ${redactStateUrl(value)} is not a valid URL`);
  }
  return { kind: 'postgres', url: value };
}

/** `--state` wins; else WEARABLE_ETL_STATE_URL (a PostgreSQL URL); else the default files. */
export function resolveStateTarget(flag: string | undefined, env: NodeJS.ProcessEnv, cwd = process.cwd()): StateTarget {
  if (flag !== undefined && flag !== '') {
    if (SCHEME.test(flag)) return postgresOrError(flag, '--state');
    return { kind: 'file', path: path.resolve(cwd, flag) };
  }
  const fromEnv = env.WEARABLE_ETL_STATE_URL;
  if (fromEnv) return postgresOrError(fromEnv, 'WEARABLE_ETL_STATE_URL');
  return { kind: 'file', path: null };
}

/** The URL without its password, for messages and logs. */
export function redactStateUrl(value: string): string {
  try {
    const u = new URL(value);
    if (u.password) u.password = 'REDACTED';
    for (const key of [...u.searchParams.keys()]) if (/pass|secret|key/i.test(key)) u.searchParams.set(key, 'REDACTED');
    return u.toString();
  } catch {
    return value.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:REDACTED@');
  }
}
