// `wearable-etl demo`: starts the bundled fixture API (real data, see fixtures/README.md) on
// loopback and runs the pipelines against it through the same code path a real run takes:
// the API base URLs and credentials arrive as the environment contract says.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureEnv, fixtureUsers, googleHealthEnv, googleHealthUsers, startFixtureApi } from '../fixtures/server.js';
import { buildTakeoutFixtures } from '../fixtures/takeout.js';
import type { Logger } from '../lib/log.js';
import type { CliIo } from './cli.js';
import type { RunConfig } from './config.js';
import { demoRuns, findPipeline, parseRunArgs } from './registry.js';
import type { ProgressBar } from './progress.js';
import type { ProgressEvent } from './context.js';
import { EXIT, failureLine, runPipelines, type RunSummary } from './run.js';
import { readManifest } from '../sinks/index.js';

export function demoHelp(): string {
  const runs = demoRuns();
  const width = Math.max(...runs.map((r) => r.pipeline.length)) + 2;
  return [
    'Usage: wearable-etl demo [--out DIR] [--format parquet|arrow]',
    '',
    "Starts the bundled fixture API on 127.0.0.1 (33 real Fitabase users' minute steps, real Fitbit",
    'and Human API sample responses) and runs every pipeline against it, writing DIR (default ./out):',
    ...runs.map((r) => `  ${r.pipeline.padEnd(width)}${r.help}`),
  ].join('\n');
}

export async function runDemo(options: {
  outDir: string;
  format: 'parquet' | 'arrow';
  io: CliIo & { bar?: ProgressBar };
  log: Logger;
  json: boolean;
  /** Where progress goes off a terminal (the heartbeat during rate-limit waits). */
  progress?: (e: ProgressEvent) => void;
}): Promise<number> {
  const { io, log } = options;
  const api = await startFixtureApi();
  const secretsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'wearable-etl-demo-'));
  const summaries: RunSummary[] = [];
  try {
    // Tokens live outside the output folder, and only for the demo's lifetime.
    const usersFile = path.join(secretsDir, 'users.json');
    // Google Health users are the same people: named as their Fitbit entries, so both sources'
    // rows share partitions (the derived DST users have no Fitbit twin and keep Google's id).
    const google = googleHealthUsers(api).map((entry, i) => {
      const twin = api.fitbit.users.get(api.googleHealth.userKeys()[i] ?? '');
      return twin ? { ...entry, humanId: twin.humanId } : entry;
    });
    // Takeout archives of five users (fixtures/takeout.ts), built next to it; relative paths in
    // entries are relative to the users file.
    const takeout = buildTakeoutFixtures(path.join(secretsDir, 'takeout')).archives.map((a) => ({
      ...a.entry,
      archive: Array.isArray(a.entry.archive) ? a.entry.archive.map((p) => `takeout/${String(p)}`) : `takeout/${String(a.entry.archive)}`,
    }));
    await fs.writeFile(usersFile, JSON.stringify([...fixtureUsers(api), ...google, ...takeout], null, 2), { mode: 0o600 });
    const env = { ...fixtureEnv(api), ...googleHealthEnv(api) };
    log.info('fixture API started', { url: api.url });
    for (const run of demoRuns()) {
      if (io.stop?.aborted) break;
      const config = parseRunArgs(
        // --users only for the pipelines that read it (an option a pipeline does not read is a usage error).
        [run.pipeline, '--out', options.outDir, '--format', options.format, ...(findPipeline(run.pipeline)?.flags.includes('users') ? ['--users', usersFile] : []), ...run.args],
        env,
        io.cwd,
      ) as RunConfig;
      const bar = io.bar;
      const progress = bar ? (e: ProgressEvent) => bar.update(e) : options.progress;
      const summary = await runPipelines(config, { log, ...(progress ? { progress } : {}), ...(io.stop ? { stop: io.stop } : {}) });
      bar?.stop();
      summaries.push(summary);
      const line = failureLine(summary);
      if (line) io.stderr(line + '\n');
    }
  } finally {
    await api.close();
    await fs.rm(secretsDir, { recursive: true, force: true });
  }
  await printDemoReport(summaries, options);
  const stopped = summaries.find((s) => s.stoppedBy);
  if (stopped) return stopped.exitCode;
  return summaries.reduce((code, s) => (s.exitCode !== EXIT.OK && code === EXIT.OK ? s.exitCode : code), EXIT.OK as number);
}

async function printDemoReport(summaries: RunSummary[], options: { outDir: string; format: string; io: CliIo; json: boolean }): Promise<void> {
  const ext = options.format === 'arrow' ? 'arrow' : 'parquet';
  // What the output holds, from each dataset's manifest: several pipelines write the same
  // partitions (the legacy Fitbit run, Google Health and Takeout bring the same minutes, merged
  // by id), so adding up their runs' figures counted those files and rows twice or more.
  const datasets = new Map<string, { rows: number; files: number }>();
  for (const name of new Set(summaries.flatMap((s) => s.datasets.map((d) => d.dataset)))) {
    const manifest = await readManifest(options.outDir, name);
    if (manifest === null) continue;
    let rows = 0;
    for (const f of manifest.files) rows += f.rows;
    datasets.set(name, { rows, files: manifest.files.length });
  }
  const rel = path.relative(options.io.cwd, options.outDir) || '.';
  // The first query, runnable with what `npm ci` installed (no duckdb command needed).
  const firstQuery = `node scripts/first-query.mjs ${rel}`;
  const sql = firstQuerySql(rel);
  if (options.json) {
    options.io.stdout(
      JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'demo finished', outDir: options.outDir, datasets: Object.fromEntries(datasets), query: sql, firstQuery }) + '\n',
    );
    return;
  }
  const lines = ['', `demo output in ${options.outDir}`];
  for (const [name, t] of datasets) {
    lines.push(`  ${name.padEnd(16)} ${String(t.rows).padStart(9)} rows in ${String(t.files).padStart(5)} file(s)   ${path.join(rel, name, 'date=*', 'user=*', `data.${ext}`)}`);
  }
  if (ext === 'parquet') {
    lines.push('', 'Daily steps per user, with the DuckDB that npm ci installed:', `  ${firstQuery}`, '', 'The same query in any DuckDB:', `  ${sql}`);
  }
  options.io.stdout(lines.join('\n') + '\n');
}

/** The demo's first query (scripts/first-query.mjs runs the same one). */
export function firstQuerySql(outRel: string): string {
  return `SELECT user, date, sum(value) AS steps FROM read_parquet('${outRel}/intraday/**/*.parquet', hive_partitioning=true) WHERE type='steps' GROUP BY ALL ORDER BY ALL LIMIT 10`;
}
