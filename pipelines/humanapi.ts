// humanapi: Human API batch queries per data type (--types), window by window → `activities`,
// `daily_summaries` or `readings` rows → sink. Each window of each type is one sink call, and
// the type's watermark (the end of its last committed window) is saved right after that call
// resolves: a run killed mid-backfill leaves the state at the last window that is on disk.
//
// The time range of a type, in updatedAt (Human API filters on its own last-modified time,
// not on when an activity happened):
//   end:   the end of --until's UTC day, never later than the run's clock (ctx.seenAt);
//          without --until, the run's clock.
//   start: --since at 00:00 UTC (an explicit backfill); else the saved watermark less
//          --lookback days (default 2: a record written just before a window's end may become
//          visible only after the query, and updatedAt order at the edge is not guaranteed);
//          else 7 days before the end (first run: a week, like the Fitbit pipelines).
// The watermark only moves forward, so a backfill of old history does not rewind it.
import type { Dataset, DatasetRecords, DeadLetter } from '../lib/schema.js';
import { EtlError } from '../lib/errors.js';
import type { Checked } from '../lib/validate.js';
import type { DatasetSummary, DeadLetterWriter } from '../lib/sink.js';
import { createDeadLetterWriter, createSink, readManifest } from '../sinks/index.js';
import {
  HUMANAPI_BATCH_TYPES,
  HumanApiClient,
  MAX_PAGE_SIZE,
  batchPages,
  describeWindow,
  planWindows,
  type BatchWindow,
  type HumanApiRecord,
} from '../sources/humanapi/index.js';
import { humanApiDataset, normalizeHumanApi } from '../transforms/humanapi.js';
import type { RunConfig } from './config.js';
import { sinkOptions, type PipelineDef, type PipelineResult, type RunContext } from './context.js';
import { describeError, usageProblem } from './user-streams.js';
import type { PipelineState, UserState } from './state.js';

const PIPELINE = 'humanapi' as const;
/** Batch queries are per app, not per user: the state keeps them under this key (plan.ts reads it). */
export const HUMANAPI_STATE_KEY = 'app';
const DAY_MS = 86_400_000;
const FIRST_RUN_DAYS = 7;

type HumanDataset = Exclude<Dataset, 'intraday'>;
type HumanRecord = DatasetRecords[HumanDataset];

export interface HumanApiRunOptions {
  /** Records per page, 1..500 (default 500, the API's maximum). */
  pageSize?: number;
  /** Most pages per window (guard; default 10,000). */
  maxPagesPerWindow?: number;
}

/** The user-level names people tend to type, mapped to the batch endpoint names. */
const BATCH_NAME: Readonly<Record<string, string>> = {
  activity: 'activities', summaries: 'activities/summaries', 'activity/summaries': 'activities/summaries',
  heart_rate: 'heart_rates', weight: 'weights', bmi: 'bmis', body_fat: 'body_fats', height: 'heights',
  blood_pressure: 'blood_pressures', blood_glucose: 'blood_glucoses', blood_oxygen: 'blood_oxygens',
};

/** Checks --types: every type must be a batch type with a dataset here. */
export function humanApiTypes(types: readonly string[]): Array<{ type: string; dataset: HumanDataset }> {
  return types.map((type) => {
    const dataset = humanApiDataset(type);
    if (dataset === null || !(HUMANAPI_BATCH_TYPES as readonly string[]).includes(type)) {
      const hint = BATCH_NAME[type] ? ` (did you mean ${BATCH_NAME[type]}?)` : '';
      throw new EtlError('USAGE', `--types: Human API batch type "${type}" is not carried${hint}; choose from ${HUMANAPI_BATCH_TYPES.join(', ')}`);
    }
    return { type, dataset };
  });
}

const startOfUtcDay = (date: string): number => Date.parse(`${date}T00:00:00Z`);

/** [start, end) of one type's fetch in epoch ms (whole seconds); see the header. */
export function humanApiRange(config: RunConfig, seenAt: number, watermark: string | undefined): { start: number; end: number } {
  const now = Math.floor(seenAt / 1000) * 1000;
  const end = config.until ? Math.min(startOfUtcDay(config.until) + DAY_MS, now) : now;
  let start: number;
  if (config.since) start = startOfUtcDay(config.since);
  else if (watermark !== undefined) {
    const mark = Date.parse(watermark);
    if (Number.isNaN(mark)) throw new EtlError('STATE', `the humanapi state holds watermark "${watermark}", not an ISO time; fix or delete the state file`);
    start = Math.floor(mark / 1000) * 1000 - config.lookbackDays * DAY_MS;
  } else start = end - FIRST_RUN_DAYS * DAY_MS;
  return { start, end };
}

