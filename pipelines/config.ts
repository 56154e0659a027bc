// Command line and environment, parsed and validated once at start-up (CONTRACTS.md).
// Everything wrong here is a usage error (exit 2) reported before any request is sent.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { outLocation, parseOutTarget } from '../sinks/object-store/url.js';
import { resolveStateTarget } from './state/url.js';
import { EtlError } from '../lib/errors.js';
import { isValidDate } from '../lib/dates.js';
import { UsersFile } from '../lib/users-file.js';
import type { Compression, OutputFormat } from '../lib/sink.js';

/** A pipeline's name (pipelines/registry.ts lists them). */
export type PipelineName = string;

/** The run options a pipeline may read; help and option checks come from each entry's list. */
export const PIPELINE_FLAGS = ['users', 'since', 'until', 'resources', 'detail', 'types', 'lookback', 'concurrency'] as const;
export type PipelineFlag = (typeof PIPELINE_FLAGS)[number];

export interface RunConfig {
  /** The pipelines to run, in registry order (chosen by pipelines/registry.ts). */
  pipelines: PipelineName[];
  /** `run all`: the pipelines left out, and why (what they miss). */
  skipped: Array<{ pipeline: PipelineName; reason: string }>;
  /** A folder path, or s3://bucket/prefix (sinks/output.ts: every write goes through it). */
  outDir: string;
  format: OutputFormat;
  compression: Compression;
  since: string | null;
  /** Explicit --until; null means "yesterday in each user's zone". */
  until: string | null;
  usersFile: string | null;
  /** How many entries of each provider the users file holds (read once at start-up). */
  usersByProvider: Readonly<Record<string, number>>;
  /** --resources as given (each pipeline checks its own names); null: the pipeline's default. */
  resources: string[] | null;
  /** --detail as given; null: the pipeline's default. */
  detail: string | null;
  /** --types as given; null: the pipeline's default. */
  types: string[] | null;
  /** Explicit --state; null means <out>/_state/<pipeline>.json (a folder --out only). */
  stateFile: string | null;
  lookbackDays: number;
  concurrency: number;
  dryRun: boolean;
  /** takeout: read archives the state marks as imported whole again. */
  reimport: boolean;
  /** --report: write <out>/_report/ at the end of the run. */
  report: boolean;
  /** The pipeline options that were given on the command line. */
  given: ReadonlySet<PipelineFlag>;
  env: ApiEnv;
}

export interface ApiEnv {
  fitbitApiUrl: string;
  fitbitClientId?: string;
  fitbitClientSecret?: string;
  humanApiUrl: string;
  humanApiClientId?: string;
  humanApiAppKey?: string;
  googleHealthApiUrl: string;
  googleOAuthTokenUrl: string;
  googleClientId?: string;
  googleClientSecret?: string;
}

/** Every environment variable the code reads, for help. */
export const ENV_HELP: ReadonlyArray<readonly [string, string]> = [
  ['FITBIT_API_URL', 'Fitbit Web API base (default https://api.fitbit.com)'],
  ['FITBIT_CLIENT_ID, FITBIT_CLIENT_SECRET', 'for refreshing expired Fitbit tokens'],
  ['HUMANAPI_API_URL', 'Human API base (default https://api.humanapi.co)'],
  ['HUMANAPI_CLIENT_ID, HUMANAPI_APP_KEY', 'Human API batch queries (App Key as basic-auth user)'],
  ['GOOGLE_HEALTH_API_URL', 'Google Health API base (default https://health.googleapis.com)'],
  ['GOOGLE_OAUTH_TOKEN_URL', 'Google OAuth token endpoint (default https://oauth2.googleapis.com/token)'],
  ['GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET', 'the Google Cloud OAuth client, for refreshing tokens'],
  ['WEARABLE_ETL_HEAP_MB', 'caps the heap (old generation, MB) of the thread the run works on'],
  ['WEARABLE_ETL_SNAPPY', '"js" uses the JavaScript snappy codec instead of the native one'],
  ['WEARABLE_ETL_DEBUG', 'set: a failure also prints its stack trace'],
  // Issue #17 (README "Object storage, PostgreSQL state, several workers").
  ['WEARABLE_ETL_STATE_URL', 'state in PostgreSQL (postgres://…), as --state; not wired into run yet'],
  ['WEARABLE_ETL_TOKEN_KEY', 'PostgreSQL state (not wired into run yet): 32-byte key (hex or base64) encrypting tokens at rest'],
  ['AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN', '--out s3://bucket/prefix: credentials (else the AWS SDK\'s own chain)'],
  ['AWS_REGION, AWS_DEFAULT_REGION', '--out s3://: region (default us-east-1)'],
  ['AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL', '--out s3://: an S3-compatible endpoint (then path-style addressing)'],
  ['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'set to true by the command itself: the AWS SDK\'s multi-line Node 20 notice never reaches stderr'],
  ['WEARABLE_ETL_STAGING_DIR, WEARABLE_ETL_STAGING_MB', '--out s3://: local folder for dead letters being collected and downloads, and the cap on downloads (default system temp, 512 MB)'],
];

function usage(message: string): EtlError {
  return new EtlError('USAGE', message);
}

