// One interface over the two places a pipeline's state can live: the state files (default,
// ../state.ts) or PostgreSQL (pg.ts). A pipeline loads its state, works, and saves it once the
// sink has committed; with PostgreSQL, saving moves each watermark forward only (several
// workers save their own users in any order) and rate budgets live in their own rows, shared
// while the run goes, instead of a snapshot saved at the end.
import { loadState, saveState, defaultStatePath, type PipelineState, type UserState } from '../state.js';
import type { PipelineName } from '../config.js';
import type { PgState } from './pg.js';
import { stateLost } from './shared.js';

export interface StateStore {
  readonly kind: 'file' | 'postgres';
  load(pipeline: PipelineName): Promise<PipelineState>;
  save(state: PipelineState): Promise<void>;
}

/** The state files: `--state FILE`, else <out>/_state/<pipeline>.json. */
export function fileStateStore(outDir: string, file: string | null): StateStore {
  const pathOf = (pipeline: PipelineName): string => file ?? defaultStatePath(outDir, pipeline);
  return {
    kind: 'file',
    load: (pipeline) => loadState(pathOf(pipeline), pipeline),
    save: (state) => saveState(pathOf(state.pipeline), state),
  };
}

export function pgStateStore(db: PgState): StateStore {
  return {
    kind: 'postgres',
    async load(pipeline) {
      const users: Record<string, UserState> = {};
      try {
        for (const [user, streams] of await db.watermarks(pipeline)) users[user] = { streams };
      } catch (err) {
        throw stateLost(db.location, err);
      }
      return { version: 1, pipeline, updatedAt: '', users };
    },
    async save(state) {
      await db.commitWatermarks(state.pipeline, Object.entries(state.users).map(([user, u]) => [user, u.streams] as const)).catch((err: unknown) => {
        throw stateLost(db.location, err);
      });
    },
  };
}

/**
 * Saves a pipeline's state after each user's checkpoint, one save at a time (the last call's
 * content is what stays).
 */
export function checkpointSaver(store: StateStore, state: PipelineState): () => Promise<void> {
  let chain: Promise<void> = Promise.resolve();
  return () => {
    chain = chain.then(() => store.save(state));
    return chain;
  };
}
