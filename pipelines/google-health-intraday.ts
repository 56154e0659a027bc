// google-health-intraday: users × data types × local-date windows (≤ 7 days) → `:reconcile`
// pages → `intraday` rows → sink. A point gets the id of the legacy Fitbit point of the same
// user, type and local minute, so history continues in the same rows. State per user and data
// type (Google's name): the last local date fetched whole, moved only after the sink committed.
import { EtlError } from '../lib/errors.js';
import type { PartitionColumns } from '../lib/sink.js';
import { GH_INTRADAY_TYPES, WINDOW_DAYS, dataPointPages, dateWindows, type GhIntradayType } from '../sources/google-health/index.js';
import { GhSeenIds, normalizeGhPointColumns } from '../transforms/google-health.js';
import type { RunConfig } from './config.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { checkGhConfig, GH_DEF, ghWindow, planGh, runGhPipeline } from './google-health-common.js';
import { untilFor } from './fitbit-common.js';
import { usageProblem } from './user-streams.js';
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
  ...GH_DEF,
  summary: 'Google Health API v4 intraday (steps, distance, floors, altitude, active energy, heart rate) → intraday',
  datasets: ['intraday'],
  flags: ['users', 'since', 'until', 'resources', 'lookback', 'concurrency'],
  check: (config) => checkGhConfig(config) ?? usageProblem(() => ghIntradayResources(config)),
  plan: (config, now, store) => planGh(config, store, PIPELINE, now, ghIntradayResources(config), WINDOW_DAYS),
  run: (ctx) => runGoogleHealthIntraday(ctx),
  demo: { args: ['--since', '2016-05-07', '--until', '2016-05-13', '--concurrency', '8'], help: 'steps, distance, active energy, 2016-05-07 .. 2016-05-13: the last week of the legacy run, one row per minute where both have it' },
};

export function runGoogleHealthIntraday(ctx: RunContext): Promise<PipelineResult> {
  const resources = ghIntradayResources(ctx.config);
  return runGhPipeline(ctx, PIPELINE, 'intraday', async function* ({ user, session, userCtx, zone }, { deadLetters, progress }): AsyncGenerator<PartitionColumns> {
    // Per data type: its window, or after what an unfinished run of the same window committed.
    const starts = new Map(resources.map((r) => [r, progress.open(r, ghWindow(ctx, progress.saved.streams[r], userCtx.timeZone))] as const));
    const first = [...starts.values()].reduce((a, b) => minDate(a, b));
    const all = dateWindows(first, untilFor(ctx, userCtx.timeZone), WINDOW_DAYS);
    ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: all.length * resources.length });
    for (const w of all) {
      for (const type of resources) {
        // This stream's own dates within the shared window.
        const start = starts.get(type) as string;
        const from = w.from < start ? start : w.from;
        if (from >= w.to) continue;
        // A window's points of one type go out once all its pages are in, oldest local date
        // first, each date marked delivered once its last partition went out: a stop commits
        // whole days only (a date split by a page boundary is two partitions; a stop between
        // them leaves that day to be fetched again, merged by id).
        const parts: PartitionColumns[] = [];
        const seen = new GhSeenIds();
        for await (const page of dataPointPages(session, type, { from, to: w.to })) {
          const result = normalizeGhPointColumns(page, userCtx, zone, ctx.seenAt, seen);
          for (const letter of result.deadLetters) deadLetters.write(letter);
          for (const part of result.partitions) parts.push(part);
        }
        parts.sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : 0));
        for (let k = 0; k < parts.length; k++) {
          try {
            yield parts[k]!;
          } finally {
            const next = parts[k + 1]?.date;
            if (next !== parts[k]!.date) progress.done(type, next === undefined ? addDays(w.to, -1) : addDays(next, -1));
          }
        }
        if (parts.length === 0) progress.done(type, addDays(w.to, -1));
        ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: 1 });
      }
    }
  });
}
