// What the run report knows about an output root: summary.json's shape and the per-partition
// cells the page draws from (pipelines/report.ts fills them, pipelines/report-html.ts draws them).
import type { Dataset } from '../lib/schema.js';

/** Users drawn in a heatmap (the worst covered), below a row for all users. */
export const HEATMAP_MAX_USERS = 25;
/** Above this many local dates a heatmap column is a block of whole weeks (its worst day) instead of a day. */
export const HEATMAP_MAX_DAY_COLUMNS = 92;
/** Reconciliation mismatches listed in summary.json (all are counted). */
export const MAX_MISMATCHES_LISTED = 1000;
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
    /** In the manifest, not on disk (a partition removed or lost). */
    missingFiles: string[];
    /** On disk, not in the manifest. */
    unlisted: string[];
    /** Files whose manifest row count differs from the file's own. */
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

/** Per-partition facts of one dataset, as parallel arrays (compact for 10^5–10^6 partitions). */
export class DatasetCells {
  readonly users: string[] = [];
  private readonly userIndex = new Map<string, number>();
  readonly user: number[] = [];
  readonly day: number[] = [];
  readonly rows: number[] = [];
  /** Intraday: per type, the share of expected points present (0..1) per cell. */
  readonly share = new Map<string, number[]>();
  /** Intraday: the sum of steps per cell (NaN where the partition has no steps). */
  readonly steps: number[] = [];
  /** daily_summaries: one entry per row with steps: cell, source, steps. */
  readonly summaryCell: number[] = [];
  readonly summarySource: string[] = [];
  readonly summarySteps: number[] = [];

  userId(name: string): number {
    let i = this.userIndex.get(name);
    if (i === undefined) {
      i = this.users.push(name) - 1;
      this.userIndex.set(name, i);
    }
    return i;
  }

  add(user: string, date: string, rows: number): number {
    this.user.push(this.userId(user));
    this.day.push(dayNumber(date));
    this.rows.push(rows);
    this.steps.push(Number.NaN);
    return this.user.length - 1;
  }

  setShare(cell: number, type: string, share: number): void {
    let a = this.share.get(type);
    if (!a) {
      a = [];
      this.share.set(type, a);
    }
    while (a.length < cell) a.push(0);
    a[cell] = share;
  }

  shareOf(type: string, cell: number): number {
    return this.share.get(type)?.[cell] ?? 0;
  }

  get size(): number {
    return this.user.length;
  }
}

/** The dataset's window of local dates [first, last] as day numbers, or null when empty. */
export function windowOf(cells: DatasetCells): { first: number; last: number } | null {
  if (cells.size === 0) return null;
  let first = Infinity;
  let last = -Infinity;
  for (const d of cells.day) {
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
