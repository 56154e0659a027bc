// Runs the configured pipelines one after another (two pipelines may write the same
// dataset, e.g. `activities`), then writes the run summary and picks the exit code.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { EtlError } from '../lib/errors.js';
import { writeFileAtomic } from '../lib/fs.js';
import { acquireLock } from '../lib/lock.js';
import { HttpStats } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import type { DatasetSummary } from '../lib/sink.js';
import { prepareOutput } from '../sinks/index.js';
import type { PipelineName, RunConfig } from './config.js';
import type { PipelineResult, RunContext } from './context.js';
import { describeError } from './user-streams.js';
import { findPipeline } from './registry.js';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, PARTIAL: 3 } as const;

export interface RunSummary {
  runId: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  outDir: string;
  format: string;
  pipelines: Array<{ pipeline: PipelineName; error?: string; failedUsers: PipelineResult['failedUsers']; deadLetterFiles: string[]; checks?: PipelineResult['checks'] }>;
  datasets: DatasetSummary[];
  http: { requests: number; retries: number; rateLimited: number; tokenRefreshes: number; bytes: number; rateLimitWaitMs: number };
  exitCode: number;
}

export function newRunId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z') + '-' + randomBytes(3).toString('hex');
}

/** One run at a time per output root: a second one would race the first on the same partitions. */
async function lockOutput(outDir: string): Promise<() => Promise<void>> {
  const lock = path.join(outDir, '_state', '.run.lock');
  await fs.mkdir(path.dirname(lock), { recursive: true });
  return acquireLock(lock, {
    waitMs: 0,
    busy: (pid) => new EtlError('USAGE', `another wearable-etl run${pid ? ` (pid ${pid})` : ''} is writing to ${outDir}; wait for it or use another --out`),
  });
}

export async function runPipelines(
  config: RunConfig,
  options: { log: Logger; tuning?: RunContext['tuning']; progress?: RunContext['progress']; now?: () => number },
): Promise<RunSummary> {
  const started = (options.now ?? Date.now)();
  const runId = newRunId(new Date(started));
  const stats = new HttpStats();
  await fs.mkdir(config.outDir, { recursive: true });
  const unlock = await lockOutput(config.outDir);
  const results: PipelineResult[] = [];
  try {
    await prepareOutput(config.outDir);
    for (const s of config.skipped) options.log.info('pipeline skipped', { pipeline: s.pipeline, reason: s.reason });
    for (const pipeline of config.pipelines) {
      const def = findPipeline(pipeline);
      if (!def) throw new EtlError('USAGE', `unknown pipeline "${pipeline}"`);
      const ctx: RunContext = { config, runId, seenAt: started, log: options.log, stats, ...(options.tuning ? { tuning: options.tuning } : {}), ...(options.progress ? { progress: options.progress } : {}) };
      options.log.info('pipeline started', { pipeline, runId });
      try {
        const result = await def.run(ctx);
        results.push(result);
        for (const d of result.datasets) {
          options.log.info('dataset committed', { pipeline, dataset: d.dataset, rows: d.rows, rowsIn: d.rowsIn, files: d.files, deadLetters: d.deadLetters });
        }
      } catch (err) {
        if (err instanceof EtlError && (err.code === 'USAGE' || err.code === 'CONFIG')) throw err;
        options.log.error('pipeline failed', { pipeline, reason: describeError(err) });
        results.push({ pipeline, datasets: [], users: 0, failedUsers: [], deadLetterFiles: [], error: describeError(err) });
      }
    }
  } finally {
    await unlock();
  }
  const finished = (options.now ?? Date.now)();
  const summary: RunSummary = {
    runId,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    durationMs: finished - started,
    outDir: config.outDir,
    format: config.format,
    pipelines: results.map((r) => ({ pipeline: r.pipeline, ...(r.error ? { error: r.error } : {}), failedUsers: r.failedUsers, deadLetterFiles: r.deadLetterFiles, ...(r.checks ? { checks: r.checks } : {}) })),
    datasets: results.flatMap((r) => r.datasets),
    http: { requests: stats.requests, retries: stats.retries, rateLimited: stats.rateLimited, tokenRefreshes: stats.refreshes, bytes: stats.bytes, rateLimitWaitMs: Math.round(stats.rateLimitWaitMs) },
    exitCode: exitCodeOf(results),
  };
  await writeFileAtomic(path.join(config.outDir, '_runs', `${runId}.json`), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}

function exitCodeOf(results: PipelineResult[]): number {
  if (results.some((r) => r.error)) return EXIT.FAILED;
  if (results.some((r) => r.users > 0 && r.failedUsers.length >= r.users)) return EXIT.FAILED;
  return results.some((r) => r.failedUsers.length > 0) ? EXIT.PARTIAL : EXIT.OK;
}

/** One line for stderr saying why the run did not fully succeed. */
export function failureLine(summary: RunSummary): string | null {
  const errors = summary.pipelines.filter((p) => p.error).map((p) => `${p.pipeline}: ${p.error}`);
  const users = summary.pipelines.flatMap((p) => p.failedUsers.map((u) => `${p.pipeline} user ${u.user}: ${u.reason}`));
  if (errors.length === 0 && users.length === 0) return null;
  const named = summary.pipelines.flatMap((p) => p.failedUsers.map((u) => u.user));
  const head = errors.length > 0 ? 'failed' : `partial: ${named.length} user(s) failed (${[...new Set(named)].join(', ')})`;
  return `wearable-etl: ${head} — ${[...errors, ...users].join('; ')}`.replace(/\s+/g, ' ');
}