function appState(state: PipelineState): UserState {
  let app = state.users[HUMANAPI_STATE_KEY];
  if (!app) {
    app = { streams: {} };
    state.users[HUMANAPI_STATE_KEY] = app;
  }
  return app;
}

interface DatasetRun {
  deadLetters: DeadLetterWriter;
  rowsIn: number;
  paths: Set<string>;
}

const typesOf = (config: RunConfig): string[] => config.types ?? ['activities'];

export const humanApi: PipelineDef = {
  name: PIPELINE,
  provider: 'humanapi',
  summary: 'Human API batch queries per data type (--types), window by window',
  datasets: ['activities', 'daily_summaries', 'readings'],
  flags: ['since', 'until', 'types', 'lookback'],
  check: (config) =>
    !config.env.humanApiClientId || !config.env.humanApiAppKey
      ? 'needs HUMANAPI_CLIENT_ID and HUMANAPI_APP_KEY in the environment'
      : usageProblem(() => humanApiTypes(typesOf(config))),
  plan: async (config, now, store) => {
    // The same windows the run would walk: per type, from --since or the watermark less the lookback.
    const state = await store.load(PIPELINE);
    return typesOf(config).map((type) => {
      const { start, end } = humanApiRange(config, now, state.users[HUMANAPI_STATE_KEY]?.streams[type]);
      const windows = start < end ? planWindows(start, end) : [];
      const first = windows[0];
      const last = windows[windows.length - 1];
      return (
        `${PIPELINE}: ${type}: ${windows.length} window(s) of ≤ 31 days` +
        (first && last ? ` (${new Date(first.since).toISOString()} .. ${new Date(last.before).toISOString()})` : '') +
        `, ≥ ${windows.length} request(s) (one per page of ≤ 500 records)`
      );
    });
  },
  run: (ctx) => runHumanApi(ctx),
  demo: {
    args: ['--since', '2014-07-01', '--until', '2015-09-30', '--types', 'activities,heart_rates,weights,bmis,body_fats,heights,blood_glucoses,blood_oxygens,blood_pressures'],
    help: 'recorded Human API activities and readings, 2014-07-01 .. 2015-09-30',
  },
};

