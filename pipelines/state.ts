// Incremental state per pipeline, user and stream, saved atomically after the sink has
// committed what it describes: a run killed before that simply fetches the window again,
// and the sink's merge by id makes the second landing a no-op.
import path from 'node:path';
import { EtlError } from '../lib/errors.js';
import { readJsonIfExists, writeFileAtomic } from '../lib/fs.js';
import type { RateBudgetState } from '../sources/fitbit/rate-limit.js';
import type { PipelineName } from './config.js';

export interface UserState {
  /** Per stream (an intraday resource, `activities`, a Human API type): the watermark. */
  streams: Record<string, string>;
  /** The user's rate budget when its last rows were committed, so the next run does not open with 429s. */
  rateBudget?: RateBudgetState;
  /**
   * A window a run did not finish (stopped, killed after a checkpoint, or the user failed), per
   * stream: its first and last date and the last date committed. A run asking for the same
   * window starts after `done`; the watermark moves only when a window is finished.
   */
  pending?: Record<string, { since: string; until: string; done: string }>;
}

export interface PipelineState {
  version: 1;
  pipeline: PipelineName;
  updatedAt: string;
  users: Record<string, UserState>;
}

export function defaultStatePath(outDir: string, pipeline: PipelineName): string {
  return path.join(outDir, '_state', `${pipeline}.json`);
}

export async function loadState(file: string, pipeline: PipelineName): Promise<PipelineState> {
  let data: unknown;
  try {
    data = await readJsonIfExists<unknown>(file);
  } catch (err) {
    throw new EtlError('STATE', `state file ${file} cannot be read (${(err as Error).message}); fix or delete it (the next run then starts from --since)`, { file });
  }
  if (data === null) return { version: 1, pipeline, updatedAt: '', users: {} };
  const o = data as Partial<PipelineState>;
  if (o.version !== 1 || typeof o.users !== 'object' || o.users === null) {
    throw new EtlError('STATE', `state file ${file} is not a wearable-etl state file (version 1)`, { file });
  }
  if (o.pipeline !== pipeline) {
    throw new EtlError('STATE', `state file ${file} belongs to pipeline ${String(o.pipeline)}, not ${pipeline}; give each pipeline its own --state`, { file });
  }
  return o as PipelineState;
}

export async function saveState(file: string, state: PipelineState): Promise<void> {
  state.updatedAt = new Date().toISOString();
  await writeFileAtomic(file, JSON.stringify(state, null, 2) + '\n');
}
