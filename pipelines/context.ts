// What every pipeline run gets, and what it reports back.
import type { HttpStats } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import type { DatasetSummary } from '../lib/sink.js';
import type { RateLimitOptions } from '../sources/fitbit/rate-limit.js';
import type { GhRateLimitOptions } from '../sources/google-health/rate-limit.js';
import type { Dataset } from '../lib/schema.js';
import type { PipelineFlag, PipelineName, RunConfig } from './config.js';
import type { RetryPolicy } from '../lib/http.js';
import type { StateStore } from './state/store.js';
import type { SharedState } from './state/shared.js';
import type { SinkConfig } from '../sinks/index.js';

export interface RunContext {
  config: RunConfig;
  runId: string;
  /** The run's clock reading used as createdAt/updatedAt where a source has none. */
  seenAt: number;
  log: Logger;
  stats: HttpStats;
  /** Where watermarks and per-user checkpoints are loaded from and saved to: files or PostgreSQL. */
  state: StateStore;
  /**
   * With the state in PostgreSQL: what every worker started with the same state URL shares —
   * tokens, rate budgets, and the leases that split the users between the workers.
   */
  shared?: SharedState;
  /** Overrides for tests and benchmarks; production uses the documented defaults. */
  tuning?: {
    retry?: RetryPolicy;
    fitbitRateLimit?: RateLimitOptions;
    googleHealthRateLimit?: GhRateLimitOptions;
    highWaterRows?: number;
    maxOpenPartitions?: number;
  };
  /**
   * Aborted on SIGINT/SIGTERM: pipelines stop fetching, commit what they have and save their
   * state (runUserStreams does this for per-user pipelines).
   */
  stop?: AbortSignal;
  /** Progress callback: units of work done (user-days, pages), for the progress bar. */
  progress?: (event: ProgressEvent) => void;
}

export interface ProgressEvent {
  pipeline: PipelineName;
  kind: 'planned' | 'done' | 'waiting';
  user?: string;
  units?: number;
  waitMs?: number;
}

export interface FailedUser {
  user: string;
  reason: string;
}

export interface PipelineResult {
  pipeline: PipelineName;
  datasets: DatasetSummary[];
  /** Users (or, for app-level sources, streams) the pipeline tried. */
  users: number;
  failedUsers: FailedUser[];
  deadLetterFiles: string[];
  /** Set when the whole pipeline failed (not one user). */
  error?: string;
  /** Findings the run summary carries as they are (takeout: each user's time-zone self-check). */
  checks?: ReadonlyArray<Readonly<Record<string, string | number | boolean | null>>>;
}

/** Who a pipeline's users are: the `provider` of their users-file entries (or an app-level source). */
export type Provider = 'fitbit' | 'humanapi' | 'google-health' | 'takeout';

/**
 * One pipeline, declared once: pipelines/registry.ts lists these, and the help, option checks,
 * `run all`, the dry run and the demo are made from the list. Every field is required, so a
 * pipeline that lacks one does not compile.
 */
export interface PipelineDef {
  readonly name: PipelineName;
  readonly provider: Provider;
  /** One line for --help. */
  readonly summary: string;
  /** The datasets it writes. */
  readonly datasets: readonly Dataset[];
  /** The pipeline options it reads (others given on the command line are a usage error). */
  readonly flags: readonly PipelineFlag[];
  /**
   * Why it cannot run with this config — what is missing (naming the option or variable) or
   * an option value it does not accept — or null. A named pipeline with a problem is a usage
   * error; `run all` skips it and says why.
   */
  check(config: RunConfig): string | null;
  /** The --dry-run lines: what it would fetch and how long the rate limits make it take. Sends no request, writes nothing. */
  plan(config: RunConfig, now: number, state: StateStore): Promise<string[]>;
  run(ctx: RunContext): Promise<PipelineResult>;
  /** The demo's arguments (the window where the fixture data lies), or null if the demo leaves it out. */
  readonly demo: { readonly args: readonly string[]; readonly help: string } | null;
}

/**
 * What every sink of a run is opened with: the output, format and compression of the run, the
 * tuning of tests and benchmarks, and, with several workers, the lock that keeps their manifest
 * writes apart (two workers reading and replacing one manifest at once would drop entries).
 */
export function sinkOptions(ctx: RunContext): Pick<SinkConfig, 'outDir' | 'format' | 'runId' | 'compression' | 'highWaterRows' | 'maxOpenPartitions' | 'manifestLock'> {
  const { config, tuning, shared } = ctx;
  return {
    outDir: config.outDir,
    format: config.format,
    runId: ctx.runId,
    compression: config.compression,
    ...(tuning?.highWaterRows ? { highWaterRows: tuning.highWaterRows } : {}),
    ...(tuning?.maxOpenPartitions ? { maxOpenPartitions: tuning.maxOpenPartitions } : {}),
    ...(shared ? { manifestLock: shared.manifestLock(config.outDir) } : {}),
  };
}

/**
 * What every API client of a run is opened with: the tests' retry policy, the run's counters and
 * log, its progress callback for rate-limit waits, and its stop (a wait ends with it).
 */
export function clientOptions(
  ctx: RunContext,
  pipeline: PipelineName,
): { retry?: RetryPolicy; stats: HttpStats; log: Logger; onWait: (user: string, waitMs: number) => void; stop?: AbortSignal } {
  return {
    ...(ctx.tuning?.retry ? { retry: ctx.tuning.retry } : {}),
    stats: ctx.stats,
    log: ctx.log,
    onWait: (user, waitMs) => ctx.progress?.({ pipeline, kind: 'waiting', user, waitMs }),
    ...(ctx.stop ? { stop: ctx.stop } : {}),
  };
}
