// A partition's columns (normalizeIntradayColumns → the sink) write the same files as the same
// rows sent as records (normalizeIntraday → the sink): byte for byte, on the calling thread and
// on the writer thread, through flushes, merges and re-runs. Rows the sink cannot take reach
// the dead letters as the records would.
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { EtlError } from '../lib/errors.js';
import { COLUMNS } from '../lib/schema.js';
import type { IntradayRecord } from '../lib/schema.js';
import type { PartitionColumns, SinkBatch } from '../lib/sink.js';
import { createSink, createSinkStats, prepareOutput } from '../sinks/index.js';
import type { SinkConfig, SinkStats } from '../sinks/index.js';
import type { NumberColumn } from '../sinks/columns.js';
import type { PackedColumn, PackedStrings } from '../sinks/transfer.js';
import { checkIntradayPoints } from '../sources/fitbit/index.js';
import type { FitbitUserContext, IntradayDay, IntradayPoint } from '../sources/fitbit/types.js';
import { normalizeIntraday, normalizeIntradayColumns } from '../transforms/intraday.js';
import { asAsync } from '../bench/sink-data.js';
import { query } from './duckdb.js';

const SEEN_AT = Date.UTC(2026, 10, 1, 12);

function user(humanId: string, timeZone: string): FitbitUserContext {
  return { userId: `U-${humanId}`, humanId, timeZone, profileUnits: 'metric', profile: { timezone: timeZone, offsetFromUTCMillis: 0 } };
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function points(step: number, value: (i: number) => number | string, extra: (i: number) => Partial<IntradayPoint> = () => ({})): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (let m = 0, i = 0; m < 1440; m += step, i++) out.push({ time: `${pad(Math.floor(m / 60))}:${pad(m % 60)}:00`, value: value(i), ...extra(i) }); // strings as the API sends some
  return out;
}

/** A day as the source hands it on: its points checked there (a bad one is rejected, the rest go on). */
function day(resource: IntradayDay['resource'], date: string, dataset: unknown[], units: IntradayDay['units'] = 'metric'): IntradayDay {
  const { points, rejected } = checkIntradayPoints(dataset);
  return { resource, date, detail: '1min', datasetInterval: 1, datasetType: 'minute', dataset: points, rejected, units };
}

/** Answers as a pipeline sees them: several users, resources on one partition, DST days, bad points. */
function answers(): { day: IntradayDay; user: FitbitUserContext }[] {
  const la = user('h-la', 'America/Los_Angeles');
  const london = user('h/lon don', 'Europe/London');
  const repeated = points(1, (i) => i % 11);
  // The fall-back day with the repeated hour twice (01:00–01:59 again after 01:59).
  const fallBack = [...repeated.slice(0, 120), ...repeated.slice(60, 120).map((p) => ({ ...p, value: 100 })), ...repeated.slice(120)];
  const bad = points(1, (i) => i);
  bad[10] = { time: '25:00:00', value: 1 };
  bad[11] = { time: '00:11:00', value: 'lots' };
  bad[12] = { time: '00:05:00', value: 1 }; // a repeat outside a repeated hour
  return [
    { day: day('steps', '2016-11-06', fallBack), user: la },
    { day: day('steps', '2016-03-13', points(1, (i) => i % 13)), user: la },
    { day: day('calories', '2016-03-13', points(1, (i) => 1 + i / 100, (i) => (i % 3 === 0 ? {} : { level: i % 4, mets: 10 + (i % 5) }))), user: la },
    { day: day('distance', '2016-07-01', points(15, (i) => String(i / 1000)), 'en_US'), user: la },
    { day: day('steps', '2016-07-01', bad), user: london },
    { day: day('calories', '2016-07-01', points(1, () => 1.2)), user: london }, // flat BMR: estimated
    { day: day('floors', '2016-10-30', points(5, (i) => i % 2)), user: london },
  ];
}

interface Normalized {
  rows: IntradayRecord[][];
  columns: PartitionColumns[];
  deadLetters: number;
}

function normalizeAll(list: ReturnType<typeof answers>): Normalized {
  const out: Normalized = { rows: [], columns: [], deadLetters: 0 };
  for (const { day: d, user: u } of list) {
    const r = normalizeIntraday(d, u, SEEN_AT);
    const c = normalizeIntradayColumns(d, u, SEEN_AT);
    if (r.records.length > 0) out.rows.push(r.records);
    if (c.columns !== null) out.columns.push(c.columns);
    out.deadLetters += c.deadLetters.length;
  }
  return out;
}

async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) files.set(relative(dir, join(e.parentPath, e.name)), await readFile(join(e.parentPath, e.name)));
  }
  return files;
}

interface Outcome {
  out: string;
  summaries: unknown[];
  stats: SinkStats[];
  files: Map<string, Buffer>;
}

