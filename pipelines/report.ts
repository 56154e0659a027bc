// `wearable-etl report`: reads an output root — the partition files themselves, the datasets'
// manifests, `_runs/*.json` and the dead letters — and writes `<out>/_report/index.html` (one
// self-contained page, pipelines/report-html.ts) and `<out>/_report/summary.json`.
//
// Memory: files are read one at a time, only the columns needed (intraday: type, value,
// interval; daily_summaries: source, steps; other datasets: the row count in the footer), and
// reduced at once to one cell per partition (a user and a local date: rows, points present
// per type, the day's steps) in typed arrays (report-data.ts DatasetCells). Only the cells grow
// with the number of partitions (30–40 bytes each), never with rows: the dates are read one at
// a time (a few ahead on the workers), the manifests are streamed and checked date by date
// alongside (report-manifest.ts), dead letters are streamed line by line and only the last
// MAX_RUNS run summaries are read. Peak RSS at 1,000 users × 365 days: ~310 MB, 1,000 × 90:
// ~285 MB (bench/README.md).
import { createReadStream, existsSync, promises as fs, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { EtlError, errorMessage } from '../lib/errors.js';
import { parseOutTarget } from '../sinks/object-store/url.js';
import { writeFileAtomic } from '../lib/fs.js';
import { DATASETS, type Dataset } from '../lib/schema.js';
import type { Worker } from 'node:worker_threads';
import { MANIFEST_FILE, unescapePartitionValue, type PartitionFacts } from '../sinks/index.js';
import { ManifestCheck } from './report-manifest.js';
import { cacheDir, listDir, scanDates, startScanWorkers } from './report-scan.js';
import {
  COVERAGE_DATASETS,
  DatasetCells,
  HEATMAP_MAX_DAY_COLUMNS,
  HEATMAP_MAX_USERS,
  MAX_MISMATCHES_LISTED,
  dateOf,
  windowOf,
  type DatasetReport,
  type Mismatch,
  type ReconciliationReport,
  type ReportData,
  type ReportSummary,
  type RunReport,
  type UserSummary,
} from './report-data.js';
import { renderReportHtml } from './report-html.js';

export type { DatasetReport, ReportData, ReportSummary, RunReport } from './report-data.js';

export const REPORT_DIR = '_report';
/** Run summaries shown (the newest). */
export const MAX_RUNS = 30;
const MAX_REASONS = 20;
const DATE_DIR = /^date=(\d{4}-\d{2}-\d{2})$/;

// ------------------------------------------------------------------ reading partition files

/** Adds one partition file's facts to its cell: per type the share of expected points, the steps, the day totals. */
function addFacts(cells: DatasetCells, cell: number, facts: PartitionFacts): void {
  // A day has 86,400 / interval buckets (1,440 at 1min); a fall-back day may hold a few more.
  for (const [type, [n, interval]] of Object.entries(facts.points ?? {})) cells.setShare(cell, type, Math.min(1, (n * interval) / 86_400));
  if (facts.steps !== undefined && facts.steps !== null) cells.steps[cell] = facts.steps;
  for (const [source, steps] of facts.summaries ?? []) {
    cells.addSummary(cell, source, steps);
  }
}

/** Outputs with fewer partitions than this are read on the calling thread (starting workers costs more). */
const WORKER_MIN_PARTITIONS = 5_000;

interface ScannedDataset {
  cells: DatasetCells;
  report: DatasetReport;
  /** Files read, and files whose facts came from the cache. */
  read: number;
  cached: number;
}

/** Walks <out>/<dataset>/date=*\/user=*\/ and reduces each partition file to its cell. */
async function scanDataset(outDir: string, dataset: Dataset, workers: (partitions: number) => Worker[]): Promise<ScannedDataset | null> {
  const root = path.join(outDir, dataset);
  const dates = listDir(root).filter((d) => DATE_DIR.test(d));
  // The manifest is streamed alongside the scan, date by date (report-manifest.ts): never held whole.
  const manifestFile = path.join(root, MANIFEST_FILE);
  const check = existsSync(manifestFile) ? new ManifestCheck(manifestFile) : null;
  if (dates.length === 0 && check === null) return null;
  pruneCache(outDir, dataset, dates);
  const cells = new DatasetCells();
  const formats = new Set<string>();
  let rows = 0;
  let files = 0;
  let bytes = 0;
  let read = 0;
  let cached = 0;
  const estimate = dates.length * listDir(path.join(root, dates[dates.length >> 1] ?? '.')).length;
  try {
    for await (const scanned of scanDates(outDir, dataset, dates, workers(estimate))) {
      const date = DATE_DIR.exec(scanned.dateDir)![1]!;
      read += scanned.read;
      cached += scanned.cached;
      await check?.date(scanned.dateDir);
      let lastUser = '';
      let cell = -1;
      for (const file of scanned.files) {
        bytes += file.bytes;
        formats.add(file.name.endsWith('.arrow') ? 'arrow' : 'parquet');
        files++;
        rows += file.facts.rows;
        check?.file(`${scanned.dateDir}/${file.userDir}/${file.name}`, file.facts.rows);
        // A partition's files (data.parquet, then data.arrow) come one after the other: one cell.
        if (file.userDir !== lastUser) cell = cells.add(unescapePartitionValue(file.userDir.slice('user='.length)), date, file.facts.rows);
        else cells.rows[cell] = cells.rows[cell]! + file.facts.rows;
        lastUser = file.userDir;
        addFacts(cells, cell, file.facts);
      }
    }
  } catch (err) {
    await check?.close();
    throw err;
  }
  // An unreadable manifest counts as none, as for the sink (readManifest).
  const manifest = (await check?.finish()) ?? null;
  if (dates.length === 0 && manifest === null) return null;
  cells.trim();
  const report: DatasetReport = {
    rows,
    partitions: cells.size,
    files,
    bytes,
    users: cells.users.length,
    firstDate: null,
    lastDate: null,
    formats: [...formats].sort(),
    missingUserDays: 0,
    manifest: manifest ?? { present: false, files: 0, missingFileCount: 0, missingFiles: [], unlistedCount: 0, unlisted: [], rowMismatchCount: 0, rowMismatches: [] },
    deadLetters: { count: 0, reasons: [] },
    perUser: [],
  };
  summarizeUsers(dataset, cells, report);
  return { cells, report, read, cached };
}

/** Removes the cache of dates that have no folder any more. */
function pruneCache(outDir: string, dataset: Dataset, dates: readonly string[]): void {
  const keep = new Set(dates.map((d) => `${d}.json`));
  const dir = cacheDir(outDir, dataset);
  for (const name of listDir(dir)) if (!keep.has(name)) rmSync(path.join(dir, name), { force: true, recursive: true });
}

/** Days without a partition as ranges: [3,4,5,9] → ["a..c", "i"]. */
function dayRanges(days: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < days.length; ) {
    let j = i;
    while (j + 1 < days.length && days[j + 1] === days[j]! + 1) j++;
    out.push(i === j ? dateOf(days[i]!) : `${dateOf(days[i]!)}..${dateOf(days[j]!)}`);
    i = j + 1;
  }
  return out;
}

