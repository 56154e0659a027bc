// The run report on a large output: <users> × <days> (default 1,000 × 365: 730,000 partition
// files), per user and local date an `intraday` partition of 24 hourly steps points and a
// `daily_summaries` partition with the day's total. About 1 % of user-days are left out
// (missing days) and 0.5 % of day totals differ from the points' sum (reconciliation
// mismatches), so the report has something to find.
//
// The output is written once per shape into the OS temp folder and reused. Each partition is
// encoded as the sink encodes it (sinks/write-partition.ts encodePartition: the fast Parquet
// engine, snappy, the report's facts in the metadata) on one worker thread per core, without
// the sink's buffering, merging and temporary files: writing it through createSink took 1–2
// hours on this machine. The manifests are the sink's
// (writeManifest). Then `writeReport` is timed in processes of their own (compiled, as the CLI
// runs it), wall and CPU seconds and peak RSS:
//   cold     no `_report/cache`: every file's footer is read
//   warm     right after: every file's facts come from the cache (a stat each)
//   touched  after the last day's partitions of both datasets are written again (as a daily
//            run does): those are read, the rest come from the cache
//
//   npx tsx bench/report.ts                      1,000 users × 365 days
//   npx tsx bench/report.ts --users 100 --days 90
//   npx tsx bench/report.ts --generate-only      write the output (if not there yet), time nothing
//
// Writes bench/results/report.json (a smaller shape: bench/results/partial/report.json).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startModuleWorker } from '../lib/worker.js';
import type { ColumnTable } from '../lib/batch.js';
import { COLUMNS, type DailySummaryRecord, type Dataset, type IntradayRecord } from '../lib/schema.js';
import { toColumns } from '../sinks/columns.js';
import { loadCodec } from '../sinks/compression.js';
import { prepareOutput } from '../sinks/files.js';
import { fileFormat, type FileMeta } from '../sinks/formats.js';
import { writeManifest, type ManifestFile } from '../sinks/manifest.js';
import { partitionPath } from '../sinks/partition.js';
import { DEFAULT_ROW_GROUP_ROWS, declaredSortOrder, fileMetadata } from '../sinks/sink.js';
import { packTable } from '../sinks/transfer.js';
import { encodePartition, writePartition } from '../sinks/write-partition.js';
import { ROOT, compile, machine, mb, peakRssMB, printResult, round, runChild, timed, writeResults, option, flag } from './harness.js';

const FIRST_DAY = Date.UTC(2025, 0, 1);
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const SEEN_AT = Date.UTC(2026, 0, 1);
const RUN_ID = '20260101T000000Z-bench0';

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
const missing = (u: number, d: number): boolean => hash01(u, d, 7) < 0.01;
const hourSteps = (u: number, d: number, h: number): number => Math.floor(hash01(u, d, h) * 800);

function intradayRows(u: number, d: number): IntradayRecord[] {
  const humanId = userOf(u);
  const date = dateOf(d);
  return Array.from({ length: 24 }, (_, h) => ({
    id: `bench:${humanId}:steps:${date}T${String(h).padStart(2, '0')}:00:00`,
    date,
    humanId,
    userId: humanId,
    source: 'fitbit',
    type: 'steps',
    timestamp: FIRST_DAY + d * DAY_MS + h * HOUR_MS,
    tzOffset: '+00:00',
    timeZone: 'UTC',
    value: hourSteps(u, d, h),
    unit: 'count',
    interval: 3600,
    level: null,
    mets: null,
    estimated: null,
    createdAt: SEEN_AT,
    updatedAt: SEEN_AT,
  }));
}

function summaryRows(u: number, d: number): DailySummaryRecord[] {
  const humanId = userOf(u);
  const date = dateOf(d);
  let steps = 0;
  for (let h = 0; h < 24; h++) steps += hourSteps(u, d, h);
  if (hash01(u, d, 99) < 0.005) steps += 1 + Math.floor(hash01(u, d, 98) * 50); // a day total that differs
  const id = `fitbit:${humanId}:${date}`;
  return [{ id, date, humanId, userId: humanId, source: 'fitbit', duration: null, distance: null, steps, calories: null, vigorous: null, moderate: null, light: null, sedentary: null, sourceData: '{}', createdAt: SEEN_AT, updatedAt: SEEN_AT }];
}