/** Runs one sink run per step into a fresh output folder. */
async function runSteps(label: string, steps: readonly (readonly SinkBatch<'intraday'>[])[], options: Partial<SinkConfig>): Promise<Outcome> {
  const out = await mkdtemp(join(tmpdir(), `sinks-columns-${label}-`));
  await prepareOutput(out);
  const summaries: unknown[] = [];
  const stats: SinkStats[] = [];
  for (const [k, batches] of steps.entries()) {
    const s = createSinkStats();
    const sink = createSink('intraday', { outDir: out, format: 'parquet', runId: `run-${k + 1}`, ...options, stats: s });
    summaries.push(await sink(asAsync(batches)));
    stats.push(s);
  }
  return { out, summaries, stats, files: await snapshot(out) };
}

function sameFiles(t: ExecutionContext, a: Outcome, b: Outcome): void {
  t.deepEqual([...b.files.keys()].sort(), [...a.files.keys()].sort(), 'same files');
  for (const [path, bytes] of a.files) {
    const other = b.files.get(path)!;
    if (path.endsWith('_manifest.json')) {
      const strip = (x: Buffer): unknown => ({ ...(JSON.parse(x.toString('utf8')) as object), updatedAt: null });
      t.deepEqual(strip(other), strip(bytes), path);
    } else t.true(bytes.equals(other), `${path} is byte-identical`);
  }
  t.deepEqual(b.summaries, a.summaries);
}

const VARIANTS: { label: string; options: Partial<SinkConfig> }[] = [
  { label: 'calling thread', options: { workers: 0 } },
  { label: 'writer thread', options: { workers: 1, workerStartRows: 0 } },
  { label: 'flushed mid-run', options: { workers: 1, workerStartRows: 0, highWaterRows: 2000, maxOpenPartitions: 2 } },
  { label: 'arrow', options: { format: 'arrow', workers: 0 } },
];

