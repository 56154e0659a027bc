// Sink throughput: ~1M intraday rows (50 users x 14 days x 1440 one-minute points) written
// through each Parquet engine and Arrow, against anchors measured in the same run:
// parquetjs-lite driven row by row (appendRow, on a sample) and DuckDB's own
// COPY ... (FORMAT PARQUET, PARTITION_BY (date, user)).
//
//   npx tsx bench/sink-parquet.ts            all cases, one child process each (for peak RSS)
//   npx tsx bench/sink-parquet.ts --case fast-snappy
//
// Prints a table and writes bench/results/sink-parquet.json.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IntradayRecord } from '../lib/schema.js';
import type { Compression, OutputFormat } from '../lib/sink.js';
import { SNAPPY_IMPLEMENTATION } from '../sinks/compression.js';
import { createSink, prepareOutput } from '../sinks/index.js';
import type { ParquetEngine } from '../sinks/index.js';
import { ROOT, dataFilesSize, machine, mb, printResult, timed, writeResults, type CaseFigures } from './harness.js';
import { asAsync, intradayBatches } from './sink-data.js';

const SHAPE = { users: 50, days: 14, points: 1440 };
const BATCH = 10_000;
const ROW_BY_ROW_SAMPLE = 100_000;

interface SinkCase {
  kind: 'sink';
  format: OutputFormat;
  engine: ParquetEngine;
  compression: Compression;
  fsync?: boolean;
  /** Write twice into the same folder and time the second run (merge with existing files). */
  rerun?: boolean;
  /** The sink's writer threads (default: the sink's default, 1 on two cores). */
  workers?: number;
}
type Case = SinkCase | { kind: 'parquetjs-row-by-row' } | { kind: 'duckdb-copy' };

const CASES: Record<string, Case> = {
  'fast-snappy': { kind: 'sink', format: 'parquet', engine: 'fast', compression: 'snappy' },
  'fast-snappy-1thread': { kind: 'sink', format: 'parquet', engine: 'fast', compression: 'snappy', workers: 0 },
  'fast-zstd': { kind: 'sink', format: 'parquet', engine: 'fast', compression: 'zstd' },
  'fast-none': { kind: 'sink', format: 'parquet', engine: 'fast', compression: 'none' },
  'fast-snappy-fsync': { kind: 'sink', format: 'parquet', engine: 'fast', compression: 'snappy', fsync: true },
  'fast-snappy-rerun': { kind: 'sink', format: 'parquet', engine: 'fast', compression: 'snappy', rerun: true },
  'hyparquet-writer': { kind: 'sink', format: 'parquet', engine: 'hyparquet-writer', compression: 'snappy' },
  arrow: { kind: 'sink', format: 'arrow', engine: 'fast', compression: 'none' },
  'anchor-parquetjs-row-by-row': { kind: 'parquetjs-row-by-row' },
  'anchor-duckdb-copy': { kind: 'duckdb-copy' },
};

interface Result extends CaseFigures {
  /** Resident set after generating the input, before writing. */
  inputRssMB: number;
}

async function runSinkCase(name: string, c: SinkCase): Promise<Result> {
  const input: IntradayRecord[][] = [...intradayBatches(SHAPE, BATCH)];
  const rows = input.reduce((n, b) => n + b.length, 0);
  const inputRss = process.memoryUsage().rss;
  const out = await mkdtemp(join(tmpdir(), `bench-sink-${name}-`));
  await prepareOutput(out);
  const options = { outDir: out, format: c.format, compression: c.compression, parquetEngine: c.engine, fsync: c.fsync ?? false, ...(c.workers === undefined ? {} : { workers: c.workers }) };
  if (c.rerun) await createSink('intraday', { ...options, runId: 'bench-first' })(asAsync(input));
  const time = await timed(async () => {
    const summary = await createSink('intraday', { ...options, runId: 'bench' })(asAsync(input));
    if (summary.rows !== rows) throw new Error(`wrote ${summary.rows} rows, expected ${rows}`);
  });
  return finish(name, rows, time, inputRss, out);
}

