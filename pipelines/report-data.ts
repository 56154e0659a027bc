// What the run report knows about an output root: summary.json's shape and the per-partition
// cells the page draws from (pipelines/report.ts fills them, pipelines/report-html.ts draws them).
import type { Dataset } from '../lib/schema.js';

/** Users drawn in a heatmap (the worst covered), below a row for all users. */
export const HEATMAP_MAX_USERS = 25;
/** Above this many local dates a heatmap column is a block of whole weeks (its worst day) instead of a day. */
export const HEATMAP_MAX_DAY_COLUMNS = 92;
/** Reconciliation mismatches listed in summary.json (all are counted). */
export const MAX_MISMATCHES_LISTED = 1000;
/** Files listed per kind of manifest problem in summary.json (all are counted): a manifest that lost every entry would list every file. */
export const MAX_FILES_LISTED = 1000;
const DAY_MS = 86_400_000;

/** Datasets whose heatmap is coverage (a day is expected for every user) rather than counts. */
export const COVERAGE_DATASETS: ReadonlySet<Dataset> = new Set(['intraday', 'daily_summaries']);

// ------------------------------------------------------------------ what summary.json holds

export interface UserSummary {
  user: string;
  rows: number;
  /** Local dates with a partition. */
  days: number;
  firstDate: string;
  lastDate: string;
  /** Dates of the dataset's window without a partition for this user, as ranges "a..b" or "a". */
  missingDays: string[];
  missingDayCount: number;
  /** Intraday: mean share of expected points per type over the dataset's window (missing days count 0). */
  coverage?: Record<string, number>;
}

export interface DatasetReport {
  rows: number;
  partitions: number;
  files: number;
  bytes: number;
  users: number;
  firstDate: string | null;
  lastDate: string | null;
  formats: string[];
  /** Intraday: per type, the mean share of expected points over every user × date of the window. */
  coverage?: Record<string, number>;
  /** User-days of the window without a partition. */
  missingUserDays: number;
  manifest: {
    present: boolean;
    files: number;
    /** In the manifest, not on disk (a partition removed or lost): how many, and the first MAX_FILES_LISTED. */
    missingFileCount: number;
    missingFiles: string[];
    /** On disk, not in the manifest. */
    unlistedCount: number;
    unlisted: string[];
    /** Files whose manifest row count differs from the file's own. */
    rowMismatchCount: number;
    rowMismatches: Array<{ path: string; manifest: number; file: number }>;
  };
  deadLetters: { count: number; reasons: Array<{ reason: string; count: number; example: string }> };
  perUser: UserSummary[];
}

export interface RunReport {
  runId: string;
  startedAt: string | null;
  durationMs: number | null;
  exitCode: number | null;
  pipelines: string[];
  errors: string[];
  failedUsers: number;
  requests: number | null;
  retries: number | null;
  rateLimited: number | null;
  /** Null for run summaries written before the figure was recorded. */
  rateLimitWaitMs: number | null;
  tokenRefreshes: number | null;
  datasets: Array<{ dataset: string; rowsIn: number; rows: number; files: number; deadLetters: number }>;
}

export interface Mismatch {
  user: string;
  date: string;
  /** The daily summary's source (fitbit, google-health, …). */
  source: string;
  intradaySteps: number;
  dayTotal: number;
  difference: number;
  /** Share of the day's expected minute points that are present. */
  stepsCoverage: number;
}

export interface ReconciliationReport {
  /** User-days with both intraday steps and a daily summary's steps (per summary source). */
  compared: number;
  mismatches: number;
  /** Mismatches listed here (at most MAX_MISMATCHES_LISTED, the largest differences first). */
  rows: Mismatch[];
  /** User-days with intraday steps but no daily summary steps, and the other way round. */
  intradayOnly: number;
  summaryOnly: number;
  /** Per local date: intraday steps and the daily summaries' steps over the user-days compared. */
  byDate: Array<{ date: string; intradaySteps: number; dayTotal: number; mismatches: number }>;
}

export interface ReportSummary {
  generatedAt: string;
  outDir: string;
  datasets: Partial<Record<Dataset, DatasetReport>>;
  reconciliation: ReconciliationReport;
  runs: RunReport[];
  heatmap: { maxUsers: number; maxDayColumns: number };
}

// ------------------------------------------------------------------ cells (one per partition)

export const dayNumber = (date: string): number => Math.round(Date.parse(`${date}T00:00:00Z`) / DAY_MS);
export const dateOf = (day: number): string => new Date(day * DAY_MS).toISOString().slice(0, 10);

const INITIAL_CELLS = 1024;

function growInt(a: Int32Array, capacity: number): Int32Array {
  const b = new Int32Array(capacity);
  b.set(a);
  return b;
}

function growFloat(a: Float64Array, capacity: number, fill = 0): Float64Array {
  const b = new Float64Array(capacity);
  b.set(a);
  if (fill !== 0) b.fill(fill, a.length);
  return b;
}

