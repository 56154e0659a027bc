// Takeout import (issue 16): memory and speed of `run takeout` on generated archives.
//
// Input (generated once, kept below node_modules/.cache): per user, a Takeout export of one
// year (2023) of minute steps, distance (cm) and calories in `Takeout/Fitbit/Global Export
// Data/` (one JSON member per stream and month, as the exports are), America/Los_Angeles (DST
// days included), built from the Fitabase minute data cycled over the year; plus the same JSON
// unpacked, for DuckDB. Cases, each in a child process running the compiled code on a thread
// like the CLI's:
//   ours-1month    one user, January only (the small end of "as the archive grows")
//   ours-1user     one user, the whole year
//   ours-10users   ten users, a year each (ten archives, one run)
//   duckdb-1user / duckdb-10users   DuckDB (2 threads) on the unpacked JSON: read_json →
//                  stamp parsed → local date with AT TIME ZONE → partitioned Parquet
// Reports rows/s, the ratio against DuckDB in the same run, peak RSS, and 10-user RSS ÷ 1-user.
//
//   npx tsx bench/takeout.ts [--runs 1]
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { DateTime } from 'luxon';
import { loadFitabaseMinutes } from '../fixtures/data-load.js';
import { fixtureUser, usStampUtc } from '../fixtures/takeout.js';
import { minuteSeries, type MinuteSeries } from '../fixtures/fitbit-data.js';
import { ZipWriter } from '../fixtures/takeout-zip.js';
import { createLogger } from '../lib/log.js';
import type { RunConfig } from '../pipelines/config.js';
import { parseRunArgs } from '../pipelines/registry.js';
import { runPipelines } from '../pipelines/run.js';
import { BUILD_DIR, COMPILED, type CaseFigures, asOnCliThread, compile, dataFilesSize, flag, machine, median, option, peakRssMB, printResult, round, runChild, timed, writeResults } from './harness.js';

const ZONE = 'America/Los_Angeles';
const YEAR = 2023;
const INPUT = join(BUILD_DIR, 'takeout-input');
export const TARGETS = { peakRssMB: 256, rss10usersVs1user: 1.1 };

interface CaseResult extends CaseFigures {
  startRssMB: number;
}

// ---------------------------------------------------------------------------------------------
// Input.

/** Writes user k's archive (and the unpacked JSON) for `months` months of YEAR. */
function writeUserArchive(k: number, months: number, zip: string, unpacked: string | null): number {
  const fitabase = loadFitabaseMinutes();
  const user = fixtureUser(k % fitabase.length);
  const days = [...user.days.keys()].sort();
  const series = new Map<string, MinuteSeries>();
  const seriesFor = (dayIndex: number): MinuteSeries => {
    const date = days[dayIndex % days.length]!;
    let s = series.get(date);
    if (s === undefined) {
      s = minuteSeries(user, date, user.days.get(date)!);
      series.set(date, s);
    }
    return s;
  };
  const z = new ZipWriter(zip);
  const root = 'Takeout/Fitbit/Global Export Data';
  let rows = 0;
  for (let month = 1; month <= months; month++) {
    const start = Date.UTC(YEAR, month - 1, 1);
    const end = Date.UTC(YEAR, month, 1);
    const streams: Record<'steps' | 'distance' | 'calories', string[]> = { steps: [], distance: [], calories: [] };
    for (let hourMs = start; hourMs < end; hourMs += 3_600_000) {
      const local = DateTime.fromMillis(hourMs, { zone: ZONE });
      const dayIndex = Math.floor(Date.UTC(local.year, local.month - 1, local.day) / 86_400_000);
      const s = seriesFor(dayIndex);
      for (let m = 0; m < 60; m++) {
        const minute = local.hour * 60 + local.minute + m;
        if (minute >= 1440 || !s.present[minute]) continue;
        const stamp = usStampUtc(hourMs + m * 60_000);
        streams.steps.push(`  "dateTime" : "${stamp}",\n  "value" : "${s.steps[minute]}"`);
        streams.distance.push(`  "dateTime" : "${stamp}",\n  "value" : "${s.distanceMm[minute]! / 10}"`);
        streams.calories.push(`  "dateTime" : "${stamp}",\n  "value" : "${s.calories[minute]! / 10_000}"`);
      }
    }
    const date = new Date(start).toISOString().slice(0, 10);
    for (const [name, list] of Object.entries(streams)) {
      rows += list.length;
      const text = list.length === 0 ? '[ ]' : `[{\n${list.join('\n},{\n')}\n}]`;
      z.add(`${root}/${name}-${date}.json`, text);
      if (unpacked !== null) writeFileSyncDeep(join(unpacked, `${name}-${date}.json`), text);
    }
  }
  z.add('Takeout/Fitbit/Your Profile/Profile.csv', `id,timezone\n${user.userId},${ZONE}\n`);
  z.close();
  return rows;
}

