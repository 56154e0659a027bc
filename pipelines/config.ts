// Command line and environment, parsed and validated once at start-up (CONTRACTS.md).
// Everything wrong here is a usage error (exit 2) reported before any request is sent.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EtlError } from '../lib/errors.js';
import { INTRADAY_TYPES, type IntradayType } from '../lib/schema.js';
import type { Compression, OutputFormat } from '../lib/sink.js';
import { INTRADAY_DETAILS, type IntradayDetail } from '../sources/fitbit/types.js';

export const PIPELINES = ['fitbit-activities', 'fitbit-intraday', 'humanapi', 'takeout'] as const;
export type PipelineName = (typeof PIPELINES)[number];

export interface RunConfig {
  pipelines: PipelineName[];
  outDir: string;
  format: OutputFormat;
  compression: Compression;
  since: string | null;
  /** Explicit --until; null means "yesterday in each user's zone". */
  until: string | null;
  usersFile: string | null;
  resources: IntradayType[];
  detail: IntradayDetail;
  types: string[];
  /** Explicit --state; null means <out>/_state/<pipeline>.json. */
  stateFile: string | null;
  lookbackDays: number;
  concurrency: number;
  dryRun: boolean;
  /** takeout: import archives the state marks as imported whole again. */
  reimport: boolean;
  env: ApiEnv;
}

export interface ApiEnv {
  fitbitApiUrl: string;
  fitbitClientId?: string;
  fitbitClientSecret?: string;
  humanApiUrl: string;
  humanApiClientId?: string;
  humanApiAppKey?: string;
}

export const RUN_HELP = `Usage: wearable-etl run <pipeline> [options]

Pipelines: ${PIPELINES.join(', ')}, or all (every configured one).

Options:
  --out DIR                  output root (default ./out)
  --format parquet|arrow     file format (default parquet)
  --compression snappy|zstd|none   Parquet compression (default snappy)
  --since YYYY-MM-DD         first local date to fetch, inclusive (default: from the state file,
                             else 7 days before --until)
  --until YYYY-MM-DD         last local date to fetch, inclusive (default: yesterday in each user's zone)
  --users FILE               Fitbit users file (JSON array; rotated tokens are written back to it)
  --resources a,b            intraday resources (default steps,calories,distance;
                             any of ${INTRADAY_TYPES.join(', ')})
  --detail 1min|5min|15min   intraday detail (default 1min)
  --types a,b                Human API data types (default activities)
  --state FILE               state file (default <out>/_state/<pipeline>.json)
  --lookback DAYS            days before the saved state re-fetched for late syncs (default 2)
  --concurrency N            Fitbit requests in flight at once (default 4; one at a time per user)
  --dry-run                  print the plan and the estimated time at the rate limits; touch nothing
  --reimport                 takeout: read archives already imported whole again (default: skip them)
  -h, --help                 this help

Environment:
  FITBIT_API_URL             Fitbit Web API base (default https://api.fitbit.com)
  FITBIT_CLIENT_ID, FITBIT_CLIENT_SECRET   for refreshing expired tokens
  HUMANAPI_API_URL           Human API base (default https://api.humanapi.co)
  HUMANAPI_CLIENT_ID, HUMANAPI_APP_KEY     Human API batch queries (App Key as basic-auth user)

Exit codes: 0 all done; 1 failed; 2 usage error; 3 partial (some users failed; they are named).`;

const DATE = /^\d{4}-\d{2}-\d{2}$/;

export function isValidDate(value: string): boolean {
  if (!DATE.test(value)) return false;
  const d = new Date(value + 'T00:00:00Z');
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === value;
}

function usage(message: string): EtlError {
  return new EtlError('USAGE', message);
}

function list(value: string | undefined, fallback: string[]): string[] {
  if (value === undefined) return fallback;
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw usage('an empty list was given; name at least one item');
  return [...new Set(items)];
}

function positiveInt(value: string | undefined, fallback: number, flag: string, min: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) throw usage(`${flag} takes a whole number ≥ ${min}, not "${value}"`);
  return Number(value);
}

function url(value: string | undefined, fallback: string, name: string): string {
  const v = value && value.length > 0 ? value : fallback;
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    return v.replace(/\/+$/, '');
  } catch {
    throw usage(`${name} must be an http(s) URL, not "${v}"`);
  }
}

