// Runs the CLI on a worker thread (bin.ts; benchmarks run their cases the same way).
import { isMainThread, workerData } from 'node:worker_threads';
import { startModuleWorker } from '../lib/worker.js';

/** 4 MB semi-spaces (V8's young generation is three semi-spaces: two, and one of large objects). */
export const CLI_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 12 };

/** What the CLI thread needs to know about the terminal it writes to (it sees pipes). */
export interface CliTerminal {
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  columns: number;
}

export interface CliThreadData {
  wearableEtlCli: { argv: string[]; terminal: CliTerminal };
}

/** The CLI's arguments and terminal when this thread was started by startCliThread, else null. */
export function cliThreadData(): CliThreadData['wearableEtlCli'] | null {
  if (isMainThread) return null;
  const data = workerData as Partial<CliThreadData> | null;
  return data?.wearableEtlCli ?? null;
}

/** Starts cli.ts on a worker thread; the process exits with the CLI's exit code. */
export function startCliThread(argv: string[]): void {
  const terminal: CliTerminal = {
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    columns: process.stderr.columns ?? 0,
  };
  const workerData: CliThreadData = { wearableEtlCli: { argv, terminal } };
  const worker = startModuleWorker(new URL('./cli.js', import.meta.url), import.meta.url, { workerData, resourceLimits: CLI_RESOURCE_LIMITS });
  worker.on('error', (err: Error) => {
    process.stderr.write(`wearable-etl: failed — ${err.message}\n`);
    process.exitCode = 1;
  });
  worker.on('exit', (code) => {
    process.exitCode ??= code;
  });
}
