// fitbit-activities: the activity log list per user (oldest first, following
// pagination.next) → `activities` rows → sink. The watermark is the highest lastModified
// seen; the next run asks again from that date less the lookback, because the list is
// filtered by start time while late syncs change records that started earlier.
import { addDays } from '../lib/dates.js';
import type { ActivityRecord } from '../lib/schema.js';
import type { DeadLetterWriter } from '../lib/sink.js';
import { activitiesSince, type FitbitSession } from '../sources/fitbit/index.js';
import type { UserEntry } from '../sources/fitbit/users.js';
import { normalizeActivity } from '../transforms/activities.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { checkFitbitUsers, loadUsers, openSession, planFitbit, throwIfGone, untilFor, userContext, userState } from './fitbit-common.js';
import { runUserStreams } from './user-streams.js';

const PIPELINE = 'fitbit-activities' as const;
const STREAM = 'activities';

export const fitbitActivities: PipelineDef = {
  name: PIPELINE,
  provider: 'fitbit',
  summary: 'Fitbit Web API (legacy) activity log list, oldest first, following pagination.next',
  datasets: ['activities'],
  flags: ['users', 'since', 'until', 'lookback', 'concurrency'],
  check: checkFitbitUsers,
  plan: (config, now, store) =>
    planFitbit(config, store, PIPELINE, now, (saved, until) => {
      const mark = saved[STREAM];
      const since = config.since ?? (mark ? addDays(mark.slice(0, 10), -Math.max(1, config.lookbackDays)) : addDays(until, -6));
      return { window: `${since} .. ${until}`, requests: 2 };
    }),
  run: (ctx) => runFitbitActivities(ctx),
  demo: { args: ['--since', '2016-04-12', '--until', '2017-09-30', '--concurrency', '8'], help: "the users' activity logs, 2016-04-12 .. 2017-09-30" },
};

export async function runFitbitActivities(ctx: RunContext): Promise<PipelineResult> {
  const { config } = ctx;
  const users = await loadUsers(ctx);
  const state = await ctx.state.load(PIPELINE);
  const watermarks = new Map<string, string>();
  const sessions = new Map<string, FitbitSession>();

  async function* userBatches(user: UserEntry, deadLetters: DeadLetterWriter): AsyncGenerator<ActivityRecord[]> {
    const saved = userState(state, user.humanId);
    const session = openSession(ctx, users, user, saved, PIPELINE);
    sessions.set(user.humanId, session);
    try {
      const userCtx = await userContext(session, user);
      const until = untilFor(ctx, userCtx.timeZone);
      const watermark = saved.streams[STREAM]; // ISO lastModified
      const since = config.since ?? (watermark ? addDays(watermark.slice(0, 10), -Math.max(1, config.lookbackDays)) : addDays(until, -6));
      let highest = watermark ?? '';
      ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: 1 });
      for await (const page of activitiesSince(session, since)) {
        const records: ActivityRecord[] = [];
        let pastUntil = false;
        for (const checked of page) {
          const result = normalizeActivity(checked, userCtx, ctx.seenAt);
          if (!result.ok) {
            deadLetters.write(result.deadLetter);
            continue;
          }
          if (result.record.date < since) continue;
          if (result.record.date > until) {
            pastUntil = true; // sorted by start time: nothing later belongs to this window
            break;
          }
          records.push(result.record);
          const lastModified = checked.ok ? checked.value.lastModified : undefined;
          if (lastModified !== undefined && lastModified > highest) highest = lastModified;
        }
        if (records.length > 0) yield records;
        if (pastUntil) break;
      }
      if (highest) watermarks.set(user.humanId, highest);
      ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
    } finally {
      saved.rateBudget = session.budget.snapshot();
    }
  }

  // A user's checkpoint: its rows are committed, so its watermark and rate budget are saved now.
  async function committed(user: UserEntry): Promise<void> {
    const u = userState(state, user.humanId);
    const mark = watermarks.get(user.humanId);
    if (mark) u.streams[STREAM] = mark;
    const session = sessions.get(user.humanId);
    if (session) u.rateBudget = session.budget.snapshot();
    await ctx.state.saveUser(state, user.humanId);
  }

  const { summary, failedUsers, deadLetterFiles } = await runUserStreams(ctx, PIPELINE, 'activities', users.users(), userBatches, committed);
  await ctx.state.save(state);
  throwIfGone(ctx);
  return { pipeline: PIPELINE, datasets: [summary], users: users.users().length, failedUsers, deadLetterFiles };
}
