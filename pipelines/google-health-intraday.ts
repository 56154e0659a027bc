// google-health-intraday: users × data types × local-date windows (≤ 7 days) → `:reconcile`
// pages → `intraday` rows → sink. A point gets the id of the legacy Fitbit point of the same
// user, type and local minute, so history continues in the same rows. State per user and data
// type (Google's name): the last local date fetched whole, moved only after the sink committed.
import { EtlError } from '../lib/errors.js';
import type { DeadLetterWriter, PartitionColumns } from '../lib/sink.js';
import { GH_INTRADAY_TYPES, WINDOW_DAYS, dataPointPages, dateWindows, windowCount, type GhIntradayType } from '../sources/google-health/index.js';
import { GhSeenIds, normalizeGhPointColumns } from '../transforms/google-health.js';
import type { RunConfig } from './config.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { GhRunUser, checkGhConfig, saveBudget, ghUserContext, ghWindow, loadGhUsers, openGhSession, planGh, planSince, loadGhState } from './google-health-common.js';
import { userState } from './fitbit-common.js';
import { defaultStatePath, saveState } from './state.js';
import { runUserStreams, usageProblem } from './user-streams.js';
import { addDays, minDate } from '../lib/dates.js';

const PIPELINE = 'google-health-intraday' as const;
export const GH_DEFAULT_RESOURCES: readonly GhIntradayType[] = ['steps', 'distance', 'active-energy-burned'];

/** --resources with Google's data-type names, checked. */
export function ghIntradayResources(config: RunConfig): GhIntradayType[] {
  const resources = config.resources ?? [...GH_DEFAULT_RESOURCES];
  const bad = resources.find((r) => !(GH_INTRADAY_TYPES as readonly string[]).includes(r));
  if (bad !== undefined) {
    throw new EtlError('USAGE', `unknown Google Health data type "${bad}" in --resources; choose from ${GH_INTRADAY_TYPES.join(', ')} (Google's names)`);
  }
  return resources as GhIntradayType[];
}

export const googleHealthIntraday: PipelineDef = {
  name: PIPELINE,
  provider: 'google-health',
  summary: 'Google Health API v4 intraday (steps, distance, floors, altitude, active energy, heart rate) → intraday',
  datasets: ['intraday'],
  flags: ['users', 'since', 'until', 'resources', 'lookback', 'concurrency'],
  check: (config) => checkGhConfig(config) ?? usageProblem(() => ghIntradayResources(config)),
  plan: (config, now) => {
    const resources = ghIntradayResources(config);
    return planGh(config, PIPELINE, now, (saved, until) => {
      let requests = 0;
      let first = until;
      for (const r of resources) {
        const since = planSince(config, saved[r], until);
        if (since < first) first = since;
        requests += windowCount(since, until, WINDOW_DAYS);
      }
      return { window: `${first} .. ${until} × ${resources.join(',')} (windows of ${WINDOW_DAYS} days)`, requests };
    });
  },
  run: (ctx) => runGoogleHealthIntraday(ctx),
  demo: { args: ['--since', '2016-05-07', '--until', '2016-05-13', '--concurrency', '8'], help: 'steps, distance, active energy, 2016-05-07 .. 2016-05-13: the last week of the legacy run, one row per minute where both have it' },
};

export async function runGoogleHealthIntraday(ctx: RunContext): Promise<PipelineResult> {
  const { config } = ctx;
  const resources = ghIntradayResources(config);
  const { file, users } = await loadGhUsers(ctx);
  const statePath = config.stateFile ?? defaultStatePath(config.outDir, PIPELINE);
  const state = await loadGhState(config, PIPELINE, Date.now());
  const fetched = new Map<GhRunUser, Record<string, string>>();
  const budgets = new Map<GhRunUser, () => void>();

  async function* userBatches(user: GhRunUser, deadLetters: DeadLetterWriter): AsyncGenerator<PartitionColumns> {
    const session = openGhSession(ctx, file, user, state, PIPELINE);
    const progress: Record<string, string> = {};
    fetched.set(user, progress);
    budgets.set(user, () => saveBudget(state, user, session.budget.snapshot()));
    const { ctx: userCtx, zone } = await ghUserContext(session, user);
    const saved = userState(state, user.humanId).streams;
    const windows = new Map(resources.map((r) => [r, ghWindow(ctx, saved[r], userCtx.timeZone)] as const));
    const first = [...windows.values()].reduce((a, w) => minDate(a, w.since), '9999-12-31');
    const until = [...windows.values()][0]!.until;
    const all = dateWindows(first, until, WINDOW_DAYS);
    ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: all.length * resources.length });
    for (const w of all) {
      for (const type of resources) {
        const mine = windows.get(type)!;
        // This stream's own dates within the shared window.
        const from = w.from < mine.since ? mine.since : w.from;
        if (from >= w.to) continue;
        const seen = new GhSeenIds();
        for await (const page of dataPointPages(session, type, { from, to: w.to })) {
          const result = normalizeGhPointColumns(page, userCtx, zone, ctx.seenAt, seen);
          for (const letter of result.deadLetters) deadLetters.write(letter);
          yield* result.partitions;
        }
        const last = minDate(addDays(w.to, -1), mine.lastComplete);
        if (last >= from) progress[type] = last;
        ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
      }
    }
  }

  let result;
  try {
    result = await runUserStreams(ctx, PIPELINE, 'intraday', users, userBatches);
  } finally {
    for (const save of budgets.values()) save();
  }
  for (const [user, progress] of fetched) {
    const u = userState(state, user.humanId);
    for (const [type, date] of Object.entries(progress)) {
      if (!u.streams[type] || date > u.streams[type]) u.streams[type] = date;
    }
  }
  await saveState(statePath, state);
  return { pipeline: PIPELINE, datasets: [result.summary], users: users.length, failedUsers: result.failedUsers, deadLetterFiles: result.deadLetterFiles };
}
