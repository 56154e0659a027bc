// `npm run bench`: every benchmark, one after another, each in a process of its own (each one
// also runs alone: `npx tsx bench/<name>.ts`). Then the latest figures from bench/results/
// go into the table of bench/README.md (between its `results` markers).
//
//   npm run bench                          all of them
//   npm run bench -- --only intraday-e2e,api-bound
//   npm run bench -- --table               only rewrite the README table from bench/results/
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT, flag, option } from './harness.js';

const BENCHMARKS = ['intraday-e2e', 'api-bound', 'sink-parquet', 'intraday-normalizer', 'json-parse'] as const;

function readResult(name: string): Record<string, unknown> | null {
  const path = join(ROOT, 'bench', 'results', `${name}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : null;
}

type Row = Record<string, unknown>;

function markdownTable(rows: readonly Row[], columns: readonly string[]): string {
  const cell = (v: unknown): string => (typeof v === 'number' ? v.toLocaleString('en-US') : v === true ? 'yes' : v === false ? '**no**' : String(v ?? ''));
  return [`| ${columns.join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${columns.map((c) => cell(r[c])).join(' | ')} |`)].join('\n');
}

/** The README section with the latest figures, from bench/results/*.json. */
export function resultsSection(): string {
  const parts: string[] = [];
  const e2e = readResult('intraday-e2e');
  if (e2e) {
    const load = e2e['loadAverage'] as { atStart: number; atEnd: number };
    const input = e2e['input'] as { points: number; files: number };
    parts.push(
      `**Intraday end to end** (${e2e['date']}, ${e2e['cpus']}, Node ${e2e['node']}, load average ${load.atStart} → ${load.atEnd}; ` +
        `${input.points.toLocaleString('en-US')} points in ${input.files} files; medians of ${e2e['runs']}; rows/s = points ÷ wall seconds of the job)\n`,
      markdownTable(e2e['results'] as Row[], ['case', 'rows/s', 'vs duckdb', 's wall', 's cpu', 'peak RSS MB', 'start RSS MB', 'output MB', 'files']),
    );
    const m4 = e2e['memory4x'] as { peakRssMB: number; rows: number; rowsPerSecond: number } | null;
    const same = e2e['sameRowsAsDuckdb'] as { partitions: number; mismatches: number } | null;
    if (same) parts.push(`\nSame rows as DuckDB's output: ${same.mismatches === 0 ? 'yes' : '**no**'} (${same.partitions} partitions compared, ${same.mismatches} differ).`);
    if (m4) parts.push(`Memory at 4× the input (${m4.rows.toLocaleString('en-US')} points, medians of ${e2e['runs']}): peak RSS ${m4.peakRssMB} MB (${m4.rowsPerSecond.toLocaleString('en-US')} rows/s).`);
    const extra = e2e['memoryHighWater'] as Row[] | undefined;
    if (extra && extra.length > 0) parts.push('\nPeak RSS with a lower highWaterRows for the sink (single runs):\n', markdownTable(extra, ['case', 'highWaterRows', 'input', 'rows/s', 'peak RSS MB']));
    parts.push('\nTargets:\n', markdownTable(e2e['targets'] as Row[], ['target', 'measured', 'met', 'missedBy']));
    const decision = e2e['writerDecision'] as Row[] | undefined;
    if (decision) {
      const lib = e2e['libraryRowsAsDuckdb'] as { partitions: number; mismatches: number } | null;
      parts.push(
        `\nParquet writer (issue 14), same run: our encoder against hyparquet-writer as the sink's encoder${lib ? ` (its output: ${lib.mismatches === 0 ? 'same rows as DuckDB' : '**rows differ from DuckDB**'})` : ''}; meets = ≥ 1.3× DuckDB and ≤ 256 MB at 1× and 4×:\n`,
        markdownTable(decision, ['engine', 'vs duckdb', 'peak RSS MB', 'peak RSS 4× MB', 'output MB', 'meets']),
      );
    }
  }
  const api = readResult('api-bound');
  if (api) {
    const load = api['loadAverage'] as { atStart: number; atEnd: number };
    parts.push(
      `\n**API-bound** (${api['date']}, load average ${load.atStart} → ${load.atEnd}; 200 users × 7 days × 2 resources, 20 ms per request; medians of the runs)\n`,
      markdownTable(api['results'] as Row[], ['concurrency', 'requests', 'rows', 'wall s', 'lower bound s', 'vs lower bound', 'CPU floor s', 'client CPU s', 'server CPU s', 'peak RSS MB', 'met', 'missedBy']),
    );
  }
  const sink = readResult('sink-parquet');
  if (sink) {
    parts.push(`\n**Sink alone** (sink-parquet, ${sink['date']}, load average ${sink['loadAverageAtStart']} → ${sink['loadAverageAtEnd']})\n`, markdownTable(sink['results'] as Row[], ['case', 'rows/s', 'vs duckdb', 'vs row-by-row', 'peak RSS MB', 'output MB']));
  }
  const norm = readResult('intraday-normalizer') as { points: number; normalizer: { pointsPerSecond: number }; naiveLuxon: { pointsPerSecond: number }; ratio: number } | null;
  if (norm) {
    parts.push(
      `\n**Normalizer alone** (intraday-normalizer): ${Math.round(norm.normalizer.pointsPerSecond).toLocaleString('en-US')} points/s over ${norm.points.toLocaleString('en-US')} points, ` +
        `${norm.ratio.toFixed(0)}× a luxon DateTime per point (${Math.round(norm.naiveLuxon.pointsPerSecond).toLocaleString('en-US')} points/s).`,
    );
  }
  const json = readResult('json-parse');
  if (json) parts.push(`\n**JSON parsing** (json-parse): JSON.parse of a whole body against stream-json, in the same run:\n`, markdownTable(json['results'] as Row[], ['case', 'bytes', 'jsonParseMs', 'streamJsonMs', 'streamJsonVsJsonParse']));
  return parts.join('\n');
}

const START = '<!-- results:start -->';
const END = '<!-- results:end -->';

export function updateReadme(): void {
  const path = join(ROOT, 'bench', 'README.md');
  const text = readFileSync(path, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${path} has no ${START} … ${END} section`);
  writeFileSync(path, `${text.slice(0, a + START.length)}\n${resultsSection()}\n${text.slice(b)}`);
}

function main(): void {
  if (!flag('table')) {
    const only = option('only', '');
    const names = only === '' ? [...BENCHMARKS] : only.split(',');
    for (const name of names) {
      if (!(BENCHMARKS as readonly string[]).includes(name)) throw new Error(`unknown benchmark ${name}; one of ${BENCHMARKS.join(', ')}`);
      console.log(`\n=== ${name} (load average ${loadavg()[0]!.toFixed(2)})`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', `${name}.ts`)], { cwd: ROOT, stdio: 'inherit' });
      if (r.status !== 0) {
        console.error(`${name} failed (exit ${r.status})`);
        process.exitCode = 1;
      }
    }
  }
  updateReadme();
  console.log('\nbench/README.md: table updated from bench/results/');
}

main();
