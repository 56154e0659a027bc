// The run report on a large output: <users> × <days> (default 1,000 × 365) written through the
// real sink — per user and local date an `intraday` partition of 24 hourly steps points and a
// `daily_summaries` row with the day's total — then `writeReport` timed on it in a process of its
// own (compiled, as the CLI runs it): wall and CPU seconds, peak RSS.
// About 1 % of user-days are left out (missing days) and 0.5 % of day totals differ from the
// points' sum (reconciliation mismatches), so the report has something to find.
//
//   npx tsx bench/report.ts                      1,000 users × 365 days (the output is cached in the temp folder)
//   npx tsx bench/report.ts --users 100 --days 90
//
// Writes bench/results/report.json (a smaller shape: bench/results/partial/report.json).
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DailySummaryRecord, IntradayRecord } from '../lib/schema.js';
import { createSink, prepareOutput } from '../sinks/index.js';
import { ROOT, compile, dataFilesSize, machine, mb, peakRssMB, printResult, round, runChild, timed, writeResults, option } from './harness.js';

const FIRST_DAY = Date.UTC(2025, 0, 1);
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const SEEN_AT = Date.UTC(2026, 0, 1);

/** Deterministic pseudo-random in [0, 1) from integers (no state: the same output every time). */
function hash01(a: number, b: number, c = 0): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35) ^ Math.imul(c + 0x27d4eb2f, 0x165667b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return (h >>> 0) / 2 ** 32;
}

const dateOf = (day: number): string => new Date(FIRST_DAY + day * DAY_MS).toISOString().slice(0, 10);
const userOf = (u: number): string => `u${String(u).padStart(4, '0')}`;