function summarizeUsers(dataset: Dataset, cells: DatasetCells, report: DatasetReport): void {
  const window = windowOf(cells);
  if (window === null) return;
  report.firstDate = dateOf(window.first);
  report.lastDate = dateOf(window.last);
  const span = window.last - window.first + 1;
  const types = [...cells.share.keys()].sort();
  const byUser = cells.users.map(() => ({ rows: 0, days: [] as number[], shareSum: new Map<string, number>() }));
  for (let c = 0; c < cells.size; c++) {
    const u = byUser[cells.user[c]!]!;
    u.rows += cells.rows[c]!;
    u.days.push(cells.day[c]!);
    for (const t of types) u.shareSum.set(t, (u.shareSum.get(t) ?? 0) + cells.shareOf(t, c));
  }
  const totalShare = new Map<string, number>();
  report.perUser = byUser.map((u, i) => {
    u.days.sort((a, b) => a - b);
    const missing: number[] = [];
    for (let d = window.first, k = 0; d <= window.last; d++) {
      while (k < u.days.length && u.days[k]! < d) k++;
      if (u.days[k] !== d) missing.push(d);
    }
    report.missingUserDays += missing.length;
    const entry: UserSummary = {
      user: cells.users[i]!,
      rows: u.rows,
      days: u.days.length,
      firstDate: dateOf(u.days[0]!),
      lastDate: dateOf(u.days[u.days.length - 1]!),
      missingDays: dayRanges(missing),
      missingDayCount: missing.length,
    };
    if (types.length > 0) {
      entry.coverage = Object.fromEntries(types.map((t) => [t, round4((u.shareSum.get(t) ?? 0) / span)]));
      for (const t of types) totalShare.set(t, (totalShare.get(t) ?? 0) + (u.shareSum.get(t) ?? 0));
    }
    return entry;
  });
  report.perUser.sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  if (types.length > 0) report.coverage = Object.fromEntries(types.map((t) => [t, round4((totalShare.get(t) ?? 0) / (span * cells.users.length))]));
  if (!COVERAGE_DATASETS.has(dataset)) report.missingUserDays = 0;
}

