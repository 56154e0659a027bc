// Intraday end to end, side by side with DuckDB (issue "Performance: end-to-end benchmark").
//
// Input: 50 users × 30 days of recorded 1-minute Fitbit steps responses (2.16M points, DST
// days included; bench/intraday-files.ts), one file per user and date. Cases, each in its own
// child process running the compiled code, interleaved, 3 runs each (medians):
//   ours-parquet   pipelines/replay-intraday.ts: replay source → normalizeIntradayColumns → the CLI's
//                  sink, partitioned Parquet (snappy), writer thread on (the default)
//   ours-arrow     the same with Arrow IPC output
//   ours-parquet-1thread   the Parquet case with the sink's writer threads off (workers: 0)
//   hyparquet-writer   the Parquet case with the hyparquet-writer library as the encoder
//                  (parquetEngine), the candidate of issue 14; memory-4x-hyparquet-writer at 4×
//   duckdb         DuckDB doing the same job with 2 threads: read_json → unnest → local→UTC
//                  with AT TIME ZONE → COPY … (FORMAT PARQUET, PARTITION_BY (date, user))
//   memory-4x      ours-parquet over 4× the input (200 users), for peak RSS against 1×
// Reports rows/s, the ratio against DuckDB's rows/s in the same run, peak RSS and output
// bytes; checks that our Parquet and DuckDB's hold the same rows; on a missed target, profiles
// the case and prints the top self-time functions per thread.
//
//   npx tsx bench/intraday-e2e.ts [--runs 3] [--no-4x] [--profile]
//   (a case alone, once compiled: node bench/.build/bench/intraday-e2e.js
//    --case ours-parquet --input DIR --out DIR [--high-water N])
import { mkdir, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OutputFormat } from '../lib/sink.js';
import { runReplayIntraday } from '../pipelines/replay-intraday.js';
import { loadReplayManifest, type ReplayManifest } from '../sources/replay/index.js';
import { SNAPPY_IMPLEMENTATION } from '../sinks/compression.js';
import type { ParquetEngine } from '../sinks/index.js';
import {
  type CaseFigures,
  COMPILED,
  asOnCliThread,
  compile,
  dataFilesSize,
  flag,
  machine,
  mb,
  median,
  option,
  peakRssMB,
  printProfile,
  printResult,
  profileChild,
  round,
  runChild,
  timed,
  writeResults,
} from './harness.js';
import { SEEN_AT, ensureIntradayFiles } from './intraday-files.js';

const SHAPE = { users: 50, days: 30 };
const SHAPE_4X = { users: 200, days: 30 };
/** highWaterRows tried for the memory table besides the sink's default. */
const HIGH_WATER_PROBES = [20_000];

export const TARGETS = {
  parquetVsDuckdb: 1.3,
  arrowVsDuckdb: 1.2,
  peakRssMB: 256,
  rss4xVs1x: 1.1,
};

interface CaseResult extends CaseFigures {
  /** RSS of the child after loading its code, before the job. */
  startRssMB: number;
}

// ---------------------------------------------------------------------------------------------
// The cases (run in the child).

async function runOurs(name: string, input: string, out: string, format: OutputFormat, workers: number | undefined, parquetEngine?: ParquetEngine): Promise<CaseResult> {
  // --high-water N: the sink's highWaterRows (default: the sink's own), to see what it does to RSS.
  const highWater = option('high-water', '');
  const highWaterRows = highWater === '' ? undefined : Number(highWater);
  const startRssMB = peakRssMB();
  const { value, seconds, cpuSeconds } = await timed(() =>
    runReplayIntraday({
      dir: input,
      outDir: out,
      format,
      runId: 'bench',
      seenAt: SEEN_AT,
      resources: ['steps'],
      ...(workers === undefined ? {} : { workers }),
      ...(parquetEngine === undefined ? {} : { parquetEngine }),
      ...(highWaterRows === undefined ? {} : { highWaterRows }),
    }),
  );
  if (value.summary.deadLetters !== 0) throw new Error(`${value.summary.deadLetters} dead letters`);
  if (value.summary.rows !== value.points) throw new Error(`wrote ${value.summary.rows} rows of ${value.points} points`);
  const peak = peakRssMB();
  const size = await dataFilesSize(out);
  return { case: name, rows: value.points, seconds, cpuSeconds, rowsPerSecond: Math.round(value.points / seconds), peakRssMB: peak, startRssMB, outputBytes: size.bytes, files: size.files };
}

