// replay-intraday: recorded intraday responses (sources/replay) → the same normalizer and sink
// as fitbit-intraday, wired the same way: users side by side, each user's days one at a time,
// one dead-letter writer for the normalizer and the sink. No HTTP, no state file: for
// benchmarks and for re-running a recorded window offline.
import { mergeConcurrent } from '../lib/async.js';
import { EtlError, errorMessage } from '../lib/errors.js';
import type { IntradayType } from '../lib/schema.js';
import type { Compression, DatasetSummary, OutputFormat, PartitionColumns } from '../lib/sink.js';
import { createDeadLetterWriter, createSink, prepareOutput } from '../sinks/index.js';
import type { ParquetEngine, SinkStats } from '../sinks/index.js';
import { loadReplayManifest, replayIntradayDays, type ReplayUser } from '../sources/replay/index.js';
import type { FitbitUserContext } from '../sources/fitbit/types.js';
import { normalizeIntradayColumns } from '../transforms/intraday.js';

export interface ReplayIntradayOptions {
  /** Folder with manifest.json and <userId>/<resource>/<date>.json. */
  dir: string;
  outDir: string;
  format: OutputFormat;
  runId: string;
  /** createdAt/updatedAt of the rows (the run's clock reading). */
  seenAt: number;
  compression?: Compression;
  /** Default: every intraday resource recorded (all six are looked for). */
  resources?: readonly IntradayType[];
  since?: string;
  until?: string;
  /** Users replayed side by side (default 4, as the CLI). */
  concurrency?: number;
  highWaterRows?: number;
  maxOpenPartitions?: number;
  /** Sink stats to fill in (buffered rows, open partitions). */
  stats?: SinkStats;
  /** The sink's writer threads (default: the sink's default). */
  workers?: number;
  /** The sink's Parquet engine (default: the sink's default). */
  parquetEngine?: ParquetEngine;
  /** Clears <outDir>/_tmp first, as a CLI run does (default true). */
  prepare?: boolean;
}

export interface ReplayIntradayResult {
  summary: DatasetSummary;
  users: number;
  /** Responses replayed (one per user, resource and date). */
  responses: number;
  /** Points in those responses. */
  points: number;
  deadLetterFile: string | null;
}

const ALL_RESOURCES: readonly IntradayType[] = ['steps', 'calories', 'distance', 'elevation', 'floors', 'swimming-strokes'];

/** The user context the normalizer needs, from the manifest instead of a profile request. */
export function replayUserContext(user: ReplayUser): FitbitUserContext {
  return {
    userId: user.userId,
    humanId: user.humanId,
    timeZone: user.timezone,
    profile: { timezone: user.timezone, offsetFromUTCMillis: 0 },
    profileUnits: user.units,
  };
}

export async function runReplayIntraday(o: ReplayIntradayOptions): Promise<ReplayIntradayResult> {
  const manifest = await loadReplayManifest(o.dir);
  if (o.prepare ?? true) await prepareOutput(o.outDir);
  const resources = o.resources ?? ALL_RESOURCES;
  const deadLetters = createDeadLetterWriter(o.outDir, 'intraday', o.runId);
  let responses = 0;
  let points = 0;
  let failure: unknown = null;

  async function* userBatches(user: ReplayUser): AsyncGenerator<PartitionColumns> {
    const userCtx = replayUserContext(user);
    const days = replayIntradayDays(o.dir, user, {
      resources,
      detail: manifest.detail,
      ...(o.since !== undefined ? { since: o.since } : {}),
      ...(o.until !== undefined ? { until: o.until } : {}),
    });
    for await (const day of days) {
      responses++;
      points += day.dataset.length;
      const result = normalizeIntradayColumns(day, userCtx, o.seenAt);
      for (const letter of result.deadLetters) deadLetters.write(letter);
      if (result.columns !== null) yield result.columns;
    }
  }

  const batches = mergeConcurrent(manifest.users, userBatches, {
    concurrency: o.concurrency ?? 4,
    // Files are read as fast as the sink takes them, so a queue would always be full: keep it
    // short, as a network-bound fetch keeps it (records waiting here only hold memory).
    bufferSize: 2,
    // A recording that cannot be read is not a user failing: the run fails, after the sink
    // has committed what came before (as a CLI run keeps what was fetched).
    onError: (_user, err) => {
      failure ??= err;
    },
  });
  const sink = createSink('intraday', {
    outDir: o.outDir,
    format: o.format,
    runId: o.runId,
    ...(o.compression ? { compression: o.compression } : {}),
    deadLetters,
    ...(o.highWaterRows ? { highWaterRows: o.highWaterRows } : {}),
    ...(o.maxOpenPartitions ? { maxOpenPartitions: o.maxOpenPartitions } : {}),
    ...(o.stats ? { stats: o.stats } : {}),
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
    ...(o.parquetEngine !== undefined ? { parquetEngine: o.parquetEngine } : {}),
  });
  const summary = await sink(batches);
  const deadLetterFile = await deadLetters.close();
  summary.deadLetters = deadLetters.count;
  if (failure !== null) {
    if (failure instanceof EtlError) throw failure;
    throw new EtlError('BAD_RESPONSE', `replay failed: ${errorMessage(failure)}`, {}, { cause: failure });
  }
  return { summary, users: manifest.users.length, responses, points, deadLetterFile };
}
