// Every pipeline, declared once. The `run` help, the option checks, `run all`, the dry run and
// the demo are made from this list: a new source adds one entry here (README "Adding a source").
import { EtlError } from '../lib/errors.js';
import { ENV_HELP, parseRunOptions, PIPELINE_FLAGS, type PipelineFlag, type RunConfig } from './config.js';
import type { PipelineDef } from './context.js';
import { fitbitActivities } from './fitbit-activities.js';
import { fitbitIntraday } from './fitbit-intraday.js';
import { googleHealthActivities } from './google-health-activities.js';
import { googleHealthDaily } from './google-health-daily.js';
import { googleHealthIntraday } from './google-health-intraday.js';
import { humanApi } from './humanapi.js';
import { takeout } from './takeout.js';

export const PIPELINES: readonly PipelineDef[] = [fitbitIntraday, fitbitActivities, humanApi, googleHealthIntraday, googleHealthActivities, googleHealthDaily, takeout];

export function findPipeline(name: string): PipelineDef | undefined {
  return PIPELINES.find((p) => p.name === name);
}

/** The providers a users file may name. */
export function knownProviders(): string[] {
  return [...new Set(PIPELINES.map((p) => p.provider))];
}

const FLAG_HELP: Readonly<Record<PipelineFlag, string>> = {
  users: '--users FILE               users file: one JSON array for every provider (tokens rotated in place)',
  since: '--since YYYY-MM-DD         first local date to fetch, inclusive (default: from the state, else 7 days back)',
  until: "--until YYYY-MM-DD         last local date to fetch, inclusive (default: yesterday in each user's zone)",
  resources: '--resources a,b            intraday resources (each pipeline: its own names and default, below)',
  detail: '--detail 1min|5min|15min   Fitbit intraday detail (default 1min)',
  types: '--types a,b                Human API data types (default activities)',
  lookback: '--lookback DAYS            days before the saved state fetched again for late syncs (default 2)',
  concurrency: '--concurrency N            requests in flight at once (default 4; one at a time per user)',
};

export function runHelp(): string {
  const width = Math.max(...PIPELINES.map((p) => p.name.length)) + 2;
  return [
    'Usage: wearable-etl run <pipeline> [options]',
    '',
    'Pipelines:',
    ...PIPELINES.map((p) => `  ${p.name.padEnd(width)}${p.summary}`),
    `  ${'all'.padEnd(width)}every pipeline that has what it needs (the others are named and skipped)`,
    '',
    'Options:',
    '  --out DIR|s3://bucket/prefix   output root: a folder (default ./out) or S3-compatible storage',
    '  --format parquet|arrow     file format (default parquet)',
    '  --compression snappy|zstd|none   Parquet compression (default snappy)',
    ...PIPELINE_FLAGS.map((f) => `  ${FLAG_HELP[f]}; read by ${PIPELINES.filter((p) => p.flags.includes(f)).map((p) => p.name).join(', ')}`),
    '  --state FILE               state file (default <out>/_state/<pipeline>.json; required with --out s3://)',
    '  --dry-run                  print the plan and the estimated time at the rate limits; touch nothing',
    '  --reimport                 takeout: read archives already imported whole again (default: skip them)',
    '  --report                   at the end, write the run report: <out>/_report/index.html and summary.json',
    '  -h, --help                 this help',
    '',
    'Environment:',
    ...ENV_HELP.map(([name, meaning]) => `  ${name.padEnd(40)} ${meaning}`),
    '',
    'Exit codes: 0 all done; 1 failed; 2 usage error; 3 partial (some users failed; they are named).',
  ].join('\n');
}

/** The pipelines `all` would run and the ones it skips, with why. */
export function choosePipelines(name: string, config: RunConfig): { run: PipelineDef[]; skipped: Array<{ pipeline: string; reason: string }> } {
  const names = PIPELINES.map((p) => p.name).join(', ');
  if (name !== 'all') {
    const def = findPipeline(name);
    if (!def) throw new EtlError('USAGE', `unknown pipeline "${name}"; choose one of ${names} or all`);
    const problem = def.check(config);
    if (problem) throw new EtlError('USAGE', `${def.name}: ${problem}`);
    return { run: [def], skipped: [] };
  }
  const run: PipelineDef[] = [];
  const skipped: Array<{ pipeline: string; reason: string }> = [];
  for (const def of PIPELINES) {
    const problem = def.check(config);
    if (problem) skipped.push({ pipeline: def.name, reason: problem });
    else run.push(def);
  }
  if (run.length === 0) {
    throw new EtlError('USAGE', `nothing is configured for \`run all\`: ${skipped.map((s) => `${s.pipeline}: ${s.reason}`).join('; ')}`);
  }
  return { run, skipped };
}

/** Parses `run` arguments (after the word "run"). Returns null when help was asked for. */
export function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): RunConfig | null {
  const parsed = parseRunOptions(argv, env, cwd);
  if (parsed === null) return null;
  const { config, positionals } = parsed;
  if (positionals.length !== 1) {
    throw new EtlError('USAGE', `name one pipeline (${PIPELINES.map((p) => p.name).join(', ')} or all)${positionals.length ? `, not ${positionals.join(' ')}` : ''}`);
  }
  const unknownProvider = Object.keys(config.usersByProvider).find((p) => !knownProviders().includes(p));
  if (unknownProvider !== undefined) {
    throw new EtlError('CONFIG', `users file ${config.usersFile}: unknown provider "${unknownProvider}" (known: ${knownProviders().join(', ')})`);
  }
  const name = positionals[0] as string;
  const { run, skipped } = choosePipelines(name, config);
  // An option that the named pipeline does not read is a mistake, not something to ignore.
  for (const flag of name === 'all' ? [] : config.given) {
    if (!run.some((p) => p.flags.includes(flag))) {
      const readers = PIPELINES.filter((p) => p.flags.includes(flag)).map((p) => p.name);
      throw new EtlError('USAGE', `--${flag} is not read by ${run.map((p) => p.name).join(', ')} (it is read by ${readers.join(', ')})`);
    }
  }
  return { ...config, pipelines: run.map((p) => p.name), skipped };
}

/** --dry-run: every chosen pipeline's plan. Sends no request and writes nothing. */
export async function planRun(config: RunConfig, now = Date.now()): Promise<string> {
  const lines: string[] = [`dry run: nothing is fetched or written (output would go to ${config.outDir})`];
  for (const name of config.pipelines) {
    const def = findPipeline(name);
    if (def) lines.push(...(await def.plan(config, now)));
  }
  return lines.join('\n');
}

/** The pipelines the demo runs, in order, with the arguments that cover their fixture data. */
export function demoRuns(): Array<{ pipeline: string; args: readonly string[]; help: string }> {
  return PIPELINES.flatMap((p) => (p.demo ? [{ pipeline: p.name, args: p.demo.args, help: p.demo.help }] : []));
}