// ------------------------------------------------------------------ writing the output

interface GenerateJob {
  dir: string;
  users: number;
  /** The days this worker writes. */
  days: number[];
}
type Written = ManifestFile & { dataset: Dataset };

const DATASETS = [
  ['intraday', intradayRows],
  ['daily_summaries', summaryRows],
] as const;
const meta = (dataset: Dataset): FileMeta => ({ keyValueMetadata: fileMetadata(dataset, COLUMNS[dataset], RUN_ID), sortedBy: declaredSortOrder(dataset) });

/** The partitions of a day: each dataset's table of every user but the missing ones. */
function* partitionsOf(users: number, d: number): Generator<{ dataset: Dataset; relPath: string; table: ColumnTable }> {
  for (let u = 0; u < users; u++) {
    if (missing(u, d)) continue;
    for (const [dataset, rows] of DATASETS) {
      // The rows are made in the files' order (timestamp): the table needs no sort.
      yield { dataset, relPath: `${partitionPath(dataset, dateOf(d), userOf(u))}/data.parquet`, table: toColumns(COLUMNS[dataset], rows(u, d)) };
    }
  }
}

/**
 * Writes each day's partition files: encoded as the sink encodes them (encodePartition: the
 * report's facts in the metadata), written straight to their place (no temporary file: an
 * output cut short has no `.complete` and is written again).
 */
async function writeDays(job: GenerateJob, each: (files: Written[]) => void): Promise<void> {
  await loadCodec('snappy');
  const format = fileFormat('parquet', 'snappy', 'fast', DEFAULT_ROW_GROUP_ROWS);
  const metas = new Map<Dataset, FileMeta>(DATASETS.map(([dataset]) => [dataset, meta(dataset)]));
  for (const d of job.days) {
    const files: Written[] = [];
    for (const { dataset, relPath, table } of partitionsOf(job.users, d)) {
      const bytes = await encodePartition(format, dataset, table, metas.get(dataset)!);
      const file = join(job.dir, relPath);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, bytes);
      files.push({ dataset, path: relPath.slice(dataset.length + 1), format: 'parquet', rows: table.rowCount, bytes: bytes.length, runId: RUN_ID });
    }
    each(files);
  }
}

interface Output {
  files: number;
  bytes: number;
  /** Seconds it took to write (null: written by an earlier run). */
  seconds: number | null;
  threads: number;
}

/** Writes the output once per shape, on one worker thread per core (kept in the temp folder for the next run). */
async function generate(users: number, days: number): Promise<{ dir: string; output: Output }> {
  const dir = join(tmpdir(), `wearable-etl-bench-report-${users}x${days}`);
  const done = join(dir, '.complete');
  if (existsSync(done)) return { dir, output: { ...(JSON.parse(await readFile(done, 'utf8')) as Output), seconds: null } };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await prepareOutput(dir);
  const threads = Math.min(4, availableParallelism());
  const manifests = new Map<Dataset, ManifestFile[]>([
    ['intraday', []],
    ['daily_summaries', []],
  ]);
  let files = 0;
  let bytes = 0;
  const { seconds } = await timed(async () => {
    await Promise.all(
      Array.from({ length: threads }, async (_, t) => {
        const job: GenerateJob = { dir, users, days: Array.from({ length: days }, (_, d) => d).filter((d) => d % threads === t) };
        const worker = startModuleWorker(new URL('./report.js', import.meta.url), import.meta.url, { workerData: job });
        worker.on('message', (written: Written[]) => {
          for (const { dataset, ...file } of written) {
            manifests.get(dataset)!.push(file);
            files++;
            bytes += file.bytes;
          }
          if (t === 0) process.stdout.write(`\rwritten ${files.toLocaleString('en-US')} files`);
        });
        await new Promise<void>((resolve, reject) => {
          worker.once('error', reject);
          worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`generating worker exited with ${code}`))));
        });
      }),
    );
    process.stdout.write('\n');
    for (const [dataset, written] of manifests) await writeManifest(dir, dataset, RUN_ID, written, false);
    await mkdir(join(dir, '_runs'), { recursive: true });
    const run = { runId: RUN_ID, startedAt: new Date(SEEN_AT).toISOString(), durationMs: 1000, pipelines: [{ pipeline: 'bench', failedUsers: [], deadLetterFiles: [] }], datasets: [], http: { requests: 0, retries: 0, rateLimited: 0, tokenRefreshes: 0, bytes: 0, rateLimitWaitMs: 0 }, exitCode: 0 };
    await writeFile(join(dir, '_runs', `${RUN_ID}.json`), JSON.stringify(run));
  });
  const output: Output = { files, bytes, seconds, threads };
  await writeFile(done, JSON.stringify(output));
  return { dir, output };
}