function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/**
 * DuckDB's version of the job. The zone of each user comes from the manifest; `AT TIME ZONE`
 * with a zone that varies per row costs DuckDB about 6x more than with a constant one (measured
 * here: 8.1 s against 1.3 s for the 2.16M points), so each zone gets its own branch with the
 * zone as a literal: DuckDB's fastest way to this result that we know of.
 */
export function duckdbSql(input: string, manifest: ReplayManifest, out: string): string {
  const zones = [...new Set(manifest.users.map((u) => u.timezone))].sort();
  const seenAtMicros = SEEN_AT * 1000;
  const raw = `SELECT regexp_extract(filename, '([^/]+)/steps/[0-9-]+\\.json$', 1) AS userId,
      regexp_extract(filename, '([0-9]{4}-[0-9]{2}-[0-9]{2})\\.json$', 1) AS date,
      unnest(intraday.dataset) AS p
    FROM read_json(${sqlString(join(input, '*', 'steps', '*.json'))}, filename = true, format = 'unstructured',
      columns = {'activities-steps-intraday': 'STRUCT(dataset STRUCT("time" VARCHAR, "value" DOUBLE)[], datasetInterval INTEGER, datasetType VARCHAR)'}) AS t(intraday)`;
  const users = `SELECT u.userId, u.humanId, u.timezone FROM (SELECT unnest(users) AS u FROM read_json(${sqlString(join(input, 'manifest.json'))}))`;
  const perZone = zones
    .map((z) => {
      const zone = sqlString(z);
      return `SELECT r.userId, u.humanId, r.date, r.p.time AS t, r.p.value AS v, ${zone} AS timeZone,
        CAST(r.date || ' ' || r.p.time AS TIMESTAMP) AT TIME ZONE ${zone} AS instant
      FROM r JOIN u USING (userId) WHERE u.timezone = ${zone}`;
    })
    .join('\n      UNION ALL\n      ');
  // The offset in force at the instant (not wall time minus instant: they differ in a
  // spring-forward gap), from the instant read back in the zone.
  const offsetMinutes = (z: string): string => `CAST((epoch(timezone(${sqlString(z)}, instant)) - epoch(timezone('UTC', instant))) // 60 AS INTEGER)`;
  const offset = `CASE ${zones.map((z) => `WHEN timeZone = ${sqlString(z)} THEN ${offsetMinutes(z)}`).join(' ')} END`;
  return `COPY (
    WITH r AS (${raw}), u AS (${users}),
    placed AS (${perZone}),
    offsets AS (SELECT *, ${offset} AS off FROM placed)
    SELECT 'fitbit:' || humanId || ':steps:' || date || 'T' || t AS id, humanId, userId, 'fitbit' AS source, 'steps' AS type,
      instant AS "timestamp",
      (CASE WHEN off < 0 THEN '-' ELSE '+' END) || lpad(CAST(abs(off) // 60 AS VARCHAR), 2, '0') || ':' || lpad(CAST(abs(off) % 60 AS VARCHAR), 2, '0') AS tzOffset,
      timeZone, v AS value, 'count' AS unit, CAST(60 AS INTEGER) AS "interval", CAST(NULL AS INTEGER) AS level, CAST(NULL AS DOUBLE) AS mets,
      CAST(NULL AS BOOLEAN) AS estimated,
      make_timestamptz(CAST(${seenAtMicros} AS BIGINT)) AS createdAt, make_timestamptz(CAST(${seenAtMicros} AS BIGINT)) AS updatedAt,
      date, humanId AS "user"
    FROM offsets
  ) TO ${sqlString(join(out, 'intraday'))} (FORMAT PARQUET, COMPRESSION SNAPPY, PARTITION_BY (date, "user"))`;
}

async function runDuckdb(name: string, input: string, out: string): Promise<CaseResult> {
  const manifest = await loadReplayManifest(input);
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', { threads: '2' });
  const con = await db.connect();
  const startRssMB = peakRssMB();
  const sql = duckdbSql(input, manifest, out);
  const { seconds, cpuSeconds } = await timed(() => con.run(sql));
  const peak = peakRssMB();
  const points = Number((await con.runAndReadAll(`SELECT count(*) FROM read_parquet(${sqlString(join(out, 'intraday', '**', '*.parquet'))})`)).getRowsJson()[0]![0]);
  const size = await dataFilesSize(out);
  return { case: name, rows: points, seconds, cpuSeconds, rowsPerSecond: Math.round(points / seconds), peakRssMB: peak, startRssMB, outputBytes: size.bytes, files: size.files };
}

