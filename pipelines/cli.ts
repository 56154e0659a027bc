#!/usr/bin/env node
// The `wearable-etl` command (CONTRACTS.md "Command line").
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { EtlError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import type { RunConfig } from './config.js';
import { runDemo, demoHelp } from './demo.js';
import { parseRunArgs, planRun, PIPELINES, runHelp } from './registry.js';
import { cliThreadData, processTerminal, type CliTerminal } from './cli-thread.js';
import { createProgressBar, type ProgressBar } from './progress.js';
import { reportCommand, reportLine, writeReport } from './report.js';
import { EXIT, failureLine, runPipelines, type RunSummary } from './run.js';

export const MAIN_HELP = `wearable-etl — wearable activity data from paginated APIs and export archives to partitioned Parquet/Arrow files

Usage:
  wearable-etl demo [--out DIR]          bundled real fixtures served by a local API, all pipelines, output ./out
  wearable-etl run <pipeline> [options]  ${PIPELINES.map((p) => p.name).join(', ')}, or all
  wearable-etl report [--out DIR]        coverage, reconciliation and run health: DIR/_report/index.html
  wearable-etl <command> --help          options of a command

Exit codes: 0 all done; 1 failed; 2 usage error; 3 partial (some users failed; they are named).`;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  log?: Logger;
  /** The terminal, when stdout/stderr are not this thread's own (the CLI thread); default: process. */
  terminal?: CliTerminal;
}

const defaultIo = (): CliIo => ({
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  cwd: process.cwd(),
});

export function printSummary(summary: RunSummary, io: CliIo, json: boolean): void {
  if (json) {
    io.stdout(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'run summary', ...summary }) + '\n');
    return;
  }
  const lines = [`run ${summary.runId} finished in ${(summary.durationMs / 1000).toFixed(1)} s`];
  for (const d of summary.datasets) {
    lines.push(`  ${d.dataset.padEnd(16)} ${String(d.rowsIn).padStart(9)} rows in, ${String(d.rows).padStart(9)} rows in ${d.files} file(s)${d.deadLetters ? `, ${d.deadLetters} dead letter(s)` : ''}`);
  }
  const h = summary.http;
  lines.push(`  http: ${h.requests} requests, ${h.retries} retries, ${h.rateLimited} rate-limited, ${h.tokenRefreshes} token refreshes`);
  lines.push(`  summary: ${path.join(summary.outDir, '_runs', summary.runId + '.json')}`);
  io.stdout(lines.join('\n') + '\n');
}

export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const terminal = io.terminal ?? processTerminal();
  const json = !terminal.stdoutIsTTY;
  // On a terminal the progress bar shares the screen: log lines go above it.
  const bar = json ? null : createProgressBar({ isTTY: terminal.stderrIsTTY, columns: terminal.columns, write: (text) => process.stderr.write(text) });
  const log =
    io.log ??
    createLogger({ json, write: (line) => (bar ? bar.print(() => io.stdout(line + '\n')) : io.stdout(line + '\n')) });
  const ioWithBar: CliIo & { bar?: ProgressBar } = bar ? { ...io, bar } : io;
  const [command, ...rest] = argv;
  try {
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
        io.stdout((await planRun(config)) + '\n');
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
      return await runDemo({ outDir: path.resolve(io.cwd, parsed.values.out ?? 'out'), format, io: ioWithBar, log, json });
    }
    if (command === 'report') return await reportCommand(rest, io, json);
    throw new EtlError('USAGE', `unknown command "${command}"; try wearable-etl --help`);
  } catch (err) {
    if (err instanceof EtlError && (err.code === 'USAGE' || err.code === 'CONFIG' || err.code === 'STATE')) {
      io.stderr(`wearable-etl: ${err.message}\n`);
      return EXIT.USAGE;
    }
    const message = err instanceof Error ? err.message : String(err);
    io.stderr(`wearable-etl: failed — ${message.replace(/\s+/g, ' ')}\n`);
    if (io.env.WEARABLE_ETL_DEBUG && err instanceof Error && err.stack) io.stderr(err.stack + '\n');
    return EXIT.FAILED;
  }
}

export async function execute(config: RunConfig, io: CliIo & { bar?: ProgressBar }, log: Logger, json: boolean): Promise<number> {
  const bar = io.bar;
  const summary = await runPipelines(config, { log, ...(bar ? { progress: (e) => bar.update(e) } : {}) });
  bar?.stop();
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
function runAsProgram(argv: string[], io: CliIo): void {
  main(argv, io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`wearable-etl: failed — ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = EXIT.FAILED;
    },
  );
}

const onCliThread = cliThreadData();
if (onCliThread !== null) runAsProgram(onCliThread.argv, { ...defaultIo(), terminal: onCliThread.terminal });
else if (invokedDirectly()) runAsProgram(process.argv.slice(2), defaultIo());
