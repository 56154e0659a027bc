// google-health-daily: `:dailyRollUp` of steps, distance and total calories per user, by windows
// of ≤ 14 local days (total calories' cap, §1.10; the three types share the windows) →
// `daily_summaries`, one row per user and local date (id `google-health:<humanId>:<date>`).
// A value the roll-up does not carry is null; a carried 0 is 0. State per user and data type.
import { addDays, minDate } from '../lib/dates.js';
import type { DailySummaryRecord } from '../lib/schema.js';
import { GH_ROLLUP_TYPES, ROLLUP_MAX_DAYS, dailyRollUp, dateWindows } from '../sources/google-health/index.js';
import { invalidToDeadLetters, normalizeDailyRollups, type GhDayRollups } from '../transforms/google-health.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { untilFor } from './fitbit-common.js';
import { GH_DEF, ghWindow, planGh, runGhPipeline } from './google-health-common.js';

const PIPELINE = 'google-health-daily' as const;
/** One window for the three types: the smallest cap among them. */
const DAILY_WINDOW_DAYS = Math.min(...GH_ROLLUP_TYPES.map((t) => ROLLUP_MAX_DAYS[t]));

export const googleHealthDaily: PipelineDef = {
  name: PIPELINE,
  ...GH_DEF,
  summary: 'Google Health API v4 daily roll-ups (steps, distance, total calories) → daily_summaries',
  datasets: ['daily_summaries'],
  plan: (config, now, store) => planGh(config, store, PIPELINE, now, GH_ROLLUP_TYPES, DAILY_WINDOW_DAYS),
  run: (ctx) => runGoogleHealthDaily(ctx),
  demo: { args: ['--since', '2016-05-07', '--until', '2016-05-13', '--concurrency', '8'], help: 'daily roll-ups of steps, distance, total calories, 2016-05-07 .. 2016-05-13' },
};

export function runGoogleHealthDaily(ctx: RunContext): Promise<PipelineResult> {
  return runGhPipeline(ctx, PIPELINE, 'daily_summaries', async function* ({ user, session, userCtx }, { deadLetters, progress }): AsyncGenerator<DailySummaryRecord[]> {
    // The three types share each window and each day's row (a type left out would null the
    // committed value), so they start together, at the earliest of their starts.
    const starts = GH_ROLLUP_TYPES.map((t) => progress.open(t, ghWindow(ctx, progress.saved.streams[t], userCtx.timeZone)));
    const first = starts.reduce((a, b) => minDate(a, b));
    const all = dateWindows(first, untilFor(ctx, userCtx.timeZone), DAILY_WINDOW_DAYS);
    ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: all.length });
    for (const w of all) {
      const days = new Map<string, GhDayRollups>();
      for (const type of GH_ROLLUP_TYPES) {
        const r = await dailyRollUp(session, type, w);
        for (const letter of invalidToDeadLetters('daily_summaries', PIPELINE, user, r.invalid, { dataType: type })) deadLetters.write(letter);
        for (const day of r.records) {
          if (day.date < w.from || day.date >= w.to) continue;
          const d = days.get(day.date) ?? {};
          d[type] = day;
          days.set(day.date, d);
        }
      }
      const records = [...days.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([date, r]) => normalizeDailyRollups(date, r, userCtx, ctx.seenAt));
      try {
        if (records.length > 0) yield records;
      } finally {
        for (const t of GH_ROLLUP_TYPES) progress.done(t, addDays(w.to, -1));
      }
      ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
    }
  });
}
