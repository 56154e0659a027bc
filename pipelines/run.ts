// Runs the configured pipelines one after another (two pipelines may write the same
// dataset, e.g. `activities`), then writes the run summary and picks the exit code.
import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { EtlError } from '../lib/errors.js';
import { acquireLock } from '../lib/lock.js';
import { HttpStats } from '../lib/http.js';
import { printable, type Logger } from '../lib/log.js';
import type { Dataset } from '../lib/schema.js';
import type { DatasetSummary } from '../lib/sink.js';
import { prepareOutput, readManifest } from '../sinks/index.js';
import { runTmpDir, TMP_DIR } from '../sinks/files.js';
import { isBucketOut, openOutput, outputPath } from '../sinks/output.js';
import type { PipelineName, RunConfig } from './config.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { defaultStatePath, loadState } from './state.js';
import { fileStateStore, pgStateStore, type StateStore } from './state/store.js';
import { SharedState, workerName } from './state/shared.js';
import { tokenCipherFromEnv } from './state/cipher.js';
import type { LeaseOptions } from './state/leases.js';
import { describeError } from './user-streams.js';
import { findPipeline, planRun } from './registry.js';
import { PgState } from './state/pg.js';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, PARTIAL: 3 } as const;

/** Exit codes after a graceful stop: 128 + the signal's number, as shells report it. */
export const STOP_EXIT: Readonly<Record<StopSignal, number>> = { SIGINT: 130, SIGTERM: 143 };
export type StopSignal = 'SIGINT' | 'SIGTERM';

/**
 * What a run record (`_runs/<runId>.json`) says. Written as `running` before the first
 * request and replaced at the end; a record still `running` with no run holding the lock was
 * killed, and the next run marks it `interrupted` and lists its committed files as its own.
 */
export type RunStatus = 'running' | 'complete' | 'partial' | 'failed' | 'stopped' | 'interrupted';

export interface RunSummary {
  runId: string;
  status: RunStatus;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  outDir: string;
  format: string;
  pipelines: Array<{ pipeline: PipelineName; error?: string; failedUsers: PipelineResult['failedUsers']; deadLetterFiles: string[]; checks?: PipelineResult['checks'] }>;
  datasets: DatasetSummary[];
  /**
   * Per dataset, the files (relative to the dataset folder) committed by this run, and by the
   * killed runs it took over (`adopted`): a batch loader loads these (README "Loading in batches").
   */
  files: Record<string, string[]>;
  /** Killed runs whose committed files this run lists. */
  adopted: string[];
  /** Set when a signal stopped the run. */
  stoppedBy?: StopSignal;
  http: { requests: number; retries: number; rateLimited: number; tokenRefreshes: number; bytes: number; rateLimitWaitMs: number };
  exitCode: number;
}

export const RUNS_DIR = '_runs';

export function newRunId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z') + '-' + randomBytes(3).toString('hex');
}

// Filesystems where a folder cannot hold output (Node's recursive mkdir never returns on procfs).
const PSEUDO_FS: Readonly<Record<number, string>> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x1cd1: 'devpts',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
};

/**
 * Checks, without creating anything, that the output root can be a folder we write in: its
 * nearest existing ancestor is a folder, writable, on a real filesystem. A usage error otherwise.
 */