export async function runHumanApi(ctx: RunContext, options: HumanApiRunOptions = {}): Promise<PipelineResult> {
  const { config } = ctx;
  const { humanApiClientId: clientId, humanApiAppKey: appKey, humanApiUrl } = config.env;
  if (!clientId || !appKey) throw new EtlError('CONFIG', 'humanapi needs HUMANAPI_CLIENT_ID and HUMANAPI_APP_KEY in the environment');
  const streams = humanApiTypes(typesOf(config));
  const pageSize = options.pageSize ?? MAX_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) throw new EtlError('USAGE', `Human API page size must be 1..${MAX_PAGE_SIZE}, got ${pageSize}`);

  const state = await ctx.state.load(PIPELINE);
  const saved = appState(state);
  const client = new HumanApiClient({
    baseUrl: humanApiUrl,
    clientId,
    appKey,
    stats: ctx.stats,
    log: ctx.log,
    ...(ctx.tuning?.retry ? { retry: ctx.tuning.retry } : {}),
  });

  // Every window of every type, planned up front so the progress bar knows the total.
  const plans = streams.map((s) => {
    const { start, end } = humanApiRange(config, ctx.seenAt, saved.streams[s.type]);
    return { ...s, windows: planWindows(start, end) };
  });
  ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', units: plans.reduce((n, p) => n + p.windows.length, 0) });

  const datasets = new Map<HumanDataset, DatasetRun>();
  const runOf = (dataset: HumanDataset): DatasetRun => {
    let run = datasets.get(dataset);
    if (!run) {
      run = { deadLetters: createDeadLetterWriter(config.outDir, dataset, ctx.runId), rowsIn: 0, paths: new Set() };
      datasets.set(dataset, run);
    }
    return run;
  };
  for (const p of plans) runOf(p.dataset);
  const sinkConfig = sinkOptions(ctx);

  let error: string | undefined;
  try {
    for (const plan of plans) {
      const run = runOf(plan.dataset);
      // One sink per dataset; each call of it commits one window.
      const sink = createSink(plan.dataset, { ...sinkConfig, deadLetters: run.deadLetters });
      for (const w of plan.windows) {
        if (ctx.stop?.aborted) break; // stopped: the windows committed so far are kept, the rest wait for the next run
        const fetched = { pages: 0, records: 0 };
        const summary = await sink(windowBatches(ctx, client, plan.type, w, run.deadLetters, fetched, options, pageSize));
        run.rowsIn += summary.rowsIn;
        for (const p of summary.paths) run.paths.add(p);
        // Committed: only now may the watermark pass this window.
        const mark = new Date(w.before).toISOString();
        const previous = saved.streams[plan.type];
        if (previous === undefined || !(Date.parse(previous) >= w.before)) saved.streams[plan.type] = mark;
        await ctx.state.save(state);
        const fields = { pipeline: PIPELINE, type: plan.type, window: describeWindow(w), pages: fetched.pages, records: fetched.records, rows: summary.rowsIn };
        if (fetched.records > 0) ctx.log.info('window committed', fields);
        else ctx.log.debug('window committed', fields);
        ctx.progress?.({ pipeline: PIPELINE, kind: 'done', units: 1 });
      }
    }
  } catch (err) {
    if (err instanceof EtlError && (err.code === 'USAGE' || err.code === 'CONFIG')) throw err;
    error = describeError(client.scrub(err));
    ctx.log.error('pipeline failed; committed windows are kept', { pipeline: PIPELINE, reason: error });
  } finally {
    for (const run of datasets.values()) await run.deadLetters.close();
  }

  const summaries: DatasetSummary[] = [];
  const deadLetterFiles: string[] = [];
  for (const [dataset, run] of datasets) {
    const file = await run.deadLetters.close();
    if (file) deadLetterFiles.push(file);
    summaries.push(await summarize(config.outDir, dataset, run));
  }
  return { pipeline: PIPELINE, datasets: summaries, users: plans.length, failedUsers: [], deadLetterFiles, ...(error !== undefined ? { error } : {}) };
}

/** One window's pages, normalized: records that fail go to the dead letters and the run goes on. */
async function* windowBatches(
  ctx: RunContext,
  client: HumanApiClient,
  type: string,
  w: BatchWindow,
  deadLetters: DeadLetterWriter,
  fetched: { pages: number; records: number },
  options: HumanApiRunOptions,
  pageSize: number,
): AsyncGenerator<HumanRecord[]> {
  for await (const page of batchPages(client, type, w, { pageSize, ...(options.maxPagesPerWindow ? { maxPages: options.maxPagesPerWindow } : {}) })) {
    fetched.pages++;
    fetched.records += page.records.length;
    const records = pageRecords(type, page.records, ctx.seenAt, (letter) =>
      deadLetters.write({ ...letter, context: { ...letter.context, window: describeWindow(w), page: page.index } }),
    );
    if (records.length > 0) yield records;
  }
}

function pageRecords(type: string, raws: readonly Checked<HumanApiRecord>[], seenAt: number, dead: (letter: DeadLetter) => void): HumanRecord[] {
  const out: HumanRecord[] = [];
  for (const raw of raws) {
    const result = normalizeHumanApi(type, raw, seenAt);
    if (result.ok) for (const r of result.records) out.push(r);
    else dead(result.deadLetter);
  }
  return out;
}

/** The run's view of a dataset across its windows: every file it wrote, with the rows now in it. */
async function summarize(outDir: string, dataset: HumanDataset, run: DatasetRun): Promise<DatasetSummary> {
  const paths = [...run.paths].sort();
  const manifest = await readManifest(outDir, dataset);
  const rowsByPath = new Map<string, number>((manifest?.files ?? []).map((f) => [`${dataset}/${f.path}`, f.rows]));
  let rows = 0;
  for (const p of paths) rows += rowsByPath.get(p) ?? 0;
  return { dataset, rows, rowsIn: run.rowsIn, files: paths.length, partitions: paths.length, deadLetters: run.deadLetters.count, paths };
}
