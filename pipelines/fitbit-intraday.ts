// fitbit-intraday: users × local dates × resources → intraday datasets → `intraday` rows → sink.
// One request per user, resource and date; each answer goes to the sink as its partition's
// columns. Users run side by side, each user's requests one at a time. State per user and
// resource: the last local date fetched whole.
import { dateRange, daysInclusive, todayIn } from '../lib/dates.js';
import type { DailySummaryRecord, IntradayType } from '../lib/schema.js';
import type { DeadLetterWriter, PartitionColumns } from '../lib/sink.js';
import { fetchIntradayDay } from '../sources/fitbit/index.js';
import type { UserEntry } from '../sources/fitbit/users.js';
import { dailySummaryFromIntraday, intradayDayTotal, normalizeIntradayColumns } from '../transforms/intraday.js';
import { startDailySummaries } from './daily-summaries.js';
import type { PipelineResult, RunContext } from './context.js';
import { loadUsers, openSession, runUserStreams, sinceFor, throwIfGone, untilFor, userContext, userState } from './fitbit-common.js';
import { defaultStatePath, loadState, saveState } from './state.js';

const PIPELINE = 'fitbit-intraday' as const;

export async function runFitbitIntraday(ctx: RunContext): Promise<PipelineResult> {
  const { config } = ctx;
  const users = await loadUsers(ctx);
  const statePath = config.stateFile ?? defaultStatePath(config.outDir, PIPELINE);
  const state = await loadState(statePath, PIPELINE);
  // Progress that the sink has not committed yet; copied into the state only after it has.
  const fetched = new Map<string, Record<string, string>>();
  // The day totals the answers carry go to daily_summaries (one row per user and date), for the
  // report to reconcile the minute sums with; a second sink, fed as the days come.
  const daily = startDailySummaries(ctx);

  async function* userBatches(user: UserEntry, deadLetters: DeadLetterWriter): AsyncGenerator<PartitionColumns> {
    const saved = userState(state, user.humanId);
    const session = openSession(ctx, users, user, saved, PIPELINE);
    const progress: Record<string, string> = {};
    fetched.set(user.humanId, progress);
    try {
      const userCtx = await userContext(session, user);
      const until = untilFor(ctx, userCtx.timeZone);
      // A day is complete only once it is over in the user's zone.
      const lastComplete = todayIn(userCtx.timeZone, ctx.seenAt);
      const since = new Map(config.resources.map((r) => [r, sinceFor(ctx, saved.streams[r], until)] as const));
      const first = [...since.values()].reduce((a, b) => (a < b ? a : b));
      ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: daysInclusive(first, until) });
      for (const date of dateRange(first, until)) {
        const totals = new Map<IntradayType, number>();
        for (const resource of config.resources) {
          if (date < (since.get(resource) as string)) continue;
          const day = await fetchIntradayDay(session, { resource, date, detail: config.detail });
          const total = intradayDayTotal(day);
          if (total !== null) totals.set(resource, total);
          const result = normalizeIntradayColumns(day, userCtx, ctx.seenAt);
          for (const letter of result.deadLetters) deadLetters.write(letter);
          if (result.columns !== null) yield result.columns;
          if (date < lastComplete) progress[resource] = date;
        }
        const summary: DailySummaryRecord | null = dailySummaryFromIntraday(userCtx, date, totals, ctx.seenAt);
        if (summary !== null) daily.push(summary);
        ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
      }
    } finally {
      saved.rateBudget = session.budget.snapshot();
    }
  }

  const { summary, failedUsers, deadLetterFiles } = await runUserStreams(ctx, PIPELINE, 'intraday', users, userBatches).finally(() => daily.close());
  const dailyResult = await daily.done;
  // Committed: move the watermarks forward.
  for (const [humanId, progress] of fetched) {
    const u = userState(state, humanId);
    for (const [resource, date] of Object.entries(progress)) {
      if (!u.streams[resource] || date > u.streams[resource]) u.streams[resource] = date;
    }
  }
  await saveState(statePath, state);
  throwIfGone(ctx);
  if ('error' in dailyResult) throw dailyResult.error; // the minute data is committed; the day totals are not
  return { pipeline: PIPELINE, datasets: [summary, dailyResult.summary], users: users.users().length, failedUsers, deadLetterFiles: [...deadLetterFiles, ...dailyResult.deadLetterFiles] };
}