const round4 = (x: number): number => Math.round(x * 10_000) / 10_000;

// ------------------------------------------------------------------ reconciliation

/** Intraday cells with steps, sorted by user and day, to be found by binary search (no map of a key per partition). */
class StepsIndex {
  private readonly base: number;
  private readonly keys: Float64Array;
  private readonly cellOf: Int32Array;

  constructor(private readonly cells: DatasetCells) {
    this.base = windowOf(cells)?.first ?? 0;
    const withSteps: number[] = [];
    for (let c = 0; c < cells.size; c++) if (!Number.isNaN(cells.steps[c]!)) withSteps.push(c);
    const keyOf = (c: number): number => this.key(cells.user[c]!, cells.day[c]!);
    const order = Int32Array.from(withSteps).sort((a, b) => keyOf(a) - keyOf(b) || a - b);
    this.cellOf = order;
    this.keys = Float64Array.from(order, keyOf);
  }

  private key(user: number, day: number): number {
    return user * 2 ** 20 + (day - this.base);
  }

  get size(): number {
    return this.keys.length;
  }

  /** The position of the user-day's cell (the last of equal ones, as a map keeps the last), or -1. */
  find(userName: string, day: number): number {
    const user = this.cells.userOf(userName);
    if (user === undefined || day < this.base || day - this.base >= 2 ** 20) return -1;
    const k = this.key(user, day);
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! <= k) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && this.keys[lo - 1] === k ? lo - 1 : -1;
  }

  cell(position: number): number {
    return this.cellOf[position]!;
  }
}

/** Intraday minute steps summed per user-day against every daily summary's steps of that user-day. */
export function reconcile(intraday: DatasetCells | null, summaries: DatasetCells | null): ReconciliationReport {
  const result: ReconciliationReport = { compared: 0, mismatches: 0, rows: [], intradayOnly: 0, summaryOnly: 0, byDate: [] };
  const index = intraday ? new StepsIndex(intraday) : null;
  const matched = new Uint8Array(index?.size ?? 0);
  let matchedCount = 0;
  const byDate = new Map<number, { intradaySteps: number; dayTotal: number; mismatches: number }>();
  const mismatches: Mismatch[] = [];
  if (summaries) {
    for (let i = 0; i < summaries.summaryCount; i++) {
      const c = summaries.summaryCell[i]!;
      const user = summaries.users[summaries.user[c]!]!;
      const day = summaries.day[c]!;
      const at = index?.find(user, day) ?? -1;
      if (at < 0 || !intraday || !index) {
        result.summaryOnly++;
        continue;
      }
      if (matched[at] === 0) {
        matched[at] = 1;
        matchedCount++;
      }
      result.compared++;
      const ic = index.cell(at);
      const intradaySteps = intraday.steps[ic]!;
      const dayTotal = summaries.summarySteps[i]!;
      const d = byDate.get(day) ?? { intradaySteps: 0, dayTotal: 0, mismatches: 0 };
      d.intradaySteps += intradaySteps;
      d.dayTotal += dayTotal;
      // Steps are counts: any difference of a step or more is a mismatch.
      if (Math.abs(intradaySteps - dayTotal) >= 0.5) {
        d.mismatches++;
        result.mismatches++;
        mismatches.push({ user, date: dateOf(day), source: summaries.summarySource(i), intradaySteps, dayTotal, difference: intradaySteps - dayTotal, stepsCoverage: round4(intraday.shareOf('steps', ic)) });
        if (mismatches.length > 4 * MAX_MISMATCHES_LISTED) keepLargest(mismatches);
      }
      byDate.set(day, d);
    }
  }
  result.intradayOnly = (index?.size ?? 0) - matchedCount;
  keepLargest(mismatches);
  result.rows = mismatches;
  result.byDate = [...byDate].sort((a, b) => a[0] - b[0]).map(([day, d]) => ({ date: dateOf(day), ...d }));
  return result;
}

function keepLargest(rows: Mismatch[]): void {
  rows.sort((a, b) => Math.abs(b.difference) - Math.abs(a.difference) || (a.date < b.date ? -1 : a.date > b.date ? 1 : a.user < b.user ? -1 : 1));
  rows.length = Math.min(rows.length, MAX_MISMATCHES_LISTED);
}

