#!/usr/bin/env node
// The `wearable-etl` command (CONTRACTS.md "Command line").
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { EtlError } from '../lib/errors.js';
import { parentPort } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { createLogger, isLogLevel, LOG_LEVELS, printable, type Logger, type LogLevel } from '../lib/log.js';
import { ENV_HELP, type RunConfig } from './config.js';
import type { ProgressEvent } from './context.js';
import { runDemo, demoHelp } from './demo.js';
import { parseRunArgs, PIPELINES, runHelp } from './registry.js';
import { cliThreadData, processTerminal, quietAwsSdk, type CliTerminal } from './cli-thread.js';
import { createProgressBar, type ProgressBar } from './progress.js';
import { reportCommand, reportLine, writeReport } from './report.js';
import { checkOutDir, EXIT, failureLine, planDryRun, runPipelines, runRecordPath, STOP_EXIT, type RunSummary } from './run.js';
import { isBucketOut } from '../sinks/output.js';
import { parseOutTarget } from '../sinks/object-store/url.js';

export const MAIN_HELP = `wearable-etl — wearable activity data from paginated APIs and export archives to partitioned Parquet/Arrow files

Usage:
  wearable-etl demo [--out DIR] [--format parquet|arrow]   bundled real fixtures served by a local API, all pipelines
  wearable-etl run <pipeline> [options]  ${PIPELINES.map((p) => p.name).join(', ')}, or all
  wearable-etl report [--out DIR]        coverage, reconciliation and run health: DIR/_report/index.html
  wearable-etl <command> --help          options of a command (run --help: every option and environment variable)
  wearable-etl --version                 the version

Global options (before or after the command):
  --log-level debug|info|warn|error      least severe log line shown (default info); logs go to stderr

Output: results (the run summary, the demo's report, help) on stdout, logs on stderr; when a
stream is not a terminal every line on it is one JSON object.
Stop: Ctrl-C (SIGINT) or SIGTERM commits what is complete, saves the state and exits 130 / 143;
run the same command again to resume. A second signal stops at once (committed data stays whole).

Environment: ${ENV_HELP.map(([name]) => name).join(', ')} (wearable-etl run --help says what each does).

Exit codes: 0 all done; 1 failed; 2 usage error; 3 partial (some users failed; they are named); 130/143 stopped by SIGINT/SIGTERM.`;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  log?: Logger;
  /** The terminal, when stdout/stderr are not this thread's own (the CLI thread); default: process. */
  terminal?: CliTerminal;
  /** Aborted with 'SIGINT' or 'SIGTERM' as its reason: the run stops gracefully. */
  stop?: AbortSignal;
  /** How often a line is logged while a rate-limit wait goes on off a terminal (default 25 s). */
  heartbeatMs?: number;
}

const defaultIo = (): CliIo => ({
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  cwd: process.cwd(),
});

/** The package's version, from the package.json above this file (source or dist). */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'wearable-etl' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: look further up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

const plural = (n: number, one: string, many = one + 's'): string => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

/** The run summary: one JSON line off a terminal, one sentence on a terminal. */
export function printSummary(summary: RunSummary, io: CliIo, json: boolean): void {
  if (json) {
    io.stdout(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'run summary', ...summary }) + '\n');
    return;
  }
  const data = summary.datasets.map((d) => `${plural(d.rowsIn, `${d.dataset} row`)} into ${plural(d.files, 'file')}${d.deadLetters ? ` (${plural(d.deadLetters, 'dead letter')})` : ''}`);
  const h = summary.http;
  const extra = [h.retries ? plural(h.retries, 'retry', 'retries') : '', h.rateLimited ? `${h.rateLimited} rate-limited` : '', h.tokenRefreshes ? plural(h.tokenRefreshes, 'token refresh', 'token refreshes') : ''].filter(Boolean);
  const verb = summary.status === 'stopped' ? 'stopped after' : summary.status === 'complete' ? 'finished in' : `ended ${summary.status} after`;
  io.stdout(
    `run ${summary.runId} ${verb} ${(summary.durationMs / 1000).toFixed(1)} s: ${data.length > 0 ? data.join(', ') : 'no rows'} from ${plural(h.requests, 'request')}` +
      `${extra.length > 0 ? ` (${extra.join(', ')})` : ''}; details in ${isBucketOut(summary.outDir) ? runRecordPath(summary.outDir, summary.runId) : path.relative(io.cwd, runRecordPath(summary.outDir, summary.runId)) || '.'}.\n`,
  );
}