export function readEnv(env: NodeJS.ProcessEnv): ApiEnv {
  const out: ApiEnv = {
    fitbitApiUrl: url(env.FITBIT_API_URL, 'https://api.fitbit.com', 'FITBIT_API_URL'),
    humanApiUrl: url(env.HUMANAPI_API_URL, 'https://api.humanapi.co', 'HUMANAPI_API_URL'),
  };
  if (env.FITBIT_CLIENT_ID) out.fitbitClientId = env.FITBIT_CLIENT_ID;
  if (env.FITBIT_CLIENT_SECRET) out.fitbitClientSecret = env.FITBIT_CLIENT_SECRET;
  if (env.HUMANAPI_CLIENT_ID) out.humanApiClientId = env.HUMANAPI_CLIENT_ID;
  if (env.HUMANAPI_APP_KEY) out.humanApiAppKey = env.HUMANAPI_APP_KEY;
  return out;
}

export const RUN_OPTIONS = {
  out: { type: 'string' },
  format: { type: 'string' },
  compression: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  users: { type: 'string' },
  resources: { type: 'string' },
  detail: { type: 'string' },
  types: { type: 'string' },
  state: { type: 'string' },
  lookback: { type: 'string' },
  concurrency: { type: 'string' },
  'dry-run': { type: 'boolean' },
  reimport: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses `run` arguments (after the word "run"). Returns null when help was asked for. */
export function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): RunConfig | null {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: RUN_OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw usage((err as Error).message.split('\n')[0]);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return null;
  if (positionals.length !== 1) throw usage(`name one pipeline (${PIPELINES.join(', ')} or all)${positionals.length ? `, not ${positionals.join(' ')}` : ''}`);
  const name = positionals[0];
  const pipelines: PipelineName[] =
    name === 'all' ? [...PIPELINES] : (PIPELINES as readonly string[]).includes(name) ? [name as PipelineName] : [];
  if (pipelines.length === 0) throw usage(`unknown pipeline "${name}"; choose one of ${PIPELINES.join(', ')} or all`);

  const format = v.format ?? 'parquet';
  if (format !== 'parquet' && format !== 'arrow') throw usage(`--format must be parquet or arrow, not "${format}"`);
  const compression = v.compression ?? 'snappy';
  if (compression !== 'snappy' && compression !== 'zstd' && compression !== 'none') throw usage(`--compression must be snappy, zstd or none, not "${compression}"`);
  for (const [flag, value] of [['--since', v.since], ['--until', v.until]] as const) {
    if (value !== undefined && !isValidDate(value)) throw usage(`${flag} must be a date YYYY-MM-DD, not "${value}"`);
  }
  if (v.since && v.until && v.since > v.until) throw usage(`--since ${v.since} is after --until ${v.until}`);
  const resources = list(v.resources, ['steps', 'calories', 'distance']);
  for (const r of resources) {
    if (!(INTRADAY_TYPES as readonly string[]).includes(r)) throw usage(`unknown intraday resource "${r}"; choose from ${INTRADAY_TYPES.join(', ')}`);
  }
  const detail = v.detail ?? '1min';
  if (!(INTRADAY_DETAILS as readonly string[]).includes(detail)) throw usage(`--detail must be one of ${INTRADAY_DETAILS.join(', ')}, not "${detail}"`);
  const types = list(v.types, ['activities']);

  const apiEnv = readEnv(env);
  const usesFitbit = pipelines.some((p) => p.startsWith('fitbit-'));
  const usesHuman = pipelines.includes('humanapi');
  // `all` runs what is configured; a named pipeline must have what it needs.
  if (name !== 'all') {
    if ((usesFitbit || name === 'takeout') && !v.users) throw usage(`${name} needs --users FILE (the ${name === 'takeout' ? 'users file with takeout entries' : 'Fitbit users file'})`);
    if (usesHuman && (!apiEnv.humanApiClientId || !apiEnv.humanApiAppKey)) throw usage('humanapi needs HUMANAPI_CLIENT_ID and HUMANAPI_APP_KEY in the environment');
  }
  const configured = pipelines.filter((p) => (p === 'humanapi' ? Boolean(apiEnv.humanApiClientId && apiEnv.humanApiAppKey) : Boolean(v.users)));
  if (configured.length === 0) throw usage('nothing is configured for `run all`: give --users FILE and/or set HUMANAPI_CLIENT_ID and HUMANAPI_APP_KEY');

  return {
    pipelines: configured,
    outDir: path.resolve(cwd, v.out ?? 'out'),
    format,
    compression,
    since: v.since ?? null,
    until: v.until ?? null,
    usersFile: v.users ? path.resolve(cwd, v.users) : null,
    resources: resources as IntradayType[],
    detail: detail as IntradayDetail,
    types,
    stateFile: v.state ? path.resolve(cwd, v.state) : null,
    lookbackDays: positiveInt(v.lookback, 2, '--lookback', 0),
    concurrency: positiveInt(v.concurrency, 4, '--concurrency', 1),
    dryRun: Boolean(v['dry-run']),
    reimport: Boolean(v.reimport),
    env: apiEnv,
  };
}
