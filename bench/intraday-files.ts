// Recorded intraday responses for the end-to-end benchmarks: <users> × <days> one-minute
// Fitbit steps responses, one file per user and local date, in the layout sources/replay reads.
// Minute values are the real Fitabase minute steps (fixtures/data), cycled over users and days;
// minutes of hours Fitabase has no row for are 0, so every day has all 1,440 points. The window
// starts on 2024-03-10, the US spring-forward day, and users are spread over zones so that it
// also holds Europe's spring-forward (03-31) and Sydney's fall-back (04-07) days.
// Bodies are written the way the fixture API (and Fitbit) serialise them; every 10th file
// starts with a UTF-8 BOM, as the Fitbit.NET samples do.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFitabaseMinutes } from '../fixtures/data-load.js';
import { REPLAY_MANIFEST, type ReplayManifest } from '../sources/replay/index.js';

export interface IntradayFilesShape {
  users: number;
  days: number;
}

export const WINDOW_START = '2024-03-10';
export const ZONES = ['America/Los_Angeles', 'America/New_York', 'Europe/Berlin', 'Australia/Sydney', 'Asia/Kolkata'] as const;
/** createdAt/updatedAt of every row, so that both sides write the same values. */
export const SEEN_AT = Date.UTC(2024, 3, 10, 12);

export interface IntradayFiles {
  dir: string;
  users: number;
  days: number;
  files: number;
  points: number;
  bytes: number;
}

const VERSION = 1;
const DONE = '.complete.json';

function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** 1,440 minute step counts per (user, day), from the real Fitabase minutes. */
function minuteSteps(): Uint16Array[] {
  const days: Uint16Array[] = [];
  for (const user of loadFitabaseMinutes()) {
    for (const d of user.days) {
      const steps = new Uint16Array(1440);
      d.hours.forEach((h, i) => {
        for (let k = 0; k < 60; k++) steps[h * 60 + k] = d.steps[i * 60 + k]!;
      });
      days.push(steps);
    }
  }
  return days;
}

const TIMES = Array.from({ length: 1440 }, (_, m) => `${pad(Math.floor(m / 60))}:${pad(m % 60)}:00`);

/** The body the API sends for one day of 1-minute steps (the fixture's JSON.stringify shape). */
export function stepsBody(date: string, steps: ArrayLike<number>): string {
  const points: string[] = new Array<string>(1440);
  let total = 0;
  for (let m = 0; m < 1440; m++) {
    points[m] = `{"time":"${TIMES[m]}","value":${steps[m]}}`;
    total += steps[m]!;
  }
  return `{"activities-steps":[{"dateTime":"${date}","value":"${total}"}],"activities-steps-intraday":{"dataset":[${points.join(',')}],"datasetInterval":1,"datasetType":"minute"}}`;
}

export function userIdOf(u: number): string {
  return `B${String(u).padStart(5, '0')}`;
}

/**
 * Writes the files under `root` (default: a folder in the OS temp dir named after the shape),
 * unless a complete set of the same shape and version is already there.
 */
export async function ensureIntradayFiles(shape: IntradayFilesShape, root?: string): Promise<IntradayFiles> {
  const dir = root ?? join(tmpdir(), 'wearable-etl-bench', `intraday-${shape.users}x${shape.days}-v${VERSION}`);
  const marker = join(dir, DONE);
  if (existsSync(marker)) {
    return JSON.parse(await readFile(marker, 'utf8')) as IntradayFiles;
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const source = minuteSteps();
  const manifest: ReplayManifest = { detail: '1min', users: [] };
  let files = 0;
  let bytes = 0;
  for (let u = 0; u < shape.users; u++) {
    const userId = userIdOf(u);
    const timezone = ZONES[u % ZONES.length]!;
    manifest.users.push({ userId, humanId: `bench-${u}`, timezone, units: 'metric' });
    const folder = join(dir, userId, 'steps');
    await mkdir(folder, { recursive: true });
    const writes: Promise<void>[] = [];
    for (let d = 0; d < shape.days; d++) {
      const date = addDays(WINDOW_START, d);
      let body = stepsBody(date, source[(u * 7 + d) % source.length]!);
      if (files % 10 === 0) body = `\ufeff${body}`;
      const data = Buffer.from(body, 'utf8');
      bytes += data.length;
      files++;
      writes.push(writeFile(join(folder, `${date}.json`), data));
    }
    await Promise.all(writes);
  }
  await writeFile(join(dir, REPLAY_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  const result: IntradayFiles = { dir, users: shape.users, days: shape.days, files, points: files * 1440, bytes };
  await writeFile(marker, JSON.stringify(result) + '\n');
  return result;
}
