// Local staging for objects that must be read from a file (merge by id reads a partition's
// existing file by path): bounded in bytes, so a run against a bucket never fills the disk of
// a small CI runner or container, however many partitions it merges.
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

export const DEFAULT_STAGING_BYTES = 512 * 1024 * 1024;

export interface StagedFile {
  readonly path: string;
  /** Deletes the file (if still there) and gives its room back. */
  release(): Promise<void>;
}

export class Staging {
  readonly dir: string;
  readonly maxBytes: number;
  private used = 0;
  private readonly waiting: Array<{ bytes: number; go: () => void }> = [];
  /** Most bytes held at once (for tests and the bench). */
  peakBytes = 0;

  constructor(dir: string, maxBytes = DEFAULT_STAGING_BYTES) {
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  /**
   * Waits until `bytes` fit under the cap (a file larger than the cap goes alone, when nothing
   * else is staged), then returns a fresh path that owns them. First come, first served.
   */
  async reserve(bytes: number, label: string): Promise<StagedFile> {
    if (this.waiting.length > 0 || !this.fits(bytes)) {
      await new Promise<void>((go) => this.waiting.push({ bytes, go }));
    } else {
      this.take(bytes);
    }
    await mkdir(this.dir, { recursive: true });
    const path = join(this.dir, `${label.replace(/[^A-Za-z0-9._-]/g, '_')}.${randomBytes(6).toString('hex')}.tmp`);
    let released = false;
    return {
      path,
      release: async () => {
        if (released) return;
        released = true;
        try {
          await rm(path, { force: true });
        } finally {
          this.give(bytes);
        }
      },
    };
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.maxBytes;
  }

  private take(bytes: number): void {
    this.used += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.used);
  }

  private give(bytes: number): void {
    this.used -= bytes;
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) {
      const next = this.waiting.shift()!;
      this.take(next.bytes);
      next.go();
    }
  }
}