async function caseMain(): Promise<void> {
  const name = option('case', '');
  const input = option('input', '');
  const out = option('out', '');
  if (!name || !input || !out) throw new Error('usage: --case NAME --input DIR --out DIR');
  // Ours run on a thread like the CLI's (its young generation capped); DuckDB's own threads
  // are native and take the main thread as it is.
  if (name !== 'duckdb' && (await asOnCliThread())) return;
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  let result: CaseResult;
  if (name === 'duckdb') result = await runDuckdb(name, input, out);
  else if (name === 'ours-arrow') result = await runOurs(name, input, out, 'arrow', undefined);
  else if (name === 'ours-parquet-1thread') result = await runOurs(name, input, out, 'parquet', 0);
  else if (name === 'ours-parquet' || name === 'memory-4x') result = await runOurs(name, input, out, 'parquet', undefined);
  else if (name === 'hyparquet-writer' || name === 'memory-4x-hyparquet-writer') result = await runOurs(name, input, out, 'parquet', undefined, 'hyparquet-writer');
  else throw new Error(`unknown case ${name}`);
  printResult(result);
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

/** Our Parquet output and DuckDB's hold the same rows: per partition, counts and checksums. */
async function compareOutputs(ours: string, duck: string): Promise<{ partitions: number; mismatches: number; rows: number }> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  // Ids agree but for the wall times of a fall-back day's repeated hour, where ours carry the
  // offset (transforms/intraday.ts): compare them without it.
  const agg = (dir: string): string => `SELECT CAST(date AS VARCHAR) AS date, CAST("user" AS VARCHAR) AS "user", count(*) AS n, sum(value) AS v,
      sum(epoch_ms("timestamp")) AS t, sum(hash(regexp_replace(id, 'T(\\d\\d:\\d\\d:\\d\\d)[+-]\\d\\d:\\d\\d$', 'T\\1'))) AS ids,
      sum(hash(tzOffset || '|' || CAST(epoch_ms("timestamp") AS VARCHAR))) AS offsets, count(DISTINCT timeZone) AS zones
    FROM read_parquet(${sqlString(join(dir, 'intraday', '**', '*.parquet'))}, hive_partitioning = true) GROUP BY ALL`;
  const rows = (
    await con.runAndReadAll(`WITH a AS (${agg(ours)}), b AS (${agg(duck)})
      SELECT count(*) AS partitions,
        count(*) FILTER (WHERE a.n IS DISTINCT FROM b.n OR a.v IS DISTINCT FROM b.v OR a.t IS DISTINCT FROM b.t OR a.ids IS DISTINCT FROM b.ids OR a.offsets IS DISTINCT FROM b.offsets) AS mismatches,
        sum(a.n) AS rows
      FROM a FULL JOIN b USING (date, "user")`)
  ).getRowObjectsJson()[0]!;
  return { partitions: Number(rows['partitions']), mismatches: Number(rows['mismatches']), rows: Number(rows['rows']) };
}

function ratio(a: number, b: number): number {
  return round(a / b, 2);
}