for (const { label, options } of VARIANTS) {
  test(`a partition's columns write the same files as its records (${label})`, async (t) => {
    const first = normalizeAll(answers());
    // A second run re-fetches two of the days with changed values: merged with the files.
    const again = answers().filter((_, i) => i === 0 || i === 4);
    for (const a of again) a.day = { ...a.day, dataset: a.day.dataset.map((p) => ({ ...p, value: typeof p.value === 'number' ? p.value + 1 : p.value })) };
    const second = normalizeAll(again);
    const rows = await runSteps('rows', [first.rows, second.rows], options);
    const columns = await runSteps('columns', [first.columns, second.columns], options);
    sameFiles(t, rows, columns);
    // A partition's columns come whole, so the buffers are flushed before them, not within:
    // how many are open at once may differ.
    t.deepEqual(
      columns.stats.map((s) => ({ ...s, maxBufferedRows: 0, maxOpenPartitions: 0 })),
      rows.stats.map((s) => ({ ...s, maxBufferedRows: 0, maxOpenPartitions: 0 })),
    );
    t.true(columns.stats.every((s) => s.maxOpenPartitions <= (options.maxOpenPartitions ?? 256)));
    if (options.highWaterRows !== undefined) {
      t.true(columns.stats[0]!.partitionWrites > columns.files.size - 2, 'partitions were flushed more than once');
      t.true(columns.stats.every((s) => s.maxBufferedRows <= options.highWaterRows! + 1440), 'buffered rows stay near the high-water mark');
    }
    t.true(first.deadLetters >= 3, 'the bad points were dead letters');

    // An independent reader sees every row the normalizer kept, once.
    const ext = options.format === 'arrow' ? null : 'parquet';
    if (ext !== null) {
      const expected = new Set(first.rows.flat().map((r) => `${r.date}|${r.humanId}|${r.id}`)).size;
      const [got] = await query(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet('${columns.out}/intraday/**/*.parquet', hive_partitioning=true)`);
      t.deepEqual(got, { n: String(expected), ids: String(expected) });
    }
  });
}

test('records and columns of the same partition in one run land together, in arrival order', async (t) => {
  const { rows, columns } = normalizeAll(answers().slice(1, 3)); // steps and calories, one partition
  // The same ids first as records with other values, then as columns, with the same
  // updatedAt: the later arrival wins, so the columns' values must be the ones kept.
  const earlier = rows[0]!.slice(0, 100).map((r) => ({ ...r, value: r.value + 1000 }));
  const a = await runSteps('mixed-rows', [[earlier, rows[1]!, rows[0]!]], { workers: 0 });
  const b = await runSteps('mixed', [[earlier, columns[1]!, columns[0]!]], { workers: 0 });
  sameFiles(t, a, b);
  const [got] = await query(`SELECT count(*) AS n, max(value) AS top FROM read_parquet('${b.out}/intraday/**/*.parquet') WHERE type = 'steps'`);
  t.deepEqual(got, { n: String(rows[0]!.length), top: Math.max(...rows[0]!.map((r) => r.value)) });
});

function replaceColumn(part: PartitionColumns, name: string, column: PackedColumn): PartitionColumns {
  const at = COLUMNS.intraday.findIndex((s) => s.name === name);
  const columns = part.table.columns.map((c, i) => (i === at ? column : c));
  return { ...part, table: { ...part.table, columns } };
}

test('columns with values that do not fit, or a partition that cannot be named, reach the dead letters as records would', async (t) => {
  const base = normalizeAll(answers().slice(3, 4)).columns[0]!; // 96 rows of distance
  const n = base.table.rowCount;
  const timestamps = (base.table.columns[5] as NumberColumn).values.slice();
  timestamps[3] = timestamps[3]! + 0.5;
  const ids = base.table.columns[0]! as Extract<PackedColumn, { type: 'string' }>;
  const joined = ids.strings as Extract<PackedStrings, { kind: 'joined' }>;
  const idLengths = joined.lengths.slice();
  const idText = joined.text;
  const cut = idLengths[0]!;
  idLengths[0] = -1; // the first id missing
  const badValues = replaceColumn(
    replaceColumn(base, 'timestamp', { type: 'timestamp', values: timestamps, valid: null }),
    'id',
    { type: 'string', strings: { kind: 'joined', text: idText.slice(cut), lengths: idLengths } },
  );
  const badDate: PartitionColumns = { ...normalizeAll(answers().slice(3, 4)).columns[0]!, date: '2016-02-30' };
  const badUser = replaceColumn({ ...normalizeAll(answers().slice(3, 4)).columns[0]!, humanId: 'a\u0000b' }, 'humanId', {
    type: 'string',
    strings: { kind: 'dict', dict: ['a\u0000b'], index: new Int32Array(n) },
  });
  // Says one user, holds another: each row goes where its own humanId says, as a record would.
  const otherUser: PartitionColumns = { ...normalizeAll(answers().slice(3, 4)).columns[0]!, humanId: 'h-other' };
  // The records these columns stand for: normalizeIntraday's, whose values test/transforms-intraday
  // checks against DuckDB (they are read from the same columns, with the same packedRecords the
  // sink's fallback uses, so this test checks the sink's paths, not that reading).
  const asRows = (p: PartitionColumns): Record<string, unknown>[] =>
    normalizeAll(answers().slice(3, 4)).rows[0]!.map((r) => ({ ...r, date: p.date, humanId: p.humanId }));
  const badValueRecords = normalizeAll(answers().slice(3, 4)).rows[0]!.map((r, i) => (i === 0 ? { ...r, id: null } : i === 3 ? { ...r, timestamp: r.timestamp + 0.5 } : r));

  const fromColumns = await runSteps('bad-columns', [[badValues, badDate, badUser, otherUser]], { workers: 0 });
  const fromRecords = await runSteps('bad-rows', [[badValueRecords as never[], asRows(badDate) as never[], asRows(badUser) as never[], asRows(base) as never[]]], { workers: 0 });
  sameFiles(t, fromRecords, fromColumns);
  const summary = fromColumns.summaries[0] as { rows: number; deadLetters: number };
  t.is(summary.rows, n, 'the good rows of badValues merged with otherUser\'s (the same ids)');
  t.is(summary.deadLetters, 2 + 2 * n);
  const letters = (await readFile(join(fromColumns.out, '_dead_letter/intraday/run-1.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { reason: string });
  t.true(letters.some((l) => /column id is required/.test(l.reason)));
  t.true(letters.some((l) => /column timestamp must be an integer/.test(l.reason)));
});

test('columns that do not have the schema\'s shape fail the run, naming the column', async (t) => {
  const base = normalizeAll(answers().slice(3, 4)).columns[0]!;
  const shortValues = replaceColumn(base, 'value', { type: 'double', values: new Float64Array(3), valid: null });
  const wrongKind = replaceColumn(base, 'interval', { type: 'double', values: new Float64Array(base.table.rowCount), valid: null });
  for (const [bad, says] of [
    [shortValues, /column value is shorter than 96 rows/],
    [wrongKind, /column interval is double, the schema says int32/],
  ] as const) {
    const out = await mkdtemp(join(tmpdir(), 'sinks-columns-shape-'));
    const sink = createSink('intraday', { outDir: out, format: 'parquet', runId: 'run-1', workers: 0 });
    const err = await t.throwsAsync(sink(asAsync([bad])));
    t.true(err instanceof EtlError);
    t.is((err as EtlError).code, 'SINK');
    t.regex(err!.message, says);
    t.regex(err!.message, /2016-07-01 \/ h-la/);
  }
  // Neither records nor a partition's columns.
  const out = await mkdtemp(join(tmpdir(), 'sinks-columns-shape-'));
  const sink = createSink('intraday', { outDir: out, format: 'parquet', runId: 'run-1', workers: 0 });
  const err = await t.throwsAsync(sink(asAsync([{ kind: 'rows', rows: [] } as unknown as PartitionColumns])));
  t.is((err as EtlError).code, 'SINK');
  t.regex(err!.message, /must be an array of records or one partition's columns/);
});
