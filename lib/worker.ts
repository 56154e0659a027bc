// Starting a worker thread on one of this project's modules, from the compiled files (dist/) or
// from the TypeScript sources (tests and benchmarks run under tsx).
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Young generation of this project's worker threads (the CLI thread, the writer thread): 4 MB
 * semi-spaces (V8's young generation is three semi-spaces: two, and one for large objects)
 * instead of the 16 MB V8 grows a busy isolate to. Measured in bench/intraday-e2e: peak RSS
 * ~300-380 MB with V8's default, ~225-250 MB with this, at the same rows/s.
 */
export const YOUNG_GENERATION_MB = 12;

/**
 * A worker running `entry`, a URL of a module next to the caller given with its `.js` name
 * (`new URL('./write-worker.js', import.meta.url)`). When the caller itself runs from its
 * `.ts` source, the worker registers tsx's loader first (a worker does not inherit it) and
 * imports the `.ts` file instead.
 */
export function startModuleWorker(entry: URL, callerUrl: string, options: WorkerOptions = {}): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(entry, options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = entry.href.replace(/\.js$/, '.ts');
  return new Worker(`import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); })`, { ...options, eval: true });
}