/** Takes the global options out of argv: --version and --log-level LEVEL (anywhere). */
function globalOptions(argv: string[]): { rest: string[]; version: boolean; level: LogLevel } {
  const rest: string[] = [];
  let version = false;
  let level: LogLevel = 'info';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--version' || a === '-V') {
      version = true;
    } else if (a === '--log-level' || a.startsWith('--log-level=')) {
      const value = a === '--log-level' ? argv[++i] : a.slice('--log-level='.length);
      if (value === undefined || !isLogLevel(value)) throw new EtlError('USAGE', `--log-level takes ${LOG_LEVELS.join(', ')}${value === undefined ? '' : `, not "${value}"`}`);
      level = value;
    } else {
      rest.push(a);
    }
  }
  return { rest, version, level };
}

/**
 * Off a terminal nothing else moves during a long rate-limit wait, so a line is logged when it
 * starts and every `everyMs` while one goes on: a scheduler watching the output sees the run alive.
 */
export function createHeartbeat(log: Logger, everyMs: number): { progress: (e: ProgressEvent) => void; stop: () => void } {
  const waits = new Map<string, number>(); // user → when the wait ends
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const tick = (): void => {
    const now = Date.now();
    for (const [user, end] of waits) if (end <= now) waits.delete(user);
    if (waits.size === 0) {
      if (timer) clearInterval(timer);
      timer = null;
      return;
    }
    const longest = Math.max(...waits.values()) - now;
    log.info('still waiting for rate limits', { users: waits.size, secondsLeft: Math.ceil(longest / 1000) });
  };
  return {
    progress(e) {
      if (e.kind !== 'waiting') return;
      const user = e.user ?? 'a user';
      waits.set(user, Date.now() + (e.waitMs ?? 0));
      log.info('waiting for the rate limit', { pipeline: e.pipeline, user, seconds: Math.ceil((e.waitMs ?? 0) / 1000) });
      if (stopped) return; // a wait reported after the run ended (a stopped user's request)
      // Unref'd: the heartbeat only reports on the run, it never keeps the process alive.
      timer ??= setInterval(tick, everyMs).unref();
    },
    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      waits.clear();
    },
  };
}