/** parquetjs-lite as its README drives it: appendRow per record, one file. */
async function runRowByRow(name: string): Promise<Result> {
  const parquet = (await import('parquetjs-lite')).default;
  const input = [...intradayBatches({ users: 5, days: 14, points: 1440 }, BATCH)].flat().slice(0, ROW_BY_ROW_SAMPLE);
  const inputRss = process.memoryUsage().rss;
  const schema = new parquet.ParquetSchema({
    id: { type: 'UTF8', compression: 'SNAPPY' },
    humanId: { type: 'UTF8', compression: 'SNAPPY' },
    userId: { type: 'UTF8', compression: 'SNAPPY' },
    source: { type: 'UTF8', compression: 'SNAPPY' },
    type: { type: 'UTF8', compression: 'SNAPPY' },
    timestamp: { type: 'TIMESTAMP_MILLIS', compression: 'SNAPPY' },
    tzOffset: { type: 'UTF8', compression: 'SNAPPY' },
    timeZone: { type: 'UTF8', compression: 'SNAPPY' },
    value: { type: 'DOUBLE', compression: 'SNAPPY' },
    unit: { type: 'UTF8', compression: 'SNAPPY' },
    interval: { type: 'INT32', compression: 'SNAPPY' },
    level: { type: 'INT32', optional: true, compression: 'SNAPPY' },
    mets: { type: 'DOUBLE', optional: true, compression: 'SNAPPY' },
    createdAt: { type: 'TIMESTAMP_MILLIS', compression: 'SNAPPY' },
    updatedAt: { type: 'TIMESTAMP_MILLIS', compression: 'SNAPPY' },
  });
  const dir = await mkdtemp(join(tmpdir(), 'bench-rowwise-'));
  const path = join(dir, 'data.parquet');
  const time = await timed(async () => {
    const writer = await parquet.ParquetWriter.openFile(schema, path);
    for (const r of input) await writer.appendRow(r as unknown as Record<string, unknown>);
    await writer.close();
  });
  const bytes = (await stat(path)).size;
  await rm(dir, { recursive: true, force: true });
  return {
    case: name,
    rows: input.length,
    ...time,
    rowsPerSecond: Math.round(input.length / time.seconds),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    inputRssMB: mb(inputRss),
    outputBytes: bytes,
    files: 1,
  };
}

/** DuckDB writing the same rows (generated inside DuckDB) partitioned by date and user. */
async function runDuckdbCopy(name: string): Promise<Result> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  const perUser = SHAPE.days * SHAPE.points;
  await con.run(`CREATE TABLE points AS
    SELECT
      'fitbit:2ABC' || lpad(CAST(i // ${perUser} AS VARCHAR), 3, '0') || ':steps:' || strftime(TIMESTAMP '2024-01-01' + to_days(CAST((i % ${perUser}) // ${SHAPE.points} AS INTEGER)) + to_minutes(CAST(i % ${SHAPE.points} AS BIGINT)), '%Y-%m-%dT%H:%M') AS id,
      'h-' || CAST(i // ${perUser} AS VARCHAR) AS humanId,
      '2ABC' || lpad(CAST(i // ${perUser} AS VARCHAR), 3, '0') AS userId,
      'fitbit' AS source, 'steps' AS type,
      make_timestamptz(CAST(1704067200000000 + ((i % ${perUser}) // ${SHAPE.points}) * 86400000000 + (i % ${SHAPE.points}) * 60000000 AS BIGINT)) AS timestamp,
      '+00:00' AS tzOffset, 'UTC' AS timeZone,
      CAST(CASE WHEN (i * 7919) % 97 < 50 THEN 0 ELSE (i * 31) % 130 END AS DOUBLE) AS value,
      'count' AS unit, CAST(60 AS INTEGER) AS interval, CAST(NULL AS INTEGER) AS level, CAST(NULL AS DOUBLE) AS mets,
      make_timestamptz(CAST(1704153600000000 AS BIGINT)) AS createdAt, make_timestamptz(CAST(1704153600000000 AS BIGINT)) AS updatedAt,
      CAST(DATE '2024-01-01' + CAST((i % ${perUser}) // ${SHAPE.points} AS INTEGER) AS VARCHAR) AS date,
      'h-' || CAST(i // ${perUser} AS VARCHAR) AS "user"
    FROM range(${SHAPE.users * perUser}) t(i)`);
  const rows = SHAPE.users * perUser;
  const inputRss = process.memoryUsage().rss;
  const dir = await mkdtemp(join(tmpdir(), 'bench-duckdb-'));
  const time = await timed(async () => {
    await con.run(`COPY points TO '${dir}/intraday' (FORMAT PARQUET, COMPRESSION SNAPPY, PARTITION_BY (date, "user"))`);
  });
  return finish(name, rows, time, inputRss, dir);
}

