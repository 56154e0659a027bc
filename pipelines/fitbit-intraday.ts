// fitbit-intraday: users × local dates × resources → intraday datasets → `intraday` rows → sink.
// One request per user, resource and date; each answer goes to the sink as its partition's
// columns. Users run side by side, each user's requests one at a time. State per user and
// resource: the last local date fetched whole.
import { addDays, dateRange, daysInclusive, minDate, todayIn } from '../lib/dates.js';
import { EtlError } from '../lib/errors.js';
import { INTRADAY_TYPES, type DailySummaryRecord, type IntradayType } from '../lib/schema.js';
import type { PartitionColumns } from '../lib/sink.js';
import { fetchIntradayDay } from '../sources/fitbit/index.js';
import { INTRADAY_DETAILS, type IntradayDetail } from '../sources/fitbit/types.js';
import type { UserEntry } from '../sources/fitbit/users.js';
import { dailySummaryFromIntraday, intradayDayTotal, normalizeIntradayColumns } from '../transforms/intraday.js';
import type { RunConfig } from './config.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { startSideSink } from './side-sink.js';
import { checkFitbitUsers, loadUsers, openSession, planFitbit, sinceFor, throwIfGone, untilFor, userContext } from './fitbit-common.js';
import { perUserState, runPerUser, usageProblem, type UserIo } from './user-streams.js';

const PIPELINE = 'fitbit-intraday' as const;

/** --resources (Fitbit's resource names) and --detail, checked. */
export function fitbitIntradayOptions(config: RunConfig): { resources: IntradayType[]; detail: IntradayDetail } {
  const resources = config.resources ?? ['steps', 'calories', 'distance'];
  const bad = resources.find((r) => !(INTRADAY_TYPES as readonly string[]).includes(r));
  if (bad !== undefined) throw new EtlError('USAGE', `unknown intraday resource "${bad}"; choose from ${INTRADAY_TYPES.join(', ')}`);
  const detail = config.detail ?? '1min';
  if (!(INTRADAY_DETAILS as readonly string[]).includes(detail)) throw new EtlError('USAGE', `--detail must be one of ${INTRADAY_DETAILS.join(', ')}, not "${detail}"`);
  return { resources: resources as IntradayType[], detail: detail as IntradayDetail };
}

export const fitbitIntraday: PipelineDef = {
  name: PIPELINE,
  provider: 'fitbit',
  summary: 'Fitbit Web API (legacy) intraday: one request per user, resource and local date',
  datasets: ['intraday', 'daily_summaries'],
  flags: ['users', 'since', 'until', 'resources', 'detail', 'lookback', 'concurrency'],
  check: (config) => checkFitbitUsers(config) ?? usageProblem(() => fitbitIntradayOptions(config)),
  plan: (config, now, store) => {
    const { resources, detail } = fitbitIntradayOptions(config);
    return planFitbit(config, store, PIPELINE, now, (saved, until) => {
      let requests = 1; // profile
      let first = until;
      for (const r of resources) {
        const mark = saved[r];
        const since = config.since ?? (mark ? addDays(mark, 1 - config.lookbackDays) : addDays(until, -6));
        if (since < first) first = since;
        requests += daysInclusive(since, until);
      }
      return { window: `${first} .. ${until} × ${resources.join(',')} (${detail})`, requests };
    });
  },
  run: (ctx) => runFitbitIntraday(ctx),
  demo: { args: ['--since', '2016-04-12', '--until', '2016-05-13', '--concurrency', '8'], help: 'steps, calories, distance, 2016-04-12 .. 2016-05-13, 1min' },
};

export async function runFitbitIntraday(ctx: RunContext): Promise<PipelineResult> {
  const { resources, detail } = fitbitIntradayOptions(ctx.config);
  const users = await loadUsers(ctx);
  const state = await perUserState(ctx, PIPELINE);
  // The day totals the answers carry go to daily_summaries (one row per user and date), for the
  // report to reconcile the minute sums with; a side sink, committed at the users' checkpoints.
  const daily = startSideSink(ctx, 'daily_summaries');

  async function* userBatches(user: UserEntry, { deadLetters, progress }: UserIo): AsyncGenerator<PartitionColumns> {
    const session = openSession(ctx, users, user, progress.saved, PIPELINE);
    progress.budget = () => session.budget.snapshot();
    const userCtx = await userContext(session, user);
    const until = untilFor(ctx, userCtx.timeZone);
    const lastComplete = addDays(todayIn(userCtx.timeZone, ctx.seenAt), -1);
    // Where each resource starts: its window, or after what an unfinished run of that same window committed.
    const start = new Map(resources.map((r) => [r, progress.open(r, { since: sinceFor(ctx, progress.saved.streams[r], until), until, lastComplete })] as const));
    const first = [...start.values()].reduce((a, b) => minDate(a, b));
    ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: Math.max(0, daysInclusive(first, until)) });
    for (const date of dateRange(first, until)) {
      // The day's answers first, then its total (side sink), then its rows: whatever a stop
      // lets out of this day, its total is queued before, so a checkpoint commits both.
      const totals = new Map<IntradayType, number>();
      const answers: Array<{ resource: IntradayType; columns: PartitionColumns | null }> = [];
      for (const resource of resources) {
        if (date < (start.get(resource) as string)) continue;
        const day = await fetchIntradayDay(session, { resource, date, detail });
        const total = intradayDayTotal(day);
        if (total !== null) totals.set(resource, total);
        const result = normalizeIntradayColumns(day, userCtx, ctx.seenAt);
        for (const letter of result.deadLetters) deadLetters.write(letter);
        answers.push({ resource, columns: result.columns });
      }
      const summary: DailySummaryRecord | null = dailySummaryFromIntraday(userCtx, date, totals, ctx.seenAt);
      if (summary !== null) await daily.push([summary]);
      for (const { resource, columns } of answers) {
        // Done once the rows have gone out (the state is saved only after the sinks commit them):
        // an answer that a stop left undelivered is not marked, so the next run asks again.
        try {
          if (columns !== null) yield columns;
        } finally {
          progress.done(resource, date); // also when the stream is closed right after this yield (a stop)
        }
      }
      ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
    }
  }

  const result = await runPerUser(ctx, { pipeline: PIPELINE, dataset: 'intraday', users: users.users(), state, batches: userBatches, sides: [daily] });
  throwIfGone(ctx);
  return result;
}
