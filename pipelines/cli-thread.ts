// Runs the CLI on a worker thread (bin.ts; benchmarks run their cases the same way).
import { isMainThread, workerData } from 'node:worker_threads';
import { startModuleWorker } from '../lib/worker.js';

/** Old generation of the CLI thread, MB (WEARABLE_ETL_HEAP_MB overrides it). */
export const DEFAULT_HEAP_MB = 384;

/**
 * The CLI thread's heap. Young generation: 4 MB semi-spaces (V8's young generation is three
 * semi-spaces: two, and one for large objects) instead of 16. Old generation: capped at
 * DEFAULT_HEAP_MB, which also makes V8 grow it by smaller steps (up to 4x the live heap on a
 * large cap); the live heap of a run stays near 20-50 MB (rows are buffered packed, bounded by
 * the sink's high-water mark). bench/intraday-e2e peak RSS: ~300-380 MB with V8's defaults,
 * ~225-250 MB with the young cap, ~175-195 MB with both, at 1x and 4x the input alike.
 */
export function cliResourceLimits(env: NodeJS.ProcessEnv = process.env): { maxYoungGenerationSizeMb: number; maxOldGenerationSizeMb: number } {
  const asked = env['WEARABLE_ETL_HEAP_MB'];
  const heap = asked !== undefined && /^\d+$/.test(asked) && Number(asked) >= 16 ? Number(asked) : DEFAULT_HEAP_MB;
  return { maxYoungGenerationSizeMb: 12, maxOldGenerationSizeMb: heap };
}

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
  const resourceLimits = cliResourceLimits();
  const worker = startModuleWorker(new URL('./cli.js', import.meta.url), import.meta.url, { workerData, resourceLimits });
  worker.on('error', (err: Error & { code?: string }) => {
    const why =
      err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? `out of memory: the run's heap is capped at ${resourceLimits.maxOldGenerationSizeMb} MB; set WEARABLE_ETL_HEAP_MB to allow more (what was committed before is kept; rerun to go on)`
        : err.message;
    process.stderr.write(`wearable-etl: failed — ${why}\n`);
    process.exitCode = 1;
  });
  worker.on('exit', (code) => {
    process.exitCode ??= code;
  });
}