/** A case's figures once its job is timed; measures and removes its output folder. */
async function finish(name: string, rows: number, time: { seconds: number; cpuSeconds: number }, inputRss: number, dir: string): Promise<Result> {
  const size = await dataFilesSize(dir);
  await rm(dir, { recursive: true, force: true });
  return {
    case: name,
    rows,
    ...time,
    rowsPerSecond: Math.round(rows / time.seconds),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    inputRssMB: mb(inputRss),
    outputBytes: size.bytes,
    files: size.files,
  };
}

async function runCase(name: string): Promise<Result> {
  const c = CASES[name];
  if (!c) throw new Error(`unknown case ${name}; one of ${Object.keys(CASES).join(', ')}`);
  if (c.kind === 'sink') return runSinkCase(name, c);
  if (c.kind === 'parquetjs-row-by-row') return runRowByRow(name);
  return runDuckdbCopy(name);
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--case');
  if (at >= 0) {
    const result = await runCase(process.argv[at + 1] ?? '');
    printResult(result);
    return;
  }
  const loadBefore = loadavg()[0]!;
  const results: Result[] = [];
  for (const name of Object.keys(CASES)) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--case', name], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 });
    const line = child.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) {
      process.stderr.write(`case ${name} failed:\n${child.stderr}\n`);
      process.exitCode = 1;
      continue;
    }
    results.push(JSON.parse(line.slice(7)) as Result);
  }
  const duck = results.find((r) => r.case === 'anchor-duckdb-copy');
  const rowwise = results.find((r) => r.case === 'anchor-parquetjs-row-by-row');
  const table = results.map((r) => ({
    case: r.case,
    rows: r.rows,
    'rows/s': r.rowsPerSecond,
    's wall': Number(r.seconds.toFixed(2)),
    's cpu': Number(r.cpuSeconds.toFixed(2)),
    'peak RSS MB': r.peakRssMB,
    'input RSS MB': r.inputRssMB,
    'output MB': mb(r.outputBytes),
    files: r.files,
    'vs duckdb': duck ? Number((r.rowsPerSecond / duck.rowsPerSecond).toFixed(2)) : null,
    'vs row-by-row': rowwise ? Number((r.rowsPerSecond / rowwise.rowsPerSecond).toFixed(2)) : null,
  }));
  console.table(table);
  const report = {
    date: new Date().toISOString(),
    ...machine(),
    loadAverageAtStart: loadBefore,
    loadAverageAtEnd: loadavg()[0],
    snappy: SNAPPY_IMPLEMENTATION,
    shape: SHAPE,
    batchSize: BATCH,
    results: table,
  };
  const path = await writeResults('sink-parquet', report);
  console.log(`snappy: ${SNAPPY_IMPLEMENTATION}; load average ${loadBefore.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}; written ${path}`);
}

await main();