function writeFileSyncDeep(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

interface Input {
  usersFile: string;
  rows: number;
  archiveBytes: number;
  jsonGlob: string;
}

async function ensureInput(name: string, users: number, months: number): Promise<Input> {
  const dir = join(INPUT, name);
  const meta = join(dir, 'input.json');
  if (existsSync(meta)) return JSON.parse(await readFile(meta, 'utf8')) as Input;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  let rows = 0;
  const entries = [];
  for (let k = 0; k < users; k++) {
    const zip = join(dir, `user-${k}.zip`);
    rows += writeUserArchive(k, months, zip, join(dir, 'unpacked', `user-${k}`));
    entries.push({ provider: 'takeout', humanId: `bench-${k}`, archive: `user-${k}.zip`, timezone: ZONE });
  }
  const usersFile = join(dir, 'users.json');
  await writeFile(usersFile, JSON.stringify(entries));
  const archiveBytes = (await dataFilesSizeZip(dir)).bytes;
  const input: Input = { usersFile, rows, archiveBytes, jsonGlob: join(dir, 'unpacked', '*', '*.json') };
  await writeFile(meta, JSON.stringify(input));
  return input;
}

async function dataFilesSizeZip(dir: string): Promise<{ bytes: number }> {
  const { readdir, stat } = await import('node:fs/promises');
  let bytes = 0;
  for (const f of await readdir(dir)) if (f.endsWith('.zip')) bytes += (await stat(join(dir, f))).size;
  return { bytes };
}

// ---------------------------------------------------------------------------------------------
// The cases (in the child).

async function runOurs(name: string, input: Input, out: string): Promise<CaseResult> {
  const config = parseRunArgs(['takeout', '--users', input.usersFile, '--out', out], {}) as RunConfig;
  const startRssMB = peakRssMB();
  const sampler = flag('memory') ? sampleMemory() : null;
  const { value, seconds, cpuSeconds } = await timed(() => runPipelines(config, { log: createLogger({ json: true, write: () => {} }) }));
  sampler?.stop();
  const intraday = value.datasets.find((d) => d.dataset === 'intraday');
  if (value.exitCode !== 0 || intraday === undefined) throw new Error(`run failed: exit ${value.exitCode}`);
  if (intraday.rows !== input.rows || intraday.deadLetters !== 0) throw new Error(`wrote ${intraday.rows} rows of ${input.rows}, ${intraday.deadLetters} dead letters`);
  const peak = peakRssMB();
  const size = await dataFilesSize(out);
  return { case: name, rows: input.rows, seconds, cpuSeconds, rowsPerSecond: Math.round(input.rows / seconds), peakRssMB: peak, startRssMB, outputBytes: size.bytes, files: size.files };
}

/**
 * `--memory`: process.memoryUsage() of this (the CLI) thread every 50 ms; prints the sample at
 * the highest RSS and the highest of each field (MB) to stderr. RSS is the whole process's
 * (writer thread included); heap and external are this thread's.
 */
function sampleMemory(): { stop(): void } {
  const mbOf = (m: NodeJS.MemoryUsage): Record<string, number> => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(v / 1e6, 1)]));
  let atPeak = mbOf(process.memoryUsage());
  const highest: Record<string, number> = { ...atPeak };
  const timer = setInterval(() => {
    const m = mbOf(process.memoryUsage());
    if (m['rss']! > atPeak['rss']!) atPeak = m;
    for (const [k, v] of Object.entries(m)) highest[k] = Math.max(highest[k] ?? 0, v);
  }, 50);
  return {
    stop: () => {
      clearInterval(timer);
      process.stderr.write(`memory MB at the highest RSS ${JSON.stringify(atPeak)}; highest of each ${JSON.stringify(highest)}\n`);
    },
  };
}

const sql = (s: string): string => `'${s.replace(/'/g, "''")}'`;

async function runDuckdb(name: string, input: Input, out: string): Promise<CaseResult> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', { threads: '2' });
  const con = await db.connect();
  const startRssMB = peakRssMB();
  const job = `COPY (
    WITH r AS (
      SELECT regexp_extract(filename, 'user-(\\d+)/', 1) AS u, regexp_extract(filename, '/([a-z]+)-[0-9-]+\\.json$', 1) AS type,
        strptime(dateTime, '%m/%d/%y %H:%M:%S') AS wall, CAST(value AS DOUBLE) AS v
      FROM read_json(${sql(input.jsonGlob)}, format = 'array', filename = true, columns = {dateTime: 'VARCHAR', value: 'VARCHAR'})),
    p AS (SELECT u, type, timezone('UTC', wall) AS instant, CASE WHEN type = 'distance' THEN v / 100 ELSE v END AS value FROM r)
    SELECT 'fitbit:bench-' || u || ':' || type || ':' || strftime(timezone(${sql(ZONE)}, instant), '%Y-%m-%dT%H:%M:%S') AS id, type, instant AS "timestamp", value,
      CAST(timezone(${sql(ZONE)}, instant) AS DATE) AS date, 'bench-' || u AS "user"
    FROM p
  ) TO ${sql(join(out, 'intraday'))} (FORMAT PARQUET, COMPRESSION SNAPPY, PARTITION_BY (date, "user"))`;
  const { seconds, cpuSeconds } = await timed(() => con.run(job));
  const peak = peakRssMB();
  const rows = Number((await con.runAndReadAll(`SELECT count(*) FROM read_parquet(${sql(join(out, 'intraday', '**', '*.parquet'))})`)).getRowsJson()[0]![0]);
  if (rows !== input.rows) throw new Error(`duckdb wrote ${rows} rows of ${input.rows}`);
  const size = await dataFilesSize(out);
  return { case: name, rows, seconds, cpuSeconds, rowsPerSecond: Math.round(rows / seconds), peakRssMB: peak, startRssMB, outputBytes: size.bytes, files: size.files };
}