async function* intradayBatches(users: number, days: number, missing: (u: number, d: number) => boolean): AsyncGenerator<IntradayRecord[]> {
  for (let d = 0; d < days; d++) {
    let batch: IntradayRecord[] = [];
    const date = dateOf(d);
    for (let u = 0; u < users; u++) {
      if (missing(u, d)) continue;
      const humanId = userOf(u);
      for (let h = 0; h < 24; h++) {
        batch.push({
          id: `bench:${humanId}:steps:${date}T${String(h).padStart(2, '0')}:00:00`,
          date,
          humanId,
          userId: humanId,
          source: 'fitbit',
          type: 'steps',
          timestamp: FIRST_DAY + d * DAY_MS + h * HOUR_MS,
          tzOffset: '+00:00',
          timeZone: 'UTC',
          value: Math.floor(hash01(u, d, h) * 800),
          unit: 'count',
          interval: 3600,
          level: null,
          mets: null,
          estimated: null,
          createdAt: SEEN_AT,
          updatedAt: SEEN_AT,
        });
      }
      if (batch.length >= 24_000) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }
}

async function* summaryBatches(users: number, days: number, missing: (u: number, d: number) => boolean): AsyncGenerator<DailySummaryRecord[]> {
  for (let d = 0; d < days; d++) {
    const batch: DailySummaryRecord[] = [];
    const date = dateOf(d);
    for (let u = 0; u < users; u++) {
      if (missing(u, d)) continue;
      const humanId = userOf(u);
      let steps = 0;
      for (let h = 0; h < 24; h++) steps += Math.floor(hash01(u, d, h) * 800);
      if (hash01(u, d, 99) < 0.005) steps += 1 + Math.floor(hash01(u, d, 98) * 50); // a day total that differs
      batch.push({
        id: `fitbit:${humanId}:${date}`,
        date,
        humanId,
        userId: humanId,
        source: 'fitbit',
        duration: null,
        distance: null,
        steps,
        calories: null,
        vigorous: null,
        moderate: null,
        light: null,
        sedentary: null,
        sourceData: '{}',
        createdAt: SEEN_AT,
        updatedAt: SEEN_AT,
      });
    }
    yield batch;
  }
}

/** Writes the output once per shape (kept in the temp folder for the next run). */
async function generate(users: number, days: number): Promise<{ dir: string; seconds: number | null }> {
  const dir = join(tmpdir(), `wearable-etl-bench-report-${users}x${days}`);
  const done = join(dir, '.complete');
  if (existsSync(done)) return { dir, seconds: null };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await prepareOutput(dir);
  const missing = (u: number, d: number): boolean => hash01(u, d, 7) < 0.01;
  const { seconds } = await timed(async () => {
    const runId = '20260101T000000Z-bench0';
    await createSink('intraday', { outDir: dir, format: 'parquet', runId })(intradayBatches(users, days, missing));
    await createSink('daily_summaries', { outDir: dir, format: 'parquet', runId })(summaryBatches(users, days, missing));
    await mkdir(join(dir, '_runs'), { recursive: true });
    const run = { runId, startedAt: new Date(SEEN_AT).toISOString(), durationMs: 1000, pipelines: [{ pipeline: 'bench', failedUsers: [], deadLetterFiles: [] }], datasets: [], http: { requests: 0, retries: 0, rateLimited: 0, tokenRefreshes: 0, bytes: 0, rateLimitWaitMs: 0 }, exitCode: 0 };
    await writeFile(join(dir, '_runs', `${runId}.json`), JSON.stringify(run));
  });
  await writeFile(done, '');
  return { dir, seconds };
}

interface ChildResult {
  seconds: number;
  cpuSeconds: number;
  peakRssMB: number;
  htmlBytes: number;
  summaryBytes: number;
  datasets: Record<string, { rows: number; partitions: number; users: number; missingUserDays: number }>;
  mismatches: number;
}

async function child(dir: string): Promise<void> {
  const { writeReport } = await import('../pipelines/report.js');
  const { value, seconds, cpuSeconds } = await timed(() => writeReport({ outDir: dir }));
  const html = await readFile(value.htmlPath);
  const summary = await readFile(value.summaryPath);
  const result: ChildResult = {
    seconds: round(seconds, 2),
    cpuSeconds: round(cpuSeconds, 2),
    peakRssMB: peakRssMB(),
    htmlBytes: html.length,
    summaryBytes: summary.length,
    datasets: Object.fromEntries(Object.entries(value.summary.datasets).map(([k, d]) => [k, { rows: d.rows, partitions: d.partitions, users: d.users, missingUserDays: d.missingUserDays }])),
    mismatches: value.summary.reconciliation.mismatches,
  };
  printResult(result);
}

async function main(): Promise<void> {
  const childDir = option('child', '');
  if (childDir !== '') return child(childDir);
  const users = Number(option('users', '1000'));
  const days = Number(option('days', '365'));
  const partial = users !== 1000 || days !== 365;
  const load = loadavg()[0]!;
  const { dir, seconds: generateSeconds } = await generate(users, days);
  const size = await dataFilesSize(dir);
  console.log(`output: ${dir} — ${size.files.toLocaleString('en-US')} files, ${mb(size.bytes)} MB${generateSeconds === null ? ' (cached)' : `, written in ${round(generateSeconds, 1)} s`}`);
  const [script] = compile(['bench/report.ts']);
  const { result, load: childLoad } = await runChild<ChildResult>(script!, ['--child', dir]);
  console.log(`report: ${result.seconds} s wall, ${result.cpuSeconds} s CPU, peak RSS ${result.peakRssMB} MB; page ${mb(result.htmlBytes)} MB, summary.json ${mb(result.summaryBytes)} MB`);
  console.log(JSON.stringify(result.datasets), `mismatches ${result.mismatches}`);
  const path = await writeResults(
    'report',
    { date: new Date().toISOString().slice(0, 10), ...machine(), loadAverage: { atStart: round(load, 2), reportStart: childLoad[0], reportEnd: childLoad[1] }, shape: { users, days }, files: size.files, outputMB: mb(size.bytes), generateSeconds: generateSeconds === null ? null : round(generateSeconds, 1), ...result },
    partial,
  );
  console.log(`results: ${path.replace(ROOT, '')}`);
}

await main();