// ------------------------------------------------------------------ runs and dead letters

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** The newest MAX_RUNS run summaries (run ids start with their UTC start time, so names sort by time). */
async function readRuns(outDir: string, maxRuns: number): Promise<RunReport[]> {
  const dir = path.join(outDir, '_runs');
  const names = listDir(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).slice(-maxRuns);
  const runs: RunReport[] = [];
  for (const name of names) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.readFile(path.join(dir, name), 'utf8'));
    } catch {
      continue; // not a run summary this version can read; the data files stay the truth
    }
    const r = obj(parsed);
    const http = obj(r['http']);
    const pipelines = arr(r['pipelines']).map(obj);
    runs.push({
      runId: str(r['runId']) ?? name.replace(/\.json$/, ''),
      startedAt: str(r['startedAt']),
      durationMs: num(r['durationMs']),
      exitCode: num(r['exitCode']),
      pipelines: pipelines.map((p) => str(p['pipeline']) ?? '?'),
      errors: pipelines.flatMap((p) => (str(p['error']) ? [`${str(p['pipeline'])}: ${str(p['error'])}`] : [])),
      failedUsers: pipelines.reduce((n, p) => n + arr(p['failedUsers']).length, 0),
      requests: num(http['requests']),
      retries: num(http['retries']),
      rateLimited: num(http['rateLimited']),
      rateLimitWaitMs: num(http['rateLimitWaitMs']),
      tokenRefreshes: num(http['tokenRefreshes']),
      datasets: arr(r['datasets']).map(obj).map((d) => ({
        dataset: str(d['dataset']) ?? '?',
        rowsIn: num(d['rowsIn']) ?? 0,
        rows: num(d['rows']) ?? 0,
        files: num(d['files']) ?? 0,
        deadLetters: num(d['deadLetters']) ?? 0,
      })),
    });
  }
  return runs;
}

/** A reason with its specifics (quoted values, numbers) blanked, so that alike reasons count together. */
export function reasonKind(reason: string): string {
  return reason.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/\d+(?:\.\d+)?/g, 'N').slice(0, 200);
}

