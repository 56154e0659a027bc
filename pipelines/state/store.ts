// One interface over the two places a pipeline's state can live: the state files (default,
// ../state.ts) or PostgreSQL (pg.ts). Pipelines reach their state only through the run
// context's StateStore: they load it, save one user's part at that user's checkpoint (its
// partitions are committed), and save the whole at the end. With PostgreSQL, saving moves each
// watermark forward only (several workers save their own users in any order) and rate budgets
// live in their own rows, shared while the run goes, instead of a snapshot in the state.
import { loadState, saveState, defaultStatePath, type PipelineState, type UserState } from '../state.js';
import type { PipelineName } from '../config.js';
import type { PgState } from './pg.js';
import { stateLost } from './shared.js';

export interface StateStore {
  readonly kind: 'file' | 'postgres';
  load(pipeline: PipelineName): Promise<PipelineState>;
  /** The whole state, at the end of a pipeline. */
  save(state: PipelineState): Promise<void>;
  /**
   * One user's checkpoint: `state.users[humanId]` (watermarks, rate budget, unfinished
   * windows), called once that user's partitions are committed. A store may write more than
   * that user (the file store rewrites its file); saves of one state land in call order.
   */
  saveUser(state: PipelineState, humanId: string): Promise<void>;
}

/** The state files: `--state FILE`, else <out>/_state/<pipeline>.json. */
export function fileStateStore(outDir: string, file: string | null): StateStore {
  const pathOf = (pipeline: PipelineName): string => file ?? defaultStatePath(outDir, pipeline);
  // One write at a time per file: writeFileAtomic renames a fresh temporary file, so the last
  // call's content is what stays, and checkpoints of users side by side do not interleave. A
  // save of the same state asked for while another is going joins the one queued after it: that
  // one serializes the state when it starts, so it holds every change made before it (one fsync
  // for many checkpoints instead of one each).
  const chains = new Map<string, Promise<void>>();
  const queued = new Map<string, { state: PipelineState; done: Promise<void> }>();
  const save = (state: PipelineState): Promise<void> => {
    const target = pathOf(state.pipeline);
    const waiting = queued.get(target);
    if (waiting !== undefined && waiting.state === state) return waiting.done;
    const done = (chains.get(target) ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => {
        if (queued.get(target)?.done === done) queued.delete(target);
        return saveState(target, state);
      });
    queued.set(target, { state, done });
    chains.set(target, done);
    return done;
  };
  return {
    kind: 'file',
    load: (pipeline) => loadState(pathOf(pipeline), pipeline),
    save,
    saveUser: (state) => save(state),
  };
}

export function pgStateStore(db: PgState): StateStore {
  const commit = (state: PipelineState, users: ReadonlyArray<readonly [string, UserState]>): Promise<void> =>
    db.commitWatermarks(state.pipeline, users.map(([user, u]) => [user, u.streams] as const)).catch((err: unknown) => {
      throw stateLost(db.location, err);
    });
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
    save: (state) => commit(state, Object.entries(state.users)),
    async saveUser(state, humanId) {
      const u = state.users[humanId];
      if (u) await commit(state, [[humanId, u]]);
    },
  };
}
