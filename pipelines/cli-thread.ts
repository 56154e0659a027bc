// Runs the CLI on a worker thread (bin.ts; benchmarks run their cases the same way).
import { isMainThread, workerData } from 'node:worker_threads';
import { YOUNG_GENERATION_MB, startModuleWorker } from '../lib/worker.js';

/**
 * The CLI thread's heap. Young generation: YOUNG_GENERATION_MB (lib/worker.ts). Old generation: V8's default unless WEARABLE_ETL_HEAP_MB caps it. A cap also makes V8 grow the
 * old space by smaller steps (up to 4x the live heap without one): measured with 384 MB, peak
 * RSS ~170-205 MB at 1x and 4x the input alike, but 15-25 % fewer rows/s and 1.29x instead of
 * 1.20x the API-bound lower bound (many more full collections). The live heap of a run is
 * 20-50 MB (the whole demo, fixture API included, runs in 64 MB).
 */
export function cliResourceLimits(env: NodeJS.ProcessEnv = process.env): { maxYoungGenerationSizeMb: number; maxOldGenerationSizeMb?: number } {
  const asked = env['WEARABLE_ETL_HEAP_MB'];
  if (asked === undefined || !/^\d+$/.test(asked) || Number(asked) < 16) return { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB };
  return { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB, maxOldGenerationSizeMb: Number(asked) };
}

/**
 * The AWS SDK prints a multi-line notice on stderr about Node 20's end of support the first
 * time an S3 client is made (--out s3://); the run's stderr is for its own one-line messages.
 * Set before a thread starts, so the CLI thread and its writer threads inherit it.
 */
export function quietAwsSdk(env: NodeJS.ProcessEnv = process.env): void {
  env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
}

/** What the CLI thread needs to know about the terminal it writes to (it sees pipes). */
export interface CliTerminal {
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  columns: number;
}

/** This thread's own terminal (the CLI thread sees pipes: it is told the main thread's). */
export function processTerminal(): CliTerminal {
  return { stdoutIsTTY: process.stdout.isTTY === true, stderrIsTTY: process.stderr.isTTY === true, columns: process.stderr.columns ?? 0 };
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

/** Exit codes of a run stopped by a signal (pipelines/run.ts STOP_EXIT; not imported: this file stays light). */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/** How often the parent process is checked for (the command must not outlive an `npx` that was killed). */
const PARENT_CHECK_MS = 500;

/**
 * Starts cli.ts on a worker thread; the process exits with the CLI's exit code.
 *
 * Signals reach this thread only, so SIGINT/SIGTERM are passed to the CLI thread, which stops
 * gracefully (commits, saves the state, releases the lock, exits 130/143). A second signal
 * exits at once: what is committed stays whole, as after kill -9. When the parent process
 * goes away (an `npx` wrapper killed: this process is handed to init, its ppid changes), the
 * run stops as on SIGTERM rather than running on as an orphan.
 */
export function startCliThread(argv: string[]): void {
  quietAwsSdk();
  const workerData: CliThreadData = { wearableEtlCli: { argv, terminal: processTerminal() } };
  const resourceLimits = cliResourceLimits();
  const worker = startModuleWorker(new URL('./cli.js', import.meta.url), import.meta.url, { workerData, resourceLimits });
  let stopping: keyof typeof SIGNAL_EXIT | null = null;
  const stop = (signal: keyof typeof SIGNAL_EXIT): void => {
    if (stopping !== null) {
      process.stderr.write(`wearable-etl: ${signal} again — stopped at once; committed files are whole, the next run clears the rest\n`);
      process.exit(SIGNAL_EXIT[signal]);
    }
    stopping = signal;
    worker.postMessage({ wearableEtlStop: signal });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid !== parent && stopping === null) stop('SIGTERM');
  }, PARENT_CHECK_MS);
  watch.unref();
  worker.on('error', (err: Error & { code?: string }) => {
    const why =
      err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? `out of memory: the run's heap is capped at ${resourceLimits.maxOldGenerationSizeMb ?? 'the default'} MB; set WEARABLE_ETL_HEAP_MB to allow more (what was committed before is kept; rerun to go on)`
        : err.message;
    process.stderr.write(`wearable-etl: failed — ${why}\n`);
    process.exitCode = 1;
  });
  worker.on('exit', (code) => {
    clearInterval(watch);
    process.exitCode ??= code;
  });
}