function list(value: string): string[] {
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
    googleHealthApiUrl: url(env.GOOGLE_HEALTH_API_URL, 'https://health.googleapis.com', 'GOOGLE_HEALTH_API_URL'),
    googleOAuthTokenUrl: url(env.GOOGLE_OAUTH_TOKEN_URL, 'https://oauth2.googleapis.com/token', 'GOOGLE_OAUTH_TOKEN_URL'),
  };
  if (env.FITBIT_CLIENT_ID) out.fitbitClientId = env.FITBIT_CLIENT_ID;
  if (env.FITBIT_CLIENT_SECRET) out.fitbitClientSecret = env.FITBIT_CLIENT_SECRET;
  if (env.HUMANAPI_CLIENT_ID) out.humanApiClientId = env.HUMANAPI_CLIENT_ID;
  if (env.HUMANAPI_APP_KEY) out.humanApiAppKey = env.HUMANAPI_APP_KEY;
  if (env.GOOGLE_CLIENT_ID) out.googleClientId = env.GOOGLE_CLIENT_ID;
  if (env.GOOGLE_CLIENT_SECRET) out.googleClientSecret = env.GOOGLE_CLIENT_SECRET;
  return out;
}

/** Options that take a value, named once: the generic ones and every pipeline flag. */
function valueOptions<K extends string>(names: readonly K[]): { [P in K]: { type: 'string' } } {
  return Object.fromEntries(names.map((n) => [n, { type: 'string' }])) as { [P in K]: { type: 'string' } };
}

export const RUN_OPTIONS = {
  ...valueOptions(['out', 'format', 'compression', 'state', ...PIPELINE_FLAGS]),
  'dry-run': { type: 'boolean' },
  reimport: { type: 'boolean' },
  report: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Parses the options of `run` into a config that names no pipeline yet. Which pipelines run,
 * and whether they have what they need, is decided by pipelines/registry.ts `parseRunArgs`;
 * this part knows no pipeline. Returns null when help was asked for.
 */
export function parseRunOptions(argv: string[], env: NodeJS.ProcessEnv, cwd: string): { config: RunConfig; positionals: string[] } | null {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: RUN_OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw usage((err as Error).message.split('\n')[0]);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return null;
  const format = v.format ?? 'parquet';
  if (format !== 'parquet' && format !== 'arrow') throw usage(`--format must be parquet or arrow, not "${format}"`);
  const compression = v.compression ?? 'snappy';
  if (compression !== 'snappy' && compression !== 'zstd' && compression !== 'none') throw usage(`--compression must be snappy, zstd or none, not "${compression}"`);
  for (const [flag, value] of [['--since', v.since], ['--until', v.until]] as const) {
    if (value !== undefined && !isValidDate(value)) throw usage(`${flag} must be a date YYYY-MM-DD, not "${value}"`);
  }
  if (v.since && v.until && v.since > v.until) throw usage(`--since ${v.since} is after --until ${v.until}`);
  const usersFile = v.users ? path.resolve(cwd, v.users) : null;
  // PostgreSQL state is built (pipelines/state) but not wired into the run yet: say so (issue #17).
  const out = parseOutTarget(v.out ?? 'out', cwd);
  const state = resolveStateTarget(v.state, env, cwd);
  if (state.kind !== 'file') throw usage(`${v.state ? '--state' : 'WEARABLE_ETL_STATE_URL'}: PostgreSQL state is not wired into run yet; use a state file`);
  // A bucket holds no state files: the state is written after every user's checkpoint, and a
  // lost refresh token means a new consent, so it lives where the operator chooses, never in
  // a folder the runner throws away.
  if (out.kind === 's3' && state.path === null) throw usage(`--out ${v.out} needs --state FILE or --state postgres://… (a bucket holds no state files)`);
  // The report reads a local folder's files.
  if (out.kind === 's3' && v.report) throw usage(`--report reads a local folder; --out ${v.out} is a bucket (run \`wearable-etl report\` on a copy)`);
  return {
    positionals,
    config: {
      pipelines: [],
      skipped: [],
      outDir: outLocation(out),
      format,
      compression,
      since: v.since ?? null,
      until: v.until ?? null,
      usersFile,
      usersByProvider: usersFile ? countUsers(usersFile) : {},
      resources: v.resources === undefined ? null : list(v.resources),
      detail: v.detail ?? null,
      types: v.types === undefined ? null : list(v.types),
      stateFile: state.path,
      lookbackDays: positiveInt(v.lookback, 2, '--lookback', 0),
      concurrency: positiveInt(v.concurrency, 4, '--concurrency', 1),
      dryRun: Boolean(v['dry-run']),
      reimport: Boolean(v.reimport),
      report: Boolean(v.report),
      given: new Set(PIPELINE_FLAGS.filter((f) => v[f] !== undefined)),
      env: readEnv(env),
    },
  };
}

/** Entries per provider; an unreadable or malformed users file is a usage error before any request. */
function countUsers(file: string): Record<string, number> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new EtlError('CONFIG', `cannot read users file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
  }
  const users = UsersFile.parse(text, file);
  return Object.fromEntries([...users.providers()].map((p) => [p, users.entries(p).length]));
}
