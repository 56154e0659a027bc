// fitbit-intraday: users × local dates × resources → intraday datasets → `intraday` rows → sink.
// One request per user, resource and date; each answer goes to the sink as its partition's
// columns. Users run side by side, each user's requests one at a time. State per user and
// resource: the last local date fetched whole.
import { addDays, dateRange, daysInclusive, todayIn } from '../lib/dates.js';
import { EtlError } from '../lib/errors.js';
import { INTRADAY_TYPES, type DailySummaryRecord, type IntradayType } from '../lib/schema.js';
import type { DeadLetterWriter, PartitionColumns } from '../lib/sink.js';
import { fetchIntradayDay, type FitbitSession } from '../sources/fitbit/index.js';
import { INTRADAY_DETAILS, type IntradayDetail } from '../sources/fitbit/types.js';
import type { UserEntry } from '../sources/fitbit/users.js';
import { dailySummaryFromIntraday, intradayDayTotal, normalizeIntradayColumns } from '../transforms/intraday.js';
import type { RunConfig } from './config.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { startDailySummaries } from './daily-summaries.js';
import { SharedWriters } from '../sinks/index.js';
import { checkFitbitUsers, loadUsers, openSession, planFitbit, sinceFor, throwIfGone, untilFor, userContext, userState } from './fitbit-common.js';
import { runUserStreams, usageProblem, type UserOutcome } from './user-streams.js';
import { defaultStatePath, loadState, stateSaver } from './state.js';

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
  plan: (config, now) => {
    const { resources, detail } = fitbitIntradayOptions(config);
    return planFitbit(config, PIPELINE, now, (saved, until) => {
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
  const { config } = ctx;
  const { resources, detail } = fitbitIntradayOptions(config);
  const users = await loadUsers(ctx);
  const statePath = config.stateFile ?? defaultStatePath(config.outDir, PIPELINE);
  const state = await loadState(statePath, PIPELINE);
  const save = stateSaver(statePath, state);
  // Per user, what the sink has not committed yet; copied into the state at the user's checkpoint.
  const fetched = new Map<string, { session: FitbitSession; windows: Map<string, { since: string; until: string; done?: string; complete?: string }> }>();
  // The day totals the answers carry go to daily_summaries (one row per user and date), for the
  // report to reconcile the minute sums with; a second sink, fed as the days come. It commits at
  // the end of the pipeline, not at the users' checkpoints: a killed run can leave days whose
  // minutes are committed without their totals (the report shows them as missing totals).
  // One writer thread for both sinks: the day totals' ~1 small file per user and date would
  // otherwise be written on this thread, between the answers (bench/api-bound).
  const writers = new SharedWriters();
  const daily = startDailySummaries(ctx, writers);

  async function* userBatches(user: UserEntry, deadLetters: DeadLetterWriter): AsyncGenerator<PartitionColumns> {
    const saved = userState(state, user.humanId);
    const session = openSession(ctx, users, user, saved, PIPELINE);
    const windows = new Map<string, { since: string; until: string; done?: string; complete?: string }>();
    fetched.set(user.humanId, { session, windows });
    const userCtx = await userContext(session, user);
    const until = untilFor(ctx, userCtx.timeZone);
    // A day is complete only once it is over in the user's zone.
    const lastComplete = todayIn(userCtx.timeZone, ctx.seenAt);
    // Where each resource starts: its window, or after what an unfinished run of that same window committed.
    const start = new Map<string, string>();
    for (const r of resources) {
      const since = sinceFor(ctx, saved.streams[r], until);
      windows.set(r, { since, until });
      const pending = saved.pending?.[r];
      const resumeAt = pending && pending.since === since && pending.until === until ? addDays(pending.done, 1) : since;
      if (pending && resumeAt !== since) windows.set(r, { since, until, done: pending.done, ...(pending.done < lastComplete ? { complete: pending.done } : {}) });
      start.set(r, resumeAt);
    }
    const first = [...start.values()].reduce((a, b) => (a < b ? a : b));
    ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: Math.max(0, daysInclusive(first, until)) });
    for (const date of dateRange(first, until)) {
      const totals = new Map<IntradayType, number>();
      for (const resource of resources) {
        if (date < (start.get(resource) as string)) continue;
        const day = await fetchIntradayDay(session, { resource, date, detail });
        const total = intradayDayTotal(day);
        if (total !== null) totals.set(resource, total);
        const result = normalizeIntradayColumns(day, userCtx, ctx.seenAt);
        for (const letter of result.deadLetters) deadLetters.write(letter);
        // Done once the rows have gone out (the state is saved only after the sink commits them):
        // an answer that a stop left undelivered is not marked, so the next run asks again.
        const w = windows.get(resource) as { done?: string; complete?: string };
        const markDone = (): void => {
          w.done = date;
          if (date < lastComplete) w.complete = date;
        };
        if (result.columns === null) markDone();
        else {
          try {
            yield result.columns;
          } finally {
            markDone(); // also when the stream is closed right after this yield (a stop)
          }
        }
      }
      const summary: DailySummaryRecord | null = dailySummaryFromIntraday(userCtx, date, totals, ctx.seenAt);
      if (summary !== null) daily.push(summary);
      ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
    }
  }

  // A user's checkpoint: its rows are committed, so its watermarks (a finished window) or its
  // place in an unfinished window, and its rate budget, are saved now.
  async function committed(user: UserEntry, outcome: UserOutcome): Promise<void> {
    const f = fetched.get(user.humanId);
    if (!f) return;
    const u = userState(state, user.humanId);
    u.rateBudget = f.session.budget.snapshot();
    for (const [resource, w] of f.windows) {
      // Days before `complete` were fetched in order and are committed: the watermark moves
      // even for a user that failed or was stopped later (the next scheduled run starts after it).
      if (w.complete && (!u.streams[resource] || w.complete > u.streams[resource])) u.streams[resource] = w.complete;
      // Kept until the run ends: if it is killed, the next run of this window skips this user's committed days.
      if (w.done) (u.pending ??= {})[resource] = { since: w.since, until: w.until, done: w.done };
    }
    if (outcome.complete) finished.add(user.humanId);
    await save();
  }
  const finished = new Set<string>();

  const { summary, failedUsers, deadLetterFiles } = await runUserStreams(ctx, PIPELINE, 'intraday', users.users(), userBatches, committed, writers)
    .finally(() => daily.close())
    .finally(async () => {
      await daily.done; // the day totals' sink too (even when the minutes failed) before their thread stops
      await writers.close();
    });
  const dailyResult = await daily.done;
  // The run ended (not stopped): the windows it finished need no resuming, so a later run of
  // the same window (a backfill repeated on purpose) fetches it again.
  if (!ctx.stop?.aborted) {
    for (const humanId of finished) delete userState(state, humanId).pending;
  }
  await save();
  throwIfGone(ctx);
  if ('error' in dailyResult) throw dailyResult.error; // the minute data is committed; the day totals are not
  return { pipeline: PIPELINE, datasets: [summary, dailyResult.summary], users: users.users().length, failedUsers, deadLetterFiles: [...deadLetterFiles, ...dailyResult.deadLetterFiles] };
}