const SHAPES: Record<string, { users: number; months: number }> = {
  '1month': { users: 1, months: 1 },
  '1user': { users: 1, months: 12 },
  '10users': { users: 10, months: 12 },
};

async function caseMain(): Promise<void> {
  const name = option('case', '');
  const out = option('out', '');
  const shape = SHAPES[name.replace(/^(ours|duckdb)-/, '')];
  if (!shape || !out) throw new Error('usage: --case ours-1user|ours-10users|ours-1month|duckdb-1user|duckdb-10users --out DIR --input DIR');
  if (name.startsWith('ours') && (await asOnCliThread())) return;
  // The input the orchestrator made (a case never makes it: that would count in its peak RSS,
  // and BUILD_DIR seen from the compiled copy is another folder).
  const input = JSON.parse(await readFile(join(option('input', ''), 'input.json'), 'utf8')) as Input;
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  printResult(name.startsWith('ours') ? await runOurs(name, input, out) : await runDuckdb(name, input, out));
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

async function orchestrate(): Promise<void> {
  const runs = Number(option('runs', '1'));
  const [script] = compile(['bench/takeout.ts', 'sinks/write-worker.ts']);
  const startLoad = round(loadavg()[0]!, 2);
  // Inputs first (in a child each, so that generating them never counts as a case).
  for (const shape of Object.keys(SHAPES)) await ensureInput(shape, SHAPES[shape]!.users, SHAPES[shape]!.months);
  const cases = ['ours-1month', 'ours-1user', 'duckdb-1user', 'ours-10users', 'duckdb-10users'];
  const results = new Map<string, CaseResult[]>();
  for (let run = 0; run < runs; run++) {
    for (const c of cases) {
      const out = join(BUILD_DIR, 'takeout-out', c);
      const r = await runChild<CaseResult>(script!, ['--case', c, '--out', out, '--input', join(INPUT, c.replace(/^(ours|duckdb)-/, ''))]);
      console.log(`${c}: ${r.result.rows.toLocaleString('en-US')} rows, ${round(r.result.seconds, 1)} s, ${r.result.rowsPerSecond.toLocaleString('en-US')} rows/s, peak RSS ${r.result.peakRssMB} MB (load ${r.load.join(' → ')})`);
      results.set(c, [...(results.get(c) ?? []), r.result]);
      await rm(out, { recursive: true, force: true });
    }
  }
  const med = (c: string, k: 'rowsPerSecond' | 'peakRssMB' | 'seconds'): number => median(results.get(c)!.map((r) => r[k]));
  const inputs = Object.fromEntries(await Promise.all(Object.keys(SHAPES).map(async (s) => [s, await ensureInput(s, SHAPES[s]!.users, SHAPES[s]!.months)] as const)));
  const table = cases.map((c) => {
    const shape = c.replace(/^(ours|duckdb)-/, '');
    const duck = c.startsWith('ours') && results.has(`duckdb-${shape}`) ? med(c, 'rowsPerSecond') / med(`duckdb-${shape}`, 'rowsPerSecond') : null;
    return {
      case: c,
      rows: results.get(c)![0]!.rows,
      'archive MB': round(inputs[shape]!.archiveBytes / 1e6, 1),
      'rows/s': Math.round(med(c, 'rowsPerSecond')),
      'vs duckdb': duck === null ? '' : round(duck, 3),
      's wall': round(med(c, 'seconds'), 1),
      'peak RSS MB': med(c, 'peakRssMB'),
    };
  });
  const rss1 = med('ours-1user', 'peakRssMB');
  const rss10 = med('ours-10users', 'peakRssMB');
  const peak = Math.max(...cases.filter((c) => c.startsWith('ours')).map((c) => med(c, 'peakRssMB')));
  const targets = [
    { target: `peak RSS ≤ ${TARGETS.peakRssMB} MB`, measured: peak, met: peak <= TARGETS.peakRssMB },
    { target: `10 users' peak RSS ≤ ${TARGETS.rss10usersVs1user}× one user's`, measured: round(rss10 / rss1, 3), met: rss10 / rss1 <= TARGETS.rss10usersVs1user },
  ];
  const report = { date: new Date().toISOString(), ...machine(), runs, loadAverage: { atStart: startLoad, atEnd: round(loadavg()[0]!, 2) }, results: table, targets };
  console.table(table);
  console.table(targets);
  console.log(`wrote ${await writeResults('takeout', report, runs < 1 || flag('partial'))}`);
}

if (COMPILED && process.argv.includes('--case')) await caseMain();
else await orchestrate();