/**
 * Per-partition facts of one dataset, as parallel typed arrays: the only part of the report
 * that grows with the number of partitions, 20–40 bytes a cell (user, day, rows, steps, a
 * share per type) — ~15 MB at 1,000 users × 365 days. The arrays grow by doubling; after
 * `trim()` each is exactly `size` long.
 */
export class DatasetCells {
  readonly users: string[] = [];
  private readonly userIndex = new Map<string, number>();
  private count = 0;
  /** Per cell: index into `users`. */
  user: Int32Array = new Int32Array(INITIAL_CELLS);
  /** Per cell: the local date as a day number (dayNumber). */
  day: Int32Array = new Int32Array(INITIAL_CELLS);
  rows: Float64Array = new Float64Array(INITIAL_CELLS);
  /** Intraday: per type, the share of expected points present (0..1) per cell. */
  readonly share = new Map<string, Float64Array>();
  /** Intraday: the sum of steps per cell (NaN where the partition has no steps). */
  steps: Float64Array = new Float64Array(INITIAL_CELLS).fill(Number.NaN);
  /** daily_summaries: one entry per row with steps: cell, source (index into `sources`), steps. */
  summaryCount = 0;
  summaryCell: Int32Array = new Int32Array(INITIAL_CELLS);
  summarySourceIndex: Int32Array = new Int32Array(INITIAL_CELLS);
  summarySteps: Float64Array = new Float64Array(INITIAL_CELLS);
  readonly sources: string[] = [];

  userId(name: string): number {
    let i = this.userIndex.get(name);
    if (i === undefined) {
      i = this.users.push(name) - 1;
      this.userIndex.set(name, i);
    }
    return i;
  }

  /** The index of a user, or undefined when the dataset has no partition of it. */
  userOf(name: string): number | undefined {
    return this.userIndex.get(name);
  }

  add(user: string, date: string, rows: number): number {
    if (this.count === this.user.length) {
      const capacity = Math.max(INITIAL_CELLS, this.count * 2);
      this.user = growInt(this.user, capacity);
      this.day = growInt(this.day, capacity);
      this.rows = growFloat(this.rows, capacity);
      this.steps = growFloat(this.steps, capacity, Number.NaN);
      for (const [type, a] of this.share) this.share.set(type, growFloat(a, capacity));
    }
    const c = this.count++;
    this.user[c] = this.userId(user);
    this.day[c] = dayNumber(date);
    this.rows[c] = rows;
    return c;
  }

  addSummary(cell: number, source: string, steps: number): void {
    if (this.summaryCount === this.summaryCell.length) {
      const capacity = Math.max(INITIAL_CELLS, this.summaryCount * 2);
      this.summaryCell = growInt(this.summaryCell, capacity);
      this.summarySourceIndex = growInt(this.summarySourceIndex, capacity);
      this.summarySteps = growFloat(this.summarySteps, capacity);
    }
    let s = this.sources.indexOf(source);
    if (s < 0) s = this.sources.push(source) - 1;
    const i = this.summaryCount++;
    this.summaryCell[i] = cell;
    this.summarySourceIndex[i] = s;
    this.summarySteps[i] = steps;
  }

  summarySource(i: number): string {
    return this.sources[this.summarySourceIndex[i]!]!;
  }

  setShare(cell: number, type: string, share: number): void {
    let a = this.share.get(type);
    if (!a) {
      a = new Float64Array(this.user.length);
      this.share.set(type, a);
    }
    a[cell] = share;
  }

  shareOf(type: string, cell: number): number {
    return this.share.get(type)?.[cell] ?? 0;
  }

  /** Drops the spare capacity (views of the first `size` cells: no copy). */
  trim(): void {
    const n = this.count;
    this.user = this.user.subarray(0, n);
    this.day = this.day.subarray(0, n);
    this.rows = this.rows.subarray(0, n);
    this.steps = this.steps.subarray(0, n);
    for (const [type, a] of this.share) this.share.set(type, a.subarray(0, n));
    this.summaryCell = this.summaryCell.subarray(0, this.summaryCount);
    this.summarySourceIndex = this.summarySourceIndex.subarray(0, this.summaryCount);
    this.summarySteps = this.summarySteps.subarray(0, this.summaryCount);
  }

  get size(): number {
    return this.count;
  }
}

/** The dataset's window of local dates [first, last] as day numbers, or null when empty. */
export function windowOf(cells: DatasetCells): { first: number; last: number } | null {
  if (cells.size === 0) return null;
  let first = Infinity;
  let last = -Infinity;
  for (let c = 0; c < cells.size; c++) {
    const d = cells.day[c]!;
    if (d < first) first = d;
    if (d > last) last = d;
  }
  return { first, last };
}

/** Everything the page draws: the summary plus the cells of every dataset. */
export interface ReportData {
  summary: ReportSummary;
  cells: Partial<Record<Dataset, DatasetCells>>;
}
