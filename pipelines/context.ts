// What every pipeline run gets, and what it reports back.
import type { HttpStats } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import type { DatasetSummary } from '../lib/sink.js';
import type { RateLimitOptions } from '../sources/fitbit/rate-limit.js';
import type { PipelineName, RunConfig } from './config.js';
import type { RetryPolicy } from '../lib/http.js';

export interface RunContext {
  config: RunConfig;
  runId: string;
  /** The run's clock reading used as createdAt/updatedAt where a source has none. */
  seenAt: number;
  log: Logger;
  stats: HttpStats;
  /** Overrides for tests and benchmarks; production uses the documented defaults. */
  tuning?: {
    retry?: RetryPolicy;
    fitbitRateLimit?: RateLimitOptions;
    highWaterRows?: number;
    maxOpenPartitions?: number;
  };
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
}