export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  quietAwsSdk(); // also when cli.js is run directly, without bin.ts's thread
  const terminal = io.terminal ?? processTerminal();
  const json = !terminal.stdoutIsTTY;
  let bar: ProgressBar | null = null;
  try {
    const { rest: args, version, level } = globalOptions(argv);
    if (version) {
      io.stdout(packageVersion() + '\n');
      return EXIT.OK;
    }
    // Logs go to stderr: JSON lines unless stderr is a terminal; on a terminal above the progress bar.
    bar = terminal.stderrIsTTY ? createProgressBar({ isTTY: true, columns: terminal.columns, write: (text) => io.stderr(text) }) : null;
    const barRef = bar;
    const log =
      io.log ?? createLogger({ json: !terminal.stderrIsTTY, level, write: (line) => (barRef ? barRef.print(() => io.stderr(line + '\n')) : io.stderr(line + '\n')) });
    const ioWithBar: CliIo & { bar?: ProgressBar } = bar ? { ...io, bar } : io;
    const [command, ...rest] = args;
    if (command === undefined) {
      io.stderr(MAIN_HELP + '\n');
      return EXIT.USAGE;
    }
    if (command === '--help' || command === '-h' || command === 'help') {
      io.stdout(MAIN_HELP + '\n');
      return EXIT.OK;
    }
    if (command === 'run') {
      const config = parseRunArgs(rest, io.env, io.cwd);
      if (config === null) {
        io.stdout(runHelp() + '\n');
        return EXIT.OK;
      }
      if (config.dryRun) {
        io.stdout((await planDryRun(config)) + '\n');
        return EXIT.OK;
      }
      return await execute(config, ioWithBar, log, json);
    }
    if (command === 'demo') {
      let parsed;
      try {
        parsed = parseArgs({ args: rest, options: { out: { type: 'string' }, format: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
      } catch (err) {
        throw new EtlError('USAGE', (err as Error).message.split('\n')[0]);
      }
      if (parsed.values.help) {
        io.stdout(demoHelp() + '\n');
        return EXIT.OK;
      }
      const format = parsed.values.format ?? 'parquet';
      if (format !== 'parquet' && format !== 'arrow') throw new EtlError('USAGE', `--format must be parquet or arrow, not "${format}"`);
      const target = parseOutTarget(parsed.values.out ?? 'out', io.cwd);
      if (target.kind !== 'folder') throw new EtlError('USAGE', `demo writes a local folder; --out ${parsed.values.out ?? ''} is not one (run the pipelines with --out s3://… instead)`);
      const outDir = target.dir;
      await checkOutDir(outDir);
      const heartbeat = bar ? null : createHeartbeat(log, io.heartbeatMs ?? HEARTBEAT_MS);
      try {
        return await runDemo({ outDir, format, io: ioWithBar, log, json, ...(heartbeat ? { progress: heartbeat.progress } : {}) });
      } finally {
        heartbeat?.stop();
      }
    }
    if (command === 'report') return await reportCommand(rest, io, json);
    throw new EtlError('USAGE', `unknown command "${command}"; try wearable-etl --help`);
  } catch (err) {
    bar?.stop();
    if (err instanceof EtlError && (err.code === 'USAGE' || err.code === 'CONFIG' || err.code === 'STATE')) {
      io.stderr(printable(`wearable-etl: ${err.message}`) + '\n');
      return EXIT.USAGE;
    }
    const message = err instanceof Error ? err.message : String(err);
    io.stderr(printable(`wearable-etl: failed — ${message.replace(/\s+/g, ' ')}`) + '\n');
    if (io.env.WEARABLE_ETL_DEBUG && err instanceof Error && err.stack) io.stderr(err.stack + '\n');
    return EXIT.FAILED;
  }
}

/** A rate-limit wait logs a line at least this often off a terminal. */
export const HEARTBEAT_MS = 25_000;

export async function execute(config: RunConfig, io: CliIo & { bar?: ProgressBar }, log: Logger, json: boolean): Promise<number> {
  const bar = io.bar;
  const heartbeat = bar ? null : createHeartbeat(log, io.heartbeatMs ?? HEARTBEAT_MS);
  let summary: RunSummary;
  try {
    summary = await runPipelines(config, {
      log,
      env: io.env,
      ...(bar ? { progress: (e) => bar.update(e) } : heartbeat ? { progress: heartbeat.progress } : {}),
      ...(io.stop ? { stop: io.stop } : {}),
    });
  } finally {
    heartbeat?.stop();
    bar?.stop();
  }
  printSummary(summary, io, json);
  const line = failureLine(summary);
  if (line) io.stderr(line + '\n');
  if (config.report) io.stdout(reportLine(await writeReport({ outDir: config.outDir }), json) + '\n');
  return summary.exitCode;
}

// Run when started by bin.ts on the CLI thread, or executed directly (`node dist/pipelines/cli.js`,
// on the main thread), not when imported by tests.
function invokedDirectly(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
/**
 * Signals reach the main thread only: on the CLI thread bin.ts forwards them as a message
 * (cli-thread.ts); run directly, this thread listens itself. The first SIGINT/SIGTERM stops
 * the run gracefully, a second one exits at once.
 */
function stopController(): AbortController {
  const controller = new AbortController();
  const port = parentPort;
  if (onCliThread !== null && port !== null) {
    port.on('message', (m: unknown) => {
      const signal = (m as { wearableEtlStop?: unknown } | null)?.wearableEtlStop;
      if ((signal === 'SIGINT' || signal === 'SIGTERM') && !controller.signal.aborted) controller.abort(signal);
    });
    port.unref();
  } else {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (controller.signal.aborted) process.exit(STOP_EXIT[signal]);
        controller.abort(signal);
      });
    }
  }
  return controller;
}

function runAsProgram(argv: string[], io: CliIo): void {
  const controller = stopController();
  // Until main settles, the exit code says the run did not end: a run whose work was left
  // waiting on something that can no longer happen (nothing left to keep the process alive)
  // must not exit 0 as if it had finished.
  let settled = false;
  process.exitCode = EXIT.FAILED;
  process.once('exit', () => {
    if (!settled) process.stderr.write('wearable-etl: failed — the run stopped making progress before it finished (a bug: please report it with the log); what was committed is kept\n');
  });
  main(argv, { ...io, stop: controller.signal }).then(
    (code) => {
      settled = true;
      process.exitCode = code;
      // A stopped run may leave a dropped request or a rate-limit sleep pending: do not wait for it.
      if (controller.signal.aborted) process.exit(code);
    },
    (err: unknown) => {
      settled = true;
      process.stderr.write(printable(`wearable-etl: failed — ${err instanceof Error ? err.message : String(err)}`) + '\n');
      process.exitCode = EXIT.FAILED;
    },
  );
}

const onCliThread = cliThreadData();
if (onCliThread !== null) runAsProgram(onCliThread.argv, { ...defaultIo(), terminal: onCliThread.terminal });
else if (invokedDirectly()) runAsProgram(process.argv.slice(2), defaultIo());
