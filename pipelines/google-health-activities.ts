// google-health-activities: `exercise` sessions per user, by local-date windows of ≤ 31 days,
// 25 a page → `activities` rows (id `fitbit-<exercise id>`, the legacy log's key) → sink. State
// per user: the last local date fetched whole; the next run starts there less the lookback.
import { addDays, minDate } from '../lib/dates.js';
import type { ActivityRecord } from '../lib/schema.js';
import type { DeadLetterWriter } from '../lib/sink.js';
import { EXERCISE_WINDOW_DAYS, dateWindows, exercisePages, windowCount } from '../sources/google-health/index.js';
import { invalidToDeadLetters, normalizeExercise } from '../transforms/google-health.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { userState } from './fitbit-common.js';
import { GhRunUser, checkGhConfig, ghUserContext, ghWindow, loadGhUsers, openGhSession, planGh, planSince, saveBudget, loadGhState } from './google-health-common.js';
import { runUserStreams } from './user-streams.js';

const PIPELINE = 'google-health-activities' as const;
const STREAM = 'exercise';

export const googleHealthActivities: PipelineDef = {
  name: PIPELINE,
  provider: 'google-health',
  summary: 'Google Health API v4 exercise sessions → activities',
  datasets: ['activities'],
  flags: ['users', 'since', 'until', 'lookback', 'concurrency'],
  check: (config) => checkGhConfig(config),
  plan: (config, now, store) =>
    planGh(config, store, PIPELINE, now, (saved, until) => {
      const since = planSince(config, saved[STREAM], until);
      return { window: `${since} .. ${until} (windows of ${EXERCISE_WINDOW_DAYS} days, 25 sessions a page)`, requests: windowCount(since, until, EXERCISE_WINDOW_DAYS) };
    }),
  run: (ctx) => runGoogleHealthActivities(ctx),
  demo: { args: ['--since', '2016-04-12', '--until', '2016-05-13', '--concurrency', '8'], help: 'exercise sessions, 2016-04-12 .. 2016-05-13' },
};

export async function runGoogleHealthActivities(ctx: RunContext): Promise<PipelineResult> {
  const { config } = ctx;
  const { file, users } = await loadGhUsers(ctx);
  const state = await loadGhState(ctx.state, config, PIPELINE, Date.now());
  const marks = new Map<GhRunUser, string>();
  const budgets = new Map<GhRunUser, () => void>();

  async function* userBatches(user: GhRunUser, deadLetters: DeadLetterWriter): AsyncGenerator<ActivityRecord[]> {
    const session = openGhSession(ctx, file, user, state, PIPELINE);
    budgets.set(user, () => saveBudget(state, user, session.budget.snapshot()));
    const { ctx: userCtx, zone } = await ghUserContext(session, user);
    const { since, until, lastComplete } = ghWindow(ctx, userState(state, user.humanId).streams[STREAM], userCtx.timeZone);
    const windows = dateWindows(since, until, EXERCISE_WINDOW_DAYS);
    ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: windows.length });
    for (const w of windows) {
      for await (const page of exercisePages(session, w)) {
        for (const letter of invalidToDeadLetters('activities', PIPELINE, user, page.invalid)) deadLetters.write(letter);
        const records: ActivityRecord[] = [];
        for (const e of page.records) {
          const r = normalizeExercise(e, userCtx, zone, ctx.seenAt);
          if (r.ok) records.push(r.record);
          else deadLetters.write(r.deadLetter);
        }
        if (records.length > 0) yield records;
      }
      const last = minDate(addDays(w.to, -1), lastComplete);
      if (last >= w.from) marks.set(user, last);
      ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
    }
  }

  let result;
  try {
    result = await runUserStreams(ctx, PIPELINE, 'activities', users, userBatches);
  } finally {
    for (const save of budgets.values()) save();
  }
  for (const [user, mark] of marks) {
    const u = userState(state, user.humanId);
    if (!u.streams[STREAM] || mark > u.streams[STREAM]) u.streams[STREAM] = mark;
  }
  await ctx.state.save(state);
  return { pipeline: PIPELINE, datasets: [result.summary], users: users.length, failedUsers: result.failedUsers, deadLetterFiles: result.deadLetterFiles };
}