/** Counts the dead letters of the given runs by reason, reading each file line by line. */
async function readDeadLetters(outDir: string, dataset: Dataset, runIds: ReadonlySet<string>): Promise<DatasetReport['deadLetters']> {
  const dir = path.join(outDir, '_dead_letter', dataset);
  const counts = new Map<string, { count: number; example: string }>();
  let count = 0;
  for (const name of listDir(dir)) {
    if (!name.endsWith('.jsonl') || !runIds.has(unescapePartitionValue(name.slice(0, -'.jsonl'.length)))) continue;
    const lines = createInterface({ input: createReadStream(path.join(dir, name), 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.trim() === '') continue;
      count++;
      let reason = 'unreadable dead-letter line';
      let where = '';
      try {
        const letter = obj(JSON.parse(line));
        reason = str(letter['reason']) ?? reason;
        const context = obj(letter['context']);
        where = ['humanId', 'resource', 'date', 'time', 'index']
          .filter((k) => context[k] !== undefined)
          .map((k) => `${k}=${String(context[k])}`)
          .join(' ');
      } catch {
        // counted as unreadable
      }
      const kind = reasonKind(reason);
      const entry = counts.get(kind);
      if (entry) entry.count++;
      else if (counts.size < MAX_REASONS) counts.set(kind, { count: 1, example: `${reason}${where ? ` (${where})` : ''}`.slice(0, 300) });
      else {
        const other = counts.get('other reasons') ?? { count: 0, example: '' };
        other.count++;
        counts.set('other reasons', other);
      }
    }
  }
  const reasons = [...counts].map(([reason, v]) => ({ reason, count: v.count, example: v.example })).sort((a, b) => b.count - a.count);
  return { count, reasons };
}

// ------------------------------------------------------------------ the report

export interface ReportOptions {
  outDir: string;
  maxRuns?: number;
  now?: number;
  /**
   * Worker threads that read the partition files (default: one per core, at most
   * MAX_THREADS, and none for an output of fewer than WORKER_MIN_PARTITIONS partitions).
   */
  threads?: number;
}

const MAX_THREADS = 4;

/** How the partition files were read: their facts from the cache, or from the files. */
export interface ReportReading {
  filesRead: number;
  filesCached: number;
  threads: number;
}

export interface ReportResult {
  summary: ReportSummary;
  reading: ReportReading;
  htmlPath: string;
  summaryPath: string;
}

export async function collectReport(options: ReportOptions): Promise<ReportData & { reading: ReportReading }> {
  const outDir = path.resolve(options.outDir);
  const stat = await fs.stat(outDir).catch(() => null);
  if (!stat?.isDirectory()) throw new EtlError('USAGE', `report: ${outDir} is not a folder (give the output root with --out)`);
  const runs = await readRuns(outDir, options.maxRuns ?? MAX_RUNS);
  const runIds = new Set(runs.map((r) => r.runId));
  const datasets: Partial<Record<Dataset, DatasetReport>> = {};
  const cells: Partial<Record<Dataset, DatasetCells>> = {};
  const reading: ReportReading = { filesRead: 0, filesCached: 0, threads: 0 };
  // Started once, for the first dataset large enough, and kept for the next ones.
  let workers: Worker[] = [];
  const workersFor = (partitions: number): Worker[] => {
    const wanted = options.threads ?? (partitions >= WORKER_MIN_PARTITIONS ? Math.min(MAX_THREADS, availableParallelism()) : 0);
    if (workers.length === 0 && wanted > 0) workers = startScanWorkers(wanted);
    reading.threads = Math.max(reading.threads, workers.length);
    return workers;
  };
  try {
    for (const dataset of DATASETS) {
      const scanned = await scanDataset(outDir, dataset, workersFor);
      if (scanned === null) continue;
      scanned.report.deadLetters = await readDeadLetters(outDir, dataset, runIds);
      datasets[dataset] = scanned.report;
      cells[dataset] = scanned.cells;
      reading.filesRead += scanned.read;
      reading.filesCached += scanned.cached;
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  const summary: ReportSummary = {
    generatedAt: new Date(options.now ?? Date.now()).toISOString(),
    outDir,
    datasets,
    reconciliation: reconcile(cells.intraday ?? null, cells.daily_summaries ?? null),
    runs,
    heatmap: { maxUsers: HEATMAP_MAX_USERS, maxDayColumns: HEATMAP_MAX_DAY_COLUMNS },
  };
  return { summary, cells, reading };
}

/** Reads the output root and writes <out>/_report/index.html and summary.json (each atomically). */
export async function writeReport(options: ReportOptions): Promise<ReportResult> {
  const data = await collectReport(options);
  const dir = path.join(data.summary.outDir, REPORT_DIR);
  const summaryPath = path.join(dir, 'summary.json');
  const htmlPath = path.join(dir, 'index.html');
  await writeFileAtomic(summaryPath, JSON.stringify(data.summary, null, 2) + '\n');
  await writeFileAtomic(htmlPath, await renderReportHtml(data));
  return { summary: data.summary, reading: data.reading, htmlPath, summaryPath };
}

export const REPORT_HELP = `Usage: wearable-etl report [--out DIR]

Reads the output root DIR (default ./out): every partition file (only the columns it needs),
the datasets' ${MANIFEST_FILE}, _runs/*.json and the dead letters, and writes
  DIR/_report/index.html     one self-contained page (no network request when opened):
                             coverage heatmaps per user × local date, rows and day totals,
                             reconciliation of minute steps with the day totals, recent runs
  DIR/_report/summary.json   the figures, per dataset and per user`;

/** `wearable-etl report [--out DIR]`: writes the report and prints where it is; returns the exit code. */
export async function reportCommand(args: string[], io: { stdout: (t: string) => void; cwd: string }, json = false): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new EtlError('USAGE', errorMessage(err).split('\n')[0]!);
  }
  if (parsed.values.help) {
    io.stdout(REPORT_HELP + '\n');
    return 0;
  }
  // The report reads a folder's files by path; a bucket is not read: copy it to a folder first
  // (`aws s3 sync s3://bucket/prefix out`) and report on that (README).
  const target = parseOutTarget(parsed.values.out ?? 'out', io.cwd);
  if (target.kind !== 'folder') throw new EtlError('USAGE', `report reads a local folder; --out ${parsed.values.out ?? ''} is a bucket: copy it to a folder first (aws s3 sync) and give that folder`);
  const result = await writeReport({ outDir: target.dir });
  io.stdout(reportLine(result, json) + '\n');
  return 0;
}

/** One line saying where the report is and what stands out. */
export function reportLine(result: ReportResult, json = false): string {
  const s = result.summary;
  const missing = Object.values(s.datasets).reduce((n, d) => n + d.missingUserDays, 0);
  if (json) {
    return JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'report written', html: result.htmlPath, summary: result.summaryPath, missingUserDays: missing, reconciliationMismatches: s.reconciliation.mismatches });
  }
  return `report: ${result.htmlPath} (${Object.keys(s.datasets).length} dataset(s), ${missing} user-day(s) missing, ${s.reconciliation.mismatches} day total(s) that differ from the minute sum; figures in ${result.summaryPath})`;
}
