// google-health-activities: `exercise` sessions per user, by local-date windows of ≤ 31 days,
// 25 a page → `activities` rows (id `fitbit-<exercise id>`, the legacy log's key) → sink. State
// per user: the last local date fetched whole; the next run starts there less the lookback.
import { addDays } from '../lib/dates.js';
import type { ActivityRecord } from '../lib/schema.js';
import { EXERCISE_WINDOW_DAYS, dateWindows, exercisePages } from '../sources/google-health/index.js';
import { invalidToDeadLetters, normalizeExercise } from '../transforms/google-health.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { GH_DEF, ghWindow, planGh, runGhPipeline } from './google-health-common.js';

const PIPELINE = 'google-health-activities' as const;
const STREAM = 'exercise';

export const googleHealthActivities: PipelineDef = {
  name: PIPELINE,
  ...GH_DEF,
  summary: 'Google Health API v4 exercise sessions (25 a page) → activities',
  datasets: ['activities'],
  plan: (config, now, store) => planGh(config, store, PIPELINE, now, [STREAM], EXERCISE_WINDOW_DAYS),
  run: (ctx) => runGoogleHealthActivities(ctx),
  demo: { args: ['--since', '2016-04-12', '--until', '2016-05-13', '--concurrency', '8'], help: 'exercise sessions, 2016-04-12 .. 2016-05-13' },
};

export function runGoogleHealthActivities(ctx: RunContext): Promise<PipelineResult> {
  return runGhPipeline(ctx, PIPELINE, 'activities', async function* ({ user, session, userCtx, zone }, { deadLetters, progress }): AsyncGenerator<ActivityRecord[]> {
    const window = ghWindow(ctx, progress.saved.streams[STREAM], userCtx.timeZone);
    const windows = dateWindows(progress.open(STREAM, window), window.until, EXERCISE_WINDOW_DAYS);
    ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: windows.length });
    for (const w of windows) {
      // A window's sessions go out as one batch: a stop commits whole windows only.
      const records: ActivityRecord[] = [];
      for await (const page of exercisePages(session, w)) {
        for (const letter of invalidToDeadLetters('activities', PIPELINE, user, page.invalid)) deadLetters.write(letter);
        for (const e of page.records) {
          const r = normalizeExercise(e, userCtx, zone, ctx.seenAt);
          if (r.ok) records.push(r.record);
          else deadLetters.write(r.deadLetter);
        }
      }
      try {
        if (records.length > 0) yield records;
      } finally {
        progress.done(STREAM, addDays(w.to, -1));
      }
      ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
    }
  });
}
