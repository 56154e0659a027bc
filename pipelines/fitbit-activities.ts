// fitbit-activities: the activity log list per user (oldest first, following
// pagination.next) → `activities` rows → sink. The watermark is the highest lastModified
// seen; the next run asks again from that date less the lookback, because the list is
// filtered by start time while late syncs change records that started earlier.
import { addDays } from '../lib/dates.js';
import type { ActivityRecord } from '../lib/schema.js';
import { activitiesSince } from '../sources/fitbit/index.js';
import type { UserEntry } from '../sources/fitbit/users.js';
import { normalizeActivity } from '../transforms/activities.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { checkFitbitUsers, loadUsers, openSession, planFitbit, throwIfGone, untilFor, userContext } from './fitbit-common.js';
import { perUserState, runPerUser, WINDOW_FLAGS, type UserIo } from './user-streams.js';

const PIPELINE = 'fitbit-activities' as const;
const STREAM = 'activities';

export const fitbitActivities: PipelineDef = {
  name: PIPELINE,
  provider: 'fitbit',
  summary: 'Fitbit Web API (legacy) activity log list, oldest first, following pagination.next',
  datasets: ['activities'],
  flags: WINDOW_FLAGS,
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
  const state = await perUserState(ctx, PIPELINE);

  async function* userBatches(user: UserEntry, { deadLetters, progress }: UserIo): AsyncGenerator<ActivityRecord[]> {
    const session = openSession(ctx, users, user, progress.saved, PIPELINE);
    progress.budget = () => session.budget.snapshot();
    const userCtx = await userContext(session, user);
    const until = untilFor(ctx, userCtx.timeZone);
    const watermark = progress.saved.streams[STREAM]; // ISO lastModified
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
    // Saved at the checkpoint if the list was read through (the user neither failed nor stopped).
    if (highest) progress.mark(STREAM, highest);
    ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
  }

  const result = await runPerUser(ctx, { pipeline: PIPELINE, dataset: 'activities', users: users.users(), state, batches: userBatches });
  throwIfGone(ctx);
  return result;
}