async function orchestrate(): Promise<void> {
  const runs = Number(option('runs', '3'));
  const with4x = !flag('no-4x');
  const loadAtStart = round(loadavg()[0]!, 2);
  const input = await ensureIntradayFiles(SHAPE);
  const input4x = with4x ? await ensureIntradayFiles(SHAPE_4X) : null;
  const [script] = compile(['bench/intraday-e2e.ts', 'sinks/write-worker.ts']);
  const outRoot = join(tmpdir(), 'wearable-etl-bench', 'e2e-out');
  const cases = ['duckdb', 'ours-parquet', 'ours-arrow', 'ours-parquet-1thread', 'hyparquet-writer'];
  const results = new Map<string, CaseResult[]>(cases.map((c) => [c, []]));
  const loads: Record<string, [number, number][]> = {};
  const run = async (name: string, dir: string, rep: number): Promise<CaseResult> => {
    const out = join(outRoot, `${name}-${rep}`);
    const { result, load } = await runChild<CaseResult>(script!, ['--case', name, '--input', dir, '--out', out]);
    (loads[name] ??= []).push(load);
    console.log(`  ${name.padEnd(22)} run ${rep + 1}: ${result.rowsPerSecond.toLocaleString('en-US').padStart(9)} rows/s, ${result.seconds.toFixed(2)} s, peak RSS ${result.peakRssMB} MB, load ${load[0]} → ${load[1]}`);
    return result;
  };

  console.log(`intraday end to end: ${input.points.toLocaleString('en-US')} points in ${input.files} files (${mb(input.bytes)} MB), ${runs} runs per case`);
  let check: Awaited<ReturnType<typeof compareOutputs>> | null = null;
  let checkLibrary: Awaited<ReturnType<typeof compareOutputs>> | null = null;
  for (let rep = 0; rep < runs; rep++) {
    for (const name of cases) results.get(name)!.push(await run(name, input.dir, rep));
    if (rep === 0) {
      check = await compareOutputs(join(outRoot, 'ours-parquet-0'), join(outRoot, 'duckdb-0'));
      console.log(`  same rows as DuckDB: ${check.mismatches === 0 ? 'yes' : 'NO'} (${check.partitions} partitions, ${check.mismatches} differ)`);
      checkLibrary = await compareOutputs(join(outRoot, 'hyparquet-writer-0'), join(outRoot, 'duckdb-0'));
      console.log(`  hyparquet-writer, same rows as DuckDB: ${checkLibrary.mismatches === 0 ? 'yes' : 'NO'} (${checkLibrary.partitions} partitions, ${checkLibrary.mismatches} differ)`);
      if (check.mismatches !== 0 || checkLibrary.mismatches !== 0) process.exitCode = 1;
    }
    for (const name of cases) await rm(join(outRoot, `${name}-${rep}`), { recursive: true, force: true });
  }
  let memory4x: CaseResult | null = null;
  let memory4xLibrary: CaseResult | null = null;
  const memoryHighWater: Record<string, number | string>[] = [];
  if (input4x !== null) {
    // Medians of as many runs as the 1× cases: single runs of one setting varied by ±50 MB.
    const runs4x = new Map<string, CaseResult[]>([['memory-4x', []], ['memory-4x-hyparquet-writer', []]]);
    for (let rep = 0; rep < runs; rep++) {
      for (const [name, list] of runs4x) {
        list.push(await run(name, input4x.dir, rep));
        await rm(join(outRoot, `${name}-${rep}`), { recursive: true, force: true });
      }
    }
    const medianOf = (rs: CaseResult[]): CaseResult => ({
      ...rs[0]!,
      peakRssMB: round(median(rs.map((r) => r.peakRssMB)), 1),
      rowsPerSecond: Math.round(median(rs.map((r) => r.rowsPerSecond))),
      seconds: round(median(rs.map((r) => r.seconds)), 2),
    });
    memory4x = medianOf(runs4x.get('memory-4x')!);
    memory4xLibrary = medianOf(runs4x.get('memory-4x-hyparquet-writer')!);
    // What a lower high-water mark of the sink does to peak RSS (single runs; the default's are above).
    for (const highWaterRows of HIGH_WATER_PROBES) {
      for (const [label, dir] of [['1×', input.dir], ['4×', input4x.dir]] as const) {
        const out = join(outRoot, 'memory-hw');
        const { result } = await runChild<CaseResult>(script!, ['--case', 'ours-parquet', '--input', dir, '--out', out, '--high-water', String(highWaterRows)]);
        await rm(out, { recursive: true, force: true });
        memoryHighWater.push({ case: 'ours-parquet', highWaterRows, input: label, 'rows/s': result.rowsPerSecond, 'peak RSS MB': result.peakRssMB });
        console.log(`  highWaterRows ${highWaterRows}, ${label}: peak RSS ${result.peakRssMB} MB, ${result.rowsPerSecond.toLocaleString('en-US')} rows/s`);
      }
    }
  }

  const summary = (name: string): Record<string, number | string> => {
    const rs = results.get(name)!;
    return {
      case: name,
      rows: rs[0]!.rows,
      'rows/s': Math.round(median(rs.map((r) => r.rowsPerSecond))),
      's wall': round(median(rs.map((r) => r.seconds)), 2),
      's cpu': round(median(rs.map((r) => r.cpuSeconds)), 2),
      'peak RSS MB': round(median(rs.map((r) => r.peakRssMB)), 1),
      'start RSS MB': round(median(rs.map((r) => r.startRssMB)), 1),
      'output MB': mb(rs[0]!.outputBytes),
      files: rs[0]!.files,
    };
  };
  const table = cases.map(summary);
  const duck = table[0]!['rows/s'] as number;
  for (const row of table) row['vs duckdb'] = ratio(row['rows/s'] as number, duck);
  console.table(table);

  const parquet = table[1]!;
  const arrow = table[2]!;
  const targets = [
    { target: `Parquet ≥ ${TARGETS.parquetVsDuckdb}× DuckDB rows/s`, measured: parquet['vs duckdb'] as number, limit: TARGETS.parquetVsDuckdb, higherIsBetter: true },
    { target: `Arrow ≥ ${TARGETS.arrowVsDuckdb}× DuckDB rows/s`, measured: arrow['vs duckdb'] as number, limit: TARGETS.arrowVsDuckdb, higherIsBetter: true },
    { target: `peak RSS ≤ ${TARGETS.peakRssMB} MB (Parquet, 1×)`, measured: parquet['peak RSS MB'] as number, limit: TARGETS.peakRssMB, higherIsBetter: false },
    ...(memory4x
      ? [{ target: `peak RSS at 4× input ≤ ${TARGETS.rss4xVs1x}× the 1× RSS`, measured: ratio(memory4x.peakRssMB, parquet['peak RSS MB'] as number), limit: TARGETS.rss4xVs1x, higherIsBetter: false }]
      : []),
  ].map((t) => {
    const met = t.higherIsBetter ? t.measured >= t.limit : t.measured <= t.limit;
    // How far off: the factor still to gain (speed) or to shed (memory).
    const missBy = met ? null : round(t.higherIsBetter ? t.limit / t.measured : t.measured / t.limit, 2);
    return { target: t.target, measured: t.measured, met, ...(missBy === null ? {} : { missedBy: `${missBy}×` }) };
  });
  console.table(targets);

  // Issue 14: the library is adopted only if it meets what ours meets, in this same run.
  const library = table[4]!;
  const writerDecision = [
    { engine: 'fast (ours)', 'vs duckdb': parquet['vs duckdb'], 'peak RSS MB': parquet['peak RSS MB'], 'peak RSS 4× MB': memory4x?.peakRssMB ?? null, 'output MB': parquet['output MB'] },
    { engine: 'hyparquet-writer', 'vs duckdb': library['vs duckdb'], 'peak RSS MB': library['peak RSS MB'], 'peak RSS 4× MB': memory4xLibrary?.peakRssMB ?? null, 'output MB': library['output MB'] },
  ].map((row) => ({
    ...row,
    meets:
      (row['vs duckdb'] as number) >= TARGETS.parquetVsDuckdb &&
      (row['peak RSS MB'] as number) <= TARGETS.peakRssMB &&
      (row['peak RSS 4× MB'] === null || row['peak RSS 4× MB'] <= TARGETS.peakRssMB),
  }));
  console.table(writerDecision);
  if (memory4x) console.log(`memory: peak RSS ${parquet['peak RSS MB']} MB at 1× (${input.points.toLocaleString('en-US')} points), ${memory4x.peakRssMB} MB at 4× (${memory4x.rows.toLocaleString('en-US')} points, ${memory4x.rowsPerSecond.toLocaleString('en-US')} rows/s)`);

  // Where the time goes, when a speed target is missed (or asked for).
  const profiles = [];
  const missed = (label: string): boolean => targets.some((t) => !t.met && t.target.startsWith(label));
  if (flag('profile') || missed('Parquet')) profiles.push(await profileChild(script!, ['--case', 'ours-parquet', '--input', input.dir, '--out', join(outRoot, 'profile')], 'ours-parquet'));
  if (flag('profile') || missed('Arrow')) profiles.push(await profileChild(script!, ['--case', 'ours-arrow', '--input', input.dir, '--out', join(outRoot, 'profile')], 'ours-arrow'));
  await rm(join(outRoot, 'profile'), { recursive: true, force: true });
  profiles.forEach(printProfile);

  const full = runs >= 3 && with4x;
  const path = await writeResults('intraday-e2e', {
    benchmark: 'intraday-e2e',
    date: new Date().toISOString(),
    ...machine(),
    snappy: SNAPPY_IMPLEMENTATION,
    loadAverage: { atStart: loadAtStart, atEnd: round(loadavg()[0]!, 2), perCase: loads },
    input: { users: input.users, days: input.days, files: input.files, points: input.points, bytes: input.bytes, window: 'from 2024-03-10', zones: 'America/Los_Angeles, America/New_York, Europe/Berlin, Australia/Sydney, Asia/Kolkata' },
    runs,
    sameRowsAsDuckdb: check,
    libraryRowsAsDuckdb: checkLibrary,
    writerDecision,
    results: table,
    runsPerCase: Object.fromEntries(results),
    memory4x,
    memory4xLibrary,
    memoryHighWater,
    targets,
    profiles: profiles.map((p) => ({ label: p.label, threads: p.threads.map((t) => ({ totalMs: t.totalMs, top: t.top })) })),
  }, !full);
  console.log(`load average ${loadAtStart} → ${round(loadavg()[0]!, 2)}; written ${path}${full ? '' : ' (a partial run: the tables keep the last full one)'}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--case')) await caseMain();
  else if (COMPILED) throw new Error('run the benchmark from the sources: npx tsx bench/intraday-e2e.ts');
  else await orchestrate();
}