export async function checkOutDir(outDir: string): Promise<void> {
  let dir = outDir;
  let stat: Awaited<ReturnType<typeof fs.stat>> | null = null;
  for (;;) {
    try {
      stat = await fs.stat(dir);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new EtlError('USAGE', `--out ${outDir} cannot be used: ${dir}: ${code ?? (err as Error).message}`);
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  if (stat === null) throw new EtlError('USAGE', `--out ${outDir} cannot be used: no folder on its path exists`);
  if (!stat.isDirectory()) throw new EtlError('USAGE', `--out ${outDir} cannot be used: ${dir} is a file, not a folder`);
  const fsType = PSEUDO_FS[(await fs.statfs(dir)).type];
  if (fsType !== undefined) throw new EtlError('USAGE', `--out ${outDir} cannot be used: ${dir} is on ${fsType}, not a filesystem for files; choose another folder`);
  try {
    await fs.access(dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch (err) {
    throw new EtlError('USAGE', `--out ${outDir} cannot be used: no permission to write in ${dir} (${(err as NodeJS.ErrnoException).code ?? 'denied'})`);
  }
}

/**
 * One run at a time per output root: a second one would race the first on the same partitions.
 * A bucket takes no lock: S3-compatible services without conditional writes (s3rver, older
 * MinIO) cannot make one safely, and several processes on one bucket are coordinated through
 * PostgreSQL (--state postgres://, README "Several workers"). Without it, two runs writing the
 * same bucket at once can lose each other's manifest entries or merges: do not start them.
 */
async function lockOutput(outDir: string): Promise<() => Promise<void>> {
  if (isBucketOut(outDir)) {
    // Fails early, before any request to an API, when the bucket cannot be reached or read.
    for await (const _ of openOutput(outDir).list(`${RUNS_DIR}/`)) break;
    return async () => undefined;
  }
  const lock = path.join(outDir, '_state', '.run.lock');
  await fs.mkdir(path.dirname(lock), { recursive: true });
  return acquireLock(lock, {
    waitMs: 0,
    busy: (pid) => new EtlError('USAGE', `another wearable-etl run${pid ? ` (pid ${pid})` : ''} is writing to ${outDir}; wait for it or use another --out`),
  });
}

function runRecordKey(runId: string): string {
  return `${RUNS_DIR}/${runId}.json`;
}

/** Where a run's record is: a file path, or s3://bucket/prefix/_runs/<runId>.json. */
export function runRecordPath(outDir: string, runId: string): string {
  return outputPath(outDir, runRecordKey(runId));
}

/**
 * Replaces a run's record whole (a folder: fsync'd before and after its rename), by the run
 * `writer` (its temporary folder; the record may be a killed run's it takes over).
 */
async function writeRunRecord(record: RunSummary, writer: string): Promise<void> {
  await openOutput(record.outDir, { runId: writer, durable: true }).put(runRecordKey(record.runId), Buffer.from(JSON.stringify(record, null, 2) + '\n'));
}

/** Run records in `<out>/_runs`, oldest first; unreadable ones are skipped. */
export async function readRunRecords(outDir: string): Promise<RunSummary[]> {
  const store = openOutput(outDir);
  const records: RunSummary[] = [];
  for await (const { key } of store.list(`${RUNS_DIR}/`)) {
    if (!key.endsWith('.json') || key.indexOf('/', RUNS_DIR.length + 1) >= 0) continue;
    try {
      const bytes = await store.get(key);
      if (bytes === null) continue;
      const r = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as RunSummary;
      if (typeof r.runId === 'string' && typeof r.status === 'string') records.push(r);
    } catch {
      // a record being replaced, or not ours: not a finished run
    }
  }
  return records;
}

/**
 * The files this run commits, per dataset, and the killed runs it takes over: runs whose
 * record still says `running` while this run holds the lock. Their files stay in the
 * manifests (committed at their checkpoints) and are listed by this run from now on. A bucket
 * has no lock (see lockOutput), so a `running` record there may be a run still going: none is
 * taken over.
 */
async function committedFiles(outDir: string, runId: string, datasets: readonly string[], shared: SharedState | null): Promise<{ files: Record<string, string[]>; adopted: RunSummary[] }> {
  let dead = isBucketOut(outDir) ? [] : (await readRunRecords(outDir)).filter((r) => r.status === 'running' && r.runId !== runId);
  if (shared) {
    // Other workers write here at the same time: only runs known to be over are taken over.
    const over = await shared.deadRuns(dead.map((r) => r.runId)).catch(() => new Set<string>());
    dead = dead.filter((r) => over.has(r.runId));
  }
  const owners = new Set([runId, ...dead.map((r) => r.runId)]);
  const files: Record<string, string[]> = {};
  for (const dataset of datasets) {
    const manifest = await readManifest(outDir, dataset as Dataset);
    const mine = (manifest?.files ?? []).filter((f) => owners.has(f.runId)).map((f) => f.path);
    if (mine.length > 0) files[dataset] = mine;
  }
  return { files, adopted: dead };
}

/**
 * With several workers on one output folder, each clears only what dead workers left in the
 * temporary folder (a live worker's files there are still being written).
 */
async function clearDeadWorkers(outDir: string, shared: SharedState): Promise<void> {
  const tmp = path.join(outDir, TMP_DIR);
  const names = await fs.readdir(tmp).catch(() => [] as string[]);
  for (const runId of await shared.deadRuns(names)) await fs.rm(path.join(tmp, runId), { recursive: true, force: true });
}

/**
 * --dry-run: every chosen pipeline's plan from the run's state, the state files or, with
 * `--state postgres://…`, the database's watermarks (its schema is brought up to date if
 * needed, as a run would; nothing else is written, no token is read).
 */
export async function planDryRun(config: RunConfig): Promise<string> {
  if (config.stateUrl === null) return planRun(config);
  const db = await PgState.open({ url: config.stateUrl, cipher: null });
  try {
    return await planRun(config, Date.now(), pgStateStore(db));
  } finally {
    await db.close().catch(() => undefined);
  }
}

export interface RunOptions {
  log: Logger;
  tuning?: RunContext['tuning'];
  progress?: RunContext['progress'];
  now?: () => number;
  /** Aborted with the signal's name (reason) to stop gracefully. */
  stop?: AbortSignal;
  /** The environment (WEARABLE_ETL_TOKEN_KEY, WEARABLE_ETL_LEASE_SECONDS); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where pipelines keep their state (default: the state files, --state FILE, or --state postgres://). */
  state?: StateStore;
}

/** WEARABLE_ETL_LEASE_SECONDS: how long a dead worker's users stay claimed (default 30, at most 60). */
export function leaseOptions(env: NodeJS.ProcessEnv): LeaseOptions {
  const text = env['WEARABLE_ETL_LEASE_SECONDS'];
  if (text === undefined || text === '') return {};
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 60) throw new EtlError('USAGE', `WEARABLE_ETL_LEASE_SECONDS must be a number of seconds from 1 to 60, not "${text}"`);
  const ttlMs = Math.round(seconds * 1000);
  return { ttlMs, pollMs: Math.min(5_000, Math.max(100, Math.floor(ttlMs / 3))) };
}

export async function runPipelines(config: RunConfig, options: RunOptions): Promise<RunSummary> {
  // Everything that can be a usage error is found before anything is printed or created.
  if (!isBucketOut(config.outDir)) await checkOutDir(config.outDir);
  const env = options.env ?? process.env;
  for (const pipeline of config.pipelines) {
    if (!findPipeline(pipeline)) throw new EtlError('USAGE', `unknown pipeline "${pipeline}"`);
    if (config.stateUrl === null) await loadState(config.stateFile ?? defaultStatePath(config.outDir, pipeline), pipeline);
  }
  const leases = config.stateUrl === null ? {} : leaseOptions(env);
  const started = (options.now ?? Date.now)();
  const runId = newRunId(new Date(started));
  const stats = new HttpStats();
  // With the state in PostgreSQL, several workers share the output: the users' leases, not a
  // lock on the folder, keep them apart (each user is worked on by one worker at a time).
  const shared = config.stateUrl === null ? null : await SharedState.open(config, { url: config.stateUrl, cipher: tokenCipherFromEnv(env), worker: workerName(runId), leases });
  const store: StateStore = shared ? pgStateStore(shared.db) : options.state ?? fileStateStore(config.outDir, config.stateFile);
  let unlock: () => Promise<void>;
  try {
    if (!isBucketOut(config.outDir)) await fs.mkdir(config.outDir, { recursive: true });
    unlock = shared ? async () => shared.close() : await lockOutput(config.outDir);
    await shared?.startRun(runId);
  } catch (err) {
    await shared?.close();
    throw err;
  }
  const results: PipelineResult[] = [];
  const record = (status: RunStatus, finished: number, exitCode: number): RunSummary => ({
    runId,
    status,
    startedAt: new Date(started).toISOString(),
    finishedAt: status === 'running' ? '' : new Date(finished).toISOString(),
    durationMs: finished - started,
    outDir: config.outDir,
    format: config.format,
    pipelines: results.map((r) => ({ pipeline: r.pipeline, ...(r.error ? { error: r.error } : {}), failedUsers: r.failedUsers, deadLetterFiles: r.deadLetterFiles, ...(r.checks ? { checks: r.checks } : {}) })),
    datasets: results.flatMap((r) => r.datasets),
    files: {},
    adopted: [],
    http: { requests: stats.requests, retries: stats.retries, rateLimited: stats.rateLimited, tokenRefreshes: stats.refreshes, bytes: stats.bytes, rateLimitWaitMs: Math.round(stats.rateLimitWaitMs) },
    exitCode,
  });
  let summary: RunSummary;
  try {
    if (isBucketOut(config.outDir)) {
      // A bucket has no temporary folder.
    } else if (shared) await clearDeadWorkers(config.outDir, shared);
    else await prepareOutput(config.outDir);
    await writeRunRecord(record('running', started, -1), runId);
    for (const s of config.skipped) options.log.info('pipeline skipped', { pipeline: s.pipeline, reason: s.reason });
    for (const pipeline of config.pipelines) {
      if (options.stop?.aborted) break;
      const def = findPipeline(pipeline) as PipelineDef;
      const ctx: RunContext = {
        config,
        runId,
        seenAt: started,
        log: options.log,
        stats,
        state: store,
        ...(shared ? { shared } : {}),
        ...(options.tuning ? { tuning: options.tuning } : {}),
        ...(options.progress ? { progress: options.progress } : {}),
        ...(options.stop ? { stop: options.stop } : {}),
      };
      options.log.info('pipeline started', { pipeline, runId });
      try {
        const result = await def.run(ctx);
        results.push(result);
        for (const d of result.datasets) {
          options.log.info('dataset committed', { pipeline, dataset: d.dataset, rows: d.rows, rowsIn: d.rowsIn, files: d.files, deadLetters: d.deadLetters });
        }
      } catch (err) {
        if (err instanceof EtlError && (err.code === 'USAGE' || err.code === 'CONFIG')) throw err;
        options.log.error('pipeline failed', { pipeline, reason: describeError(err) });
        results.push({ pipeline, datasets: [], users: 0, failedUsers: [], deadLetterFiles: [], error: describeError(err) });
      }
    }
    const stoppedBy = options.stop?.aborted ? stopSignalOf(options.stop) : undefined;
    const exitCode = stoppedBy ? STOP_EXIT[stoppedBy] : exitCodeOf(results);
    const status: RunStatus = stoppedBy ? 'stopped' : exitCode === EXIT.OK ? 'complete' : exitCode === EXIT.PARTIAL ? 'partial' : 'failed';
    summary = record(status, (options.now ?? Date.now)(), exitCode);
    if (stoppedBy) summary.stoppedBy = stoppedBy;
    const datasets = [...new Set(config.pipelines.flatMap((p) => findPipeline(p)?.datasets ?? []))];
    const { files, adopted } = await committedFiles(config.outDir, runId, datasets, shared);
    summary.files = files;
    summary.adopted = adopted.map((r) => r.runId);
    for (const dead of adopted) await writeRunRecord({ ...dead, status: 'interrupted', adoptedBy: runId } as RunSummary, runId);
    await writeRunRecord(summary, runId);
    await shared?.finishRun(runId, exitCode, summary).catch(() => undefined); // the record in the output is the run's summary
  } finally {
    // A stopped run leaves no temporary files; a killed one's are cleared by the next run.
    if (!isBucketOut(config.outDir)) {
      await fs.rm(runTmpDir(config.outDir, runId), { recursive: true, force: true }).catch(() => undefined);
      await fs.rmdir(path.join(config.outDir, TMP_DIR)).catch(() => undefined);
    }
    await unlock();
  }
  return summary;
}

function stopSignalOf(stop: AbortSignal): StopSignal {
  return stop.reason === 'SIGINT' ? 'SIGINT' : 'SIGTERM';
}

function exitCodeOf(results: PipelineResult[]): number {
  if (results.some((r) => r.error)) return EXIT.FAILED;
  if (results.some((r) => r.users > 0 && new Set(r.failedUsers.map((u) => u.user)).size >= r.users)) return EXIT.FAILED;
  return results.some((r) => r.failedUsers.length > 0) ? EXIT.PARTIAL : EXIT.OK;
}

/** `reason` without a leading "user <id>: " that names the user again. */
function withoutUserPrefix(reason: string, user: string): string {
  const prefix = `user ${user}: `;
  let r = reason;
  while (r.startsWith(prefix)) r = r.slice(prefix.length);
  return r;
}

/**
 * One line for stderr saying why the run did not fully succeed, or what a stop kept; null
 * when it did. The first word agrees with the exit code: `failed:` (1), `partial:` (3),
 * `stopped:` (130/143). Each failed user is named once, with the reason per pipeline; ids and
 * reasons have their control characters escaped.
 */
export function failureLine(summary: RunSummary): string | null {
  const errors = summary.pipelines.filter((p) => p.error).map((p) => `${p.pipeline}: ${p.error}`);
  const byUser = new Map<string, string[]>();
  for (const p of summary.pipelines) {
    for (const u of p.failedUsers) {
      const reasons = byUser.get(u.user) ?? [];
      const reason = `${p.pipeline}: ${withoutUserPrefix(u.reason, u.user)}`;
      if (!reasons.includes(reason)) reasons.push(reason);
      byUser.set(u.user, reasons);
    }
  }
  const users = [...byUser].map(([user, reasons]) => `user ${user} (${reasons.join('; ')})`);
  let head: string;
  let details: string[];
  if (summary.stoppedBy) {
    const rows = summary.datasets.reduce((n, d) => n + d.rowsIn, 0);
    const files = Object.values(summary.files).reduce((n, f) => n + f.length, 0);
    head = `stopped by ${summary.stoppedBy}: kept ${rows} row(s) in ${files} committed file(s) and every user's state (run record ${runRecordPath(summary.outDir, summary.runId)}); run the same command again to resume where it stopped`;
    details = [...errors, ...users];
  } else if (errors.length === 0 && users.length === 0) {
    return null;
  } else if (summary.exitCode === EXIT.PARTIAL) {
    head = `partial: ${byUser.size} user(s) failed, the others are done`;
    details = users;
  } else if (errors.length > 0) {
    head = `failed: ${errors.join('; ')}`;
    details = users;
  } else {
    head = `failed: every user failed`;
    details = users;
  }
  const line = details.length > 0 ? `wearable-etl: ${head} — ${details.join(', ')}` : `wearable-etl: ${head}`;
  return printable(line.replace(/[ \t]+/g, ' '));
}