/** Writes the last day's partitions of both datasets again (the same rows: merged with their files, as a re-run does). */
async function touchLastDay(dir: string, users: number, days: number): Promise<number> {
  let files = 0;
  for (const { dataset, relPath, table } of partitionsOf(users, days - 1)) {
    const storage = { kind: 'folder' as const, outDir: dir, runId: RUN_ID, durable: false };
    await writePartition({ dataset, format: 'parquet', compression: 'snappy', engine: 'fast', rowGroupRows: DEFAULT_ROW_GROUP_ROWS, meta: meta(dataset), storage, relPath, tables: [packTable(table).packed] });
    files++;
  }
  return files;
}

// ------------------------------------------------------------------ timing the report

interface ChildResult {
  seconds: number;
  cpuSeconds: number;
  peakRssMB: number;
  filesRead: number;
  filesCached: number;
  threads: number;
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
    ...value.reading,
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
  const { dir, output } = await generate(users, days);
  console.log(`output: ${dir} — ${output.files.toLocaleString('en-US')} files, ${mb(output.bytes)} MB${output.seconds === null ? ' (cached)' : `, written in ${round(output.seconds, 1)} s on ${output.threads} threads`}`);
  if (flag('generate-only')) return;
  const [script] = compile(['bench/report.ts', 'pipelines/report-worker.ts']);
  const cases: Record<string, ChildResult & { load: [number, number] }> = {};
  const run = async (name: string): Promise<void> => {
    const { result, load: childLoad } = await runChild<ChildResult>(script!, ['--child', dir]);
    cases[name] = { ...result, load: childLoad };
    console.log(`${name}: ${result.seconds} s wall, ${result.cpuSeconds} s CPU, peak RSS ${result.peakRssMB} MB; ${result.filesRead.toLocaleString('en-US')} files read, ${result.filesCached.toLocaleString('en-US')} from the cache, ${result.threads} threads; load ${childLoad.join(' → ')}`);
  };
  await rm(join(dir, '_report'), { recursive: true, force: true });
  await run('cold');
  await run('warm');
  const touched = await touchLastDay(dir, users, days);
  console.log(`touched: ${touched.toLocaleString('en-US')} partition files of the last day written again`);
  await run('touched');
  const cold = cases['cold']!;
  console.log(JSON.stringify(cold.datasets), `mismatches ${cold.mismatches}; page ${mb(cold.htmlBytes)} MB, summary.json ${mb(cold.summaryBytes)} MB`);
  const path = await writeResults(
    'report',
    { date: new Date().toISOString().slice(0, 10), ...machine(), loadAverageAtStart: round(load, 2), shape: { users, days }, files: output.files, outputMB: mb(output.bytes), generate: output, touchedFiles: touched, cases },
    partial,
  );
  console.log(`results: ${path.replace(ROOT, '')}`);
}

if (isMainThread) await main();
else {
  // A generating worker (generate): writes its days and sends each day's files for the manifests.
  const job = workerData as GenerateJob;
  await writeDays(job, (files) => parentPort!.postMessage(files));
}
