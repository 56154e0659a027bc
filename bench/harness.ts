// What the benchmarks share: compiling the code under test (cases run as compiled JavaScript,
// as the CLI does, so neither tsx's compile time nor its loader thread lands in a case's time
// or peak RSS), one child process per case, medians, CPU profiles, and the results file.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread } from 'node:worker_threads';
import { cliResourceLimits } from '../pipelines/cli-thread.js';
import { formatSummary, readProfiles, summariseProfile, type ProfileSummary } from './profile-summary.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/**
 * Compiled copies live inside the checkout, so that packages resolve as from the sources. Not
 * below node_modules: that folder can be a link shared by several checkouts (each would
 * overwrite the others' copies), and a case compares its own path with process.argv[1], which a
 * link makes differ.
 */
export const BUILD_DIR = join(ROOT, 'bench', '.build');

/** True when this module runs from the compiled copy (a case child), not from the sources. */
export const COMPILED = !import.meta.url.endsWith('.ts');

/**
 * Compiles the given entry files (and what they import) to BUILD_DIR with tsc, without type
 * checking (`npm run typecheck` does that). Worker entries are not imported, so list them.
 * Returns the compiled path of each entry.
 */
export function compile(entries: readonly string[]): string[] {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [
    tsc,
    '--noCheck',
    '--outDir', BUILD_DIR,
    '--rootDir', ROOT,
    '--module', 'NodeNext',
    '--moduleResolution', 'NodeNext',
    '--target', 'ES2022',
    '--lib', 'ES2023',
    '--types', 'node',
    '--skipLibCheck',
    '--esModuleInterop',
    '--resolveJsonModule',
    ...entries.map((e) => join(ROOT, e)),
  ];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`compiling ${entries.join(', ')} failed:\n${r.stdout}${r.stderr}`);
  // The fixture's data files, where the compiled fixtures look for them (next to themselves).
  const data = join(BUILD_DIR, 'fixtures', 'data');
  if (existsSync(join(BUILD_DIR, 'fixtures')) && !existsSync(data)) symlinkSync(join(ROOT, 'fixtures', 'data'), data, 'dir');
  return entries.map((e) => join(BUILD_DIR, e.replace(/\.ts$/, '.js')));
}

export interface ChildRun<R> {
  result: R;
  /** 1-minute load average when the child started and ended. */
  load: [number, number];
}

/**
 * Runs `node [nodeArgs] script args` and returns the JSON after its `RESULT ` line. Each case
 * runs in a process of its own so that its peak RSS is its own.
 */
export async function runChild<R>(script: string, args: readonly string[], nodeArgs: readonly string[] = []): Promise<ChildRun<R>> {
  const before = loadavg()[0]!;
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (code !== 0 || !line) throw new Error(`${script} ${args.join(' ')} failed (exit ${code}):\n${stderr.slice(-4000)}`);
  return { result: JSON.parse(line.slice('RESULT '.length)) as R, load: [round(before, 2), round(loadavg()[0]!, 2)] };
}

/** What a case child prints as its last line. */
/** What every benchmark case reports about itself (each adds its own RSS reading). */
export interface CaseFigures {
  case: string;
  rows: number;
  seconds: number;
  cpuSeconds: number;
  rowsPerSecond: number;
  /** Peak resident set of the whole process. */
  peakRssMB: number;
  outputBytes: number;
  files: number;
}

export function printResult(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function mb(bytes: number): number {
  return round(bytes / 1e6, 1);
}

/**
 * Peak resident set of this process so far, in MB (1e6 bytes). On Linux from VmHWM, not from
 * getrusage's maxRSS: a child's maxRSS starts at its parent's RSS when it was forked (Linux
 * keeps it across exec), so a case spawned by a 270 MB orchestrator reported at least 270 MB
 * (measured: a node child of a 343 MB parent says maxRSS 290 MB, VmHWM 40 MB).
 */
export function peakRssMB(): number {
  try {
    const hwm = /^VmHWM:\s*(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return round((Number(hwm[1]) * 1024) / 1e6, 1);
  } catch {
    // not Linux: getrusage below
  }
  return round((process.resourceUsage().maxRSS * 1024) / 1e6, 1);
}

/** Bytes and count of the data files (.parquet, .arrow) below `dir`. */
export async function dataFilesSize(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile() || !/\.(parquet|arrow)$/.test(e.name)) continue;
    bytes += (await stat(join(e.parentPath, e.name))).size;
    files++;
  }
  return { bytes, files };
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; cpuSeconds: number }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const value = await fn();
  const used = process.cpuUsage(cpu);
  return { value, seconds: (performance.now() - start) / 1000, cpuSeconds: (used.user + used.system) / 1e6 };
}

/**
 * Runs a child under `node --cpu-prof` and summarises every thread's profile (main thread and
 * workers each write one), so that a missed target comes with where the time went.
 */
export async function profileChild(script: string, args: readonly string[], label: string): Promise<{ label: string; threads: ProfileSummary[] }> {
  const dir = join(BUILD_DIR, 'profiles', label);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await runChild(script, args, ['--cpu-prof', '--cpu-prof-dir', dir]);
  // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: main thread (id 0) first, then workers.
  const threadId = (f: string): number => Number(/\.(\d+)\.\d+\.cpuprofile$/.exec(f)?.[1] ?? 0);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort((a, b) => threadId(a) - threadId(b));
  // The main thread of a case run on the CLI thread (asOnCliThread) only waits: left out.
  const busy = (s: ProfileSummary): number => s.totalMs - (s.top.find((f) => f.name === '(idle)')?.ms ?? 0);
  const threads = files.map((f) => summariseProfile(readProfiles(join(dir, f)), 15)).filter((s) => busy(s) > 500);
  return { label, threads };
}

export function printProfile(p: { label: string; threads: ProfileSummary[] }): void {
  p.threads.forEach((t, i) => {
    console.log(`\nCPU profile, ${p.label}, thread ${i}:`);
    console.log(formatSummary(t));
  });
}

/**
 * Runs this case script again on a worker thread with the CLI thread's resource limits, as the
 * `wearable-etl` command runs its pipelines (pipelines/bin.ts). On the main thread: waits for
 * the case and returns true (the caller is done); on that worker: returns false (go on).
 */
export async function asOnCliThread(): Promise<boolean> {
  if (!isMainThread) return false;
  const worker = new Worker(pathToFileURL(process.argv[1]!), { argv: process.argv.slice(2), resourceLimits: cliResourceLimits() });
  const code = await new Promise<number>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', resolve);
  });
  process.exitCode = code;
  return true;
}

export function machine(): { node: string; cpus: string } {
  return { node: process.version, cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}` };
}

/**
 * Writes a benchmark's report to bench/results/<name>.json, which the README's tables come
 * from. A partial run (fewer runs or cases than the full benchmark: `partial` true) goes to
 * bench/results/partial/<name>.json instead (not tracked), so a quick look never replaces the
 * figures of a full run.
 */
export async function writeResults(name: string, report: unknown, partial = false): Promise<string> {
  const dir = join(ROOT, 'bench', 'results', ...(partial ? ['partial'] : []));
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  await writeFile(path, JSON.stringify(report, null, 2) + '\n');
  return path;
}

/** `--name value` from argv, or the fallback. */
export function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
}

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}
