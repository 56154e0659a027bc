// Summarises V8 CPU profiles (`node --cpu-prof`): self time per function, top first, and the
// same grouped by stage (the file a function lives in). Used by the benchmarks to say where
// the time goes when a target is missed.
//
//   npx tsx bench/profile-summary.ts <file.cpuprofile | folder> [--top 25]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Idle + program + GC as V8 names them. */
  top: SelfTime[];
  /** Self time per source file (node internals and dependencies grouped by package). */
  byFile: SelfTime[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILT = 'bench/.build/';

/** A short place name: project-relative path, `pkg:<name>` for dependencies, `node:` internals. */
function placeOf(url: string): string {
  if (url === '') return '(native)';
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  // The benchmarks' compiled copy of the sources (bench/harness.ts) stands for the sources.
  const built = path.indexOf(BUILT);
  if (built >= 0) return path.slice(built + BUILT.length).replace(/\.js$/, '.ts');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 'node_modules/'.length).split('/');
    return `pkg:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (path.startsWith(ROOT)) path = path.slice(ROOT.length);
  return path;
}

export function summariseProfile(profiles: CpuProfile[], top = 25): ProfileSummary {
  const byFunction = new Map<string, SelfTime>();
  const byFile = new Map<string, SelfTime>();
  let totalMs = 0;
  for (const profile of profiles) {
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < profile.samples.length; i++) {
      const node = nodes.get(profile.samples[i]!);
      const ms = (profile.timeDeltas[i] ?? 0) / 1000;
      if (!node) continue;
      totalMs += ms;
      const where = placeOf(node.callFrame.url);
      const name = node.callFrame.functionName || '(anonymous)';
      const key = `${name}@${where}:${node.callFrame.lineNumber + 1}`;
      const f = byFunction.get(key) ?? { name, where: `${where}:${node.callFrame.lineNumber + 1}`, ms: 0, share: 0 };
      f.ms += ms;
      byFunction.set(key, f);
      const g = byFile.get(where) ?? { name: where, where, ms: 0, share: 0 };
      g.ms += ms;
      byFile.set(where, g);
    }
  }
  const finish = (m: Map<string, SelfTime>): SelfTime[] =>
    [...m.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((s) => ({ ...s, ms: Math.round(s.ms), share: Math.round((s.ms / totalMs) * 1000) / 10 }));
  return { totalMs: Math.round(totalMs), top: finish(byFunction), byFile: finish(byFile) };
}

/** Reads one .cpuprofile file, or every one in a folder (main thread and workers together). */
export function readProfiles(path: string): CpuProfile[] {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(path, f))
    : [path];
  return files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as CpuProfile);
}

export function formatSummary(s: ProfileSummary): string {
  const line = (x: SelfTime): string => `${String(x.ms).padStart(7)} ms ${x.share.toFixed(1).padStart(5)}%  ${x.name}${x.where !== x.name ? `  (${x.where})` : ''}`;
  return [`self time, ${s.totalMs} ms sampled`, ...s.top.map(line), '', 'by file', ...s.byFile.map(line)].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write('usage: npx tsx bench/profile-summary.ts <file.cpuprofile | folder> [--top N]\n');
    process.exit(2);
  }
  const at = process.argv.indexOf('--top');
  const top = at >= 0 ? Number(process.argv[at + 1]) : 25;
  process.stdout.write(formatSummary(summariseProfile(readProfiles(path), top)) + '\n');
}
