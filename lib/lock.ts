// Lock files: exclusive create, the owner's pid inside. A lock whose owner process is gone
// (kill -9) is taken over; a live owner's lock never is, unless it is older than `maxAgeMs`
// (a pid can be reused by an unrelated process).
import { promises as fs } from 'node:fs';
import { sleep } from './http.js';

export interface LockOptions {
  /** How long to wait for a live owner before giving up (0: do not wait). */
  waitMs: number;
  /** A lock file without a readable pid is dead after this long. */
  staleMs?: number;
  /** A lock file is dead after this long whoever holds it. */
  maxAgeMs?: number;
  /** The error to throw when the lock stays held. */
  busy: (ownerPid: number | null) => Error;
}

export async function acquireLock(lockPath: string, options: LockOptions): Promise<() => Promise<void>> {
  const started = Date.now();
  const staleMs = options.staleMs ?? 120_000;
  const maxAgeMs = options.maxAgeMs ?? Number.POSITIVE_INFINITY;
  for (;;) {
    try {
      const handle = await fs.open(lockPath, 'wx', 0o600);
      try {
        await handle.writeFile(String(process.pid));
      } finally {
        await handle.close();
      }
      return async () => {
        await fs.rm(lockPath, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number((await fs.readFile(lockPath, 'utf8').catch(() => '')).trim());
      const known = Number.isInteger(owner) && owner > 0;
      const stat = await fs.stat(lockPath).catch(() => null);
      const age = stat === null ? 0 : Date.now() - stat.mtimeMs;
      const dead = (known && owner !== process.pid && !isAlive(owner)) || (!known && age > staleMs) || age > maxAgeMs;
      if (dead) {
        await fs.rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() - started >= options.waitMs) throw options.busy(known ? owner : null);
      await sleep(25);
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
