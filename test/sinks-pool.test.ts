// One path from buffered rows to a file (sinks/write-partition.ts), run on the calling thread
// (workers: 0) or on the writer thread (workers: 1). Every scenario runs both ways; the files are
// read back by independent readers (hyparquet, apache-arrow) and must hold what a plain model
// of the merge rules says (the newest updatedAt per id wins, a tie goes to the later arrival, a
// row equal but for its stamps changes nothing, createdAt stays the first seen), sorted.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { tableFromIPC } from 'apache-arrow';
import { parquetReadObjects } from 'hyparquet';
import type { ActivityRecord, Dataset, IntradayRecord } from '../lib/schema.js';
import { COLUMNS } from '../lib/schema.js';
import { EtlError } from '../lib/errors.js';
import { createSink, createSinkStats, prepareOutput, SharedWriters } from '../sinks/index.js';
import type { SinkConfig, SinkStats } from '../sinks/index.js';
import { loadCodec } from '../sinks/compression.js';
import { registerArrowZstd } from '../sinks/arrow/encoder.js';
import { sortRows, toColumns } from '../sinks/columns.js';
import type { Row } from '../sinks/columns.js';
import { packTable, transferList, unpackTable } from '../sinks/transfer.js';
import { unpackTables } from '../lib/batch.js';
import { hasDuplicates, sortTable } from '../sinks/partition-table.js';
import { activityRecords, asAsync, intradayRecords } from '../bench/sink-data.js';

type Options = Partial<SinkConfig>;
type Rec = Record<string, unknown> & { date: string; id: string; humanId: string; createdAt: number; updatedAt: number };

async function tmpOut(label: string): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), `sinks-pool-${label}-`));
  await prepareOutput(out);
  return out;
}

interface Step {
  runId: string;
  batches: readonly unknown[][];
  options?: Options;
}

/** The merge rules, applied to every arrival in order: partition → id → the row to keep. */
function model(dataset: Dataset, steps: readonly Step[]): Map<string, Map<string, Rec>> {
  const compared = COLUMNS[dataset].map((c) => c.name).filter((n) => n !== 'createdAt' && n !== 'updatedAt');
  const parts = new Map<string, Map<string, Rec>>();
  for (const step of steps) {
    for (const batch of step.batches) {
      for (const r of batch as Rec[]) {
        const key = `${r.date}|${r.humanId}`;
        const ids = parts.get(key) ?? new Map<string, Rec>();
        parts.set(key, ids);
        const prev = ids.get(r.id);
        if (prev === undefined) ids.set(r.id, r);
        else if (compared.every((n) => (prev[n] ?? null) === (r[n] ?? null))) continue;
        else {
          const winner = r.updatedAt >= prev.updatedAt ? r : prev;
          ids.set(r.id, { ...winner, createdAt: Math.min(prev.createdAt, r.createdAt) });
        }
      }
    }
  }
  return parts;
}

const plain = (v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.getTime() : v === undefined ? null : v);

/** A partition file's rows in file order, as plain values, through hyparquet or apache-arrow. */
async function readBack(path: string): Promise<Record<string, unknown>[]> {
  const bytes = await readFile(path);
  if (path.endsWith('.arrow')) {
    await loadCodec('zstd');
    registerArrowZstd();
    return tableFromIPC(bytes)
      .toArray()
      .map((row: { toJSON(): Record<string, unknown> }) => Object.fromEntries(Object.entries(row.toJSON()).map(([k, v]) => [k, plain(v)])));
  }
  await loadCodec('zstd');
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const { decompressZstd } = await import('../sinks/compression.js');
  const rows = await parquetReadObjects({ file, compressors: { ZSTD: (input: Uint8Array) => decompressZstd(input) } });
  return rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, plain(v)])));
}

/** Order of the files: the dataset's time column, then (intraday) type, then id (ids are unique). */
function compareRows(dataset: Dataset): (x: Record<string, unknown>, y: Record<string, unknown>) => number {
  const keys = dataset === 'intraday' ? ['timestamp', 'type', 'id'] : dataset === 'activities' ? ['startTime', 'id'] : ['id'];
  return (x, y) => {
    for (const k of keys) {
      const a = x[k] as number | string;
      const b = y[k] as number | string;
      if (a !== b) return a < b ? -1 : 1;
    }
    return 0;
  };
}

/** The files at `paths` (one per partition) hold what the model says, in the files' order. */
async function holdsModel(t: ExecutionContext, dataset: Dataset, expected: Map<string, Map<string, Rec>>, out: string, paths: ReadonlySet<string>, label: string): Promise<void> {
  const specs = COLUMNS[dataset];
  t.is(paths.size, expected.size, `${label}: one file per partition`);
  for (const rel of paths) {
    const m = /date=([^/]+)\/user=([^/]+)\//.exec(rel)!;
    const want = expected.get(`${m[1]}|${decodeURIComponent(m[2]!)}`);
    t.truthy(want, `${rel} is a partition of the input`);
    const rows = [...want!.values()].map((e) => Object.fromEntries(specs.map((c) => [c.name, e[c.name] ?? null])));
    // One row per id, the kept version, in the files' order.
    t.deepEqual(await readBack(join(out, rel)), rows.sort(compareRows(dataset)), `${rel} (${label})`);
  }
}

/** Runs the steps with the writer thread off and on; checks both outputs against the model. */
async function both(t: ExecutionContext, dataset: Dataset, steps: readonly Step[], base: Options = {}): Promise<{ stats: SinkStats[][]; outs: string[] }> {
  const expected = model(dataset, steps);
  const allStats: SinkStats[][] = [];
  const outs: string[] = [];
  for (const workers of [0, 1]) {
    const out = await tmpOut(`w${workers}`);
    const stats: SinkStats[] = [];
    const paths = new Set<string>();
    for (const step of steps) {
      const s = createSinkStats();
      const sink = createSink(dataset, { outDir: out, format: 'parquet', runId: step.runId, ...base, ...step.options, stats: s, workers, workerStartRows: 0 });
      const summary = await sink(asAsync(step.batches as never[][]));
      for (const p of summary.paths) paths.add(p);
      stats.push(s);
      t.is(s.threadWrites, workers === 0 ? 0 : s.partitionWrites, `workers ${workers}: the writes ran ${workers === 0 ? 'here' : 'on the writer thread'}`);
    }
    await holdsModel(t, dataset, expected, out, paths, `workers ${workers}`);
    allStats.push(stats);
    outs.push(out);
  }
  return { stats: allStats, outs };
}

function batchesOf<T>(rows: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

const shape = { users: 3, days: 2, points: 1440 };

test('new partitions: what each reader reads is the input, from either thread (parquet snappy, zstd, hyparquet-writer; arrow)', async (t) => {
  const rows = intradayRecords(shape);
  for (const base of [{}, { compression: 'zstd' }, { parquetEngine: 'hyparquet-writer' }, { format: 'arrow' }] as Options[]) {
    const { stats } = await both(t, 'intraday', [{ runId: 'run-1', batches: batchesOf(rows, 1000) }], base);
    t.is(stats[0]![0]!.partitionWrites, shape.users * shape.days);
  }
});

test('rows arriving out of order, and repeated ids within a run, are sorted and merged by the rules', async (t) => {
  const rows = intradayRecords({ users: 2, days: 1, points: 300 });
  const shuffled = [...rows].reverse();
  // Repeats: the same id again, newer (replaces), equal in content (unchanged), older (ignored).
  const repeats: IntradayRecord[] = [
    { ...rows[5]!, value: 999, updatedAt: rows[5]!.updatedAt + 1 },
    { ...rows[6]!, updatedAt: rows[6]!.updatedAt + 5, createdAt: rows[6]!.createdAt + 5 },
    { ...rows[7]!, value: 1, updatedAt: rows[7]!.updatedAt - 1 },
    { ...rows[8]!, value: 2 }, // a tie on updatedAt: the later arrival wins
  ];
  // The first 256 rows of a partition were packed into columns on arrival, the repeats came as rows.
  const { stats } = await both(t, 'intraday', [{ runId: 'run-1', batches: [...batchesOf(shuffled, 64), repeats] }]);
  for (const s of stats) t.true(s[0]!.merge.replaced >= 1);
});

test('re-runs merge with the files already there (aligned and by id)', async (t) => {
  const rows = intradayRecords(shape);
  const changed = rows.map((row, i) => (i % 7 === 0 ? { ...row, value: row.value + 1, updatedAt: row.updatedAt + 1000 } : row));
  const extra = intradayRecords({ ...shape, points: 1500 }).filter((_, i) => i % 1500 >= 1440);
  const { stats } = await both(t, 'intraday', [
    { runId: 'run-1', batches: batchesOf(rows, 2000) },
    { runId: 'run-2', batches: batchesOf(changed, 2000) },
    { runId: 'run-3', batches: batchesOf([...extra, ...changed.slice(0, 500)], 300) },
  ]);
  for (const s of stats) {
    t.is(s[1]!.mergedWithExisting, shape.users * shape.days);
    t.true(s[1]!.merge.replaced > 0);
    t.true(s[2]!.merge.added > 0);
  }
});

test('a partition flushed and fed again in the same run, and activities with nulls and unicode', async (t) => {
  const all = intradayRecords({ users: 2, days: 2, points: 60 });
  const interleaved: IntradayRecord[][] = [];
  for (let i = 0; i < 60; i += 10) for (let p = 0; p < 4; p++) interleaved.push(all.slice(p * 60 + i, p * 60 + i + 10));
  const { stats } = await both(t, 'intraday', [{ runId: 'run-1', batches: interleaved, options: { maxOpenPartitions: 1, highWaterRows: 25 } }]);
  for (const s of stats) t.true(s[0]!.mergedWithExisting > 0);

  const activities = activityRecords();
  await both(t, 'activities', [
    { runId: 'run-1', batches: [activities.slice(0, 2), activities.slice(2)] },
    { runId: 'run-2', batches: [activities.map((x: ActivityRecord) => ({ ...x, calories: null, updatedAt: x.updatedAt + 1 }))] },
  ]);
});

test('a write that fails fails the run with the sink error, on either thread', async (t) => {
  for (const workers of [0, 1]) {
    const out = await tmpOut(`fail${workers}`);
    await writeFile(join(out, 'intraday'), 'not a folder');
    const sink = createSink('intraday', { outDir: out, format: 'parquet', runId: 'run-1', workers, workerStartRows: 0 });
    const err = await t.throwsAsync(sink(asAsync(batchesOf(intradayRecords({ users: 1, days: 1, points: 100 }), 50))));
    t.true(err instanceof EtlError, `workers ${workers}`);
    t.is((err as EtlError).code, 'SINK');
  }
});

test('packTable/unpackTable keep every value, null and string in place', (t) => {
  const specs = COLUMNS.activities;
  const rows = [...activityRecords(), ...activityRecords().map((r) => ({ ...r, id: `${r.id}-2`, timeZone: null, sourceData: '' }))];
  const table = toColumns(specs, rows as unknown as Row[]);
  const expected = toColumns(specs, rows as unknown as Row[]);
  const { packed, transfer } = packTable(table);
  t.true(transfer.length > 0);
  t.deepEqual(unpackTable(structuredClone(packed, { transfer })), expected);
});

test('unpackTables of packed chunks holds what the rows together hold (dictionary and joined chunks, nulls in some)', (t) => {
  const specs = COLUMNS.activities;
  const base = activityRecords() as unknown as Row[];
  // Chunk 1: few distinct strings (dictionary columns); chunk 2: a column packed joined (many
  // distinct timeZone values) and nulls in number columns; chunk 3: one row.
  const chunk1 = base.map((r, i) => ({ ...r, id: `a-${i}` }));
  const chunk2 = Array.from({ length: 200 }, (_, i) => ({ ...base[i % base.length]!, id: `b-${i}`, timeZone: `Zone/${i}`, calories: null, steps: i % 3 ? null : i }));
  const chunk3 = [{ ...base[0]!, id: 'c-0', timeZone: null }];
  const parts = [chunk1, chunk2, chunk3].map((rows) => packTable(toColumns(specs, rows)).packed);
  t.deepEqual(parts.map((p) => (p.columns[8] as { strings: { kind: string } }).strings.kind), ['dict', 'joined', 'dict'], 'timeZone packed both ways');
  const all = [...chunk1, ...chunk2, ...chunk3];
  // As the writer thread gets them: each chunk cloned with its buffers transferred.
  const received = parts.map((p) => structuredClone(p, { transfer: transferList(p) }));
  const table = unpackTables(received);
  t.is(table.rowCount, all.length);
  t.deepEqual(table, toColumns(specs, all));
  const two = [chunk1, chunk3].map((rows) => packTable(toColumns(specs, rows)).packed);
  t.deepEqual(unpackTables(two), toColumns(specs, [...chunk1, ...chunk3]), 'dictionary chunks only');
});

test('hasDuplicates finds a repeated id in both packings; sortTable orders as sortRows does', (t) => {
  const specs = COLUMNS.intraday;
  const rows = intradayRecords({ users: 1, days: 2, points: 50 });
  const columns = (r: readonly IntradayRecord[]) => toColumns(specs, r as unknown as Row[]);
  // Ids as the writer thread reads them: unpacked from either packing.
  const ids = (r: readonly IntradayRecord[], column = 0) => {
    const packed = packTable(columns(r)).packed;
    const values = unpackTable(packed).columns[column]!;
    return { kind: (packed.columns[column] as { strings: { kind: string } }).strings.kind, values: values.type === 'string' ? values.values : [] };
  };
  const unique = ids(rows);
  t.is(unique.kind, 'joined');
  t.false(hasDuplicates(unique.values));
  t.true(hasDuplicates(ids([...rows, rows[17]!]).values));
  const dict = ids(rows, 1); // humanId: one value
  t.is(dict.kind, 'dict');
  t.true(hasDuplicates(dict.values));
  t.false(hasDuplicates(dict.values.slice(0, 1)));
  t.true(hasDuplicates([null, 'a', null]), 'nulls count as values');
  t.false(hasDuplicates([null, 'a', 'b']));

  // Values that differ only far from their end (the hash looks at the end) are told apart too.
  const distinct = Array.from({ length: 500 }, (_, i) => `${String(i).padStart(4, '0')}-the-same-tail-0123456789`);
  t.false(hasDuplicates(distinct));
  t.true(hasDuplicates([...distinct, distinct[250]!]));

  // Shuffled, with ties on timestamp broken by type and id.
  const mixed = rows.flatMap((r, i) => [r, { ...r, id: `${r.id}:b`, type: i % 2 ? 'calories' : 'steps' } as IntradayRecord]);
  const shuffled = mixed.map((r, i) => ({ r, k: (i * 7919) % 101 })).sort((a, b) => a.k - b.k).map((x) => x.r);
  const bySortTable = sortTable('intraday', specs, columns(shuffled));
  t.deepEqual(bySortTable, columns(sortRows('intraday', [...shuffled] as unknown as Row[]) as unknown as IntradayRecord[]));

  // A few ascending runs (a partition's resources one after another, as the API path brings
  // them): merged run by run, in the order sortRows gives. Runs of 1, 2 and 3 resources; 20 runs
  // (past the merge limit) sort whole.
  const asType = (type: IntradayRecord['type'], from: readonly IntradayRecord[]) => from.map((r) => ({ ...r, id: `${r.id}:${type}`, type }));
  const day = rows.slice(0, 50);
  for (const parts of [[asType('steps', day)], [asType('steps', day), asType('calories', day)], [asType('steps', day), asType('calories', day.slice(10, 40)), asType('distance', day.slice(0, 5))], Array.from({ length: 20 }, (_, k) => asType('floors', day.slice(k * 2, k * 2 + 3)))]) {
    const arrival = parts.flat();
    const expected = columns(sortRows('intraday', [...arrival] as unknown as Row[]) as unknown as IntradayRecord[]);
    t.deepEqual(sortTable('intraday', specs, columns(arrival)), expected, `${parts.length} run(s)`);
  }
});

test('sinks of one run one after another: the first one tidying the run\'s temporary folder does not fail the next', async (t) => {
  const out = await tmpOut('tidy');
  for (const workers of [0, 1]) {
    const first = await createSink('activities', { outDir: out, format: 'parquet', runId: `run-${workers}`, workers, workerStartRows: 0 })(asAsync([activityRecords()]));
    const second = await createSink('intraday', { outDir: out, format: 'parquet', runId: `run-${workers}`, workers, workerStartRows: 0 })(asAsync([intradayRecords({ users: 1, days: 1, points: 30 })]));
    t.true(first.files > 0 && second.files === 1, `workers ${workers}`);
  }
});

test('sinks sharing writer threads: a small sink writes on the threads a large one started, and neither stops them', async (t) => {
  const out = await tmpOut('shared');
  const writers = new SharedWriters();
  const large = { dataset: 'intraday' as const, batches: [intradayRecords({ users: 2, days: 2, points: 100 })], stats: createSinkStats() };
  const small = { dataset: 'activities' as const, batches: batchesOf(activityRecords(), 5), stats: createSinkStats() };
  t.is(writers.running, null);
  const common = { outDir: out, format: 'parquet', runId: 'run-1', writers, workers: 1 } as const;
  const largeSummary = await createSink(large.dataset, { ...common, workerStartRows: 0, stats: large.stats })(asAsync(large.batches));
  t.not(writers.running, null, 'the large sink started the threads and left them running');
  // Far below the default 50,000 rows a sink brings before starting threads of its own.
  const smallSummary = await createSink(small.dataset, { ...common, stats: small.stats })(asAsync(small.batches));
  await writers.close();
  for (const [label, { dataset, batches, stats }, summary] of [['large', large, largeSummary], ['small', small, smallSummary]] as const) {
    t.true(stats.partitionWrites > 0, label);
    t.is(stats.threadWrites, stats.partitionWrites, `${label}: every file written on the shared thread`);
    await holdsModel(t, dataset, model(dataset, [{ runId: 'run-1', batches }]), out, new Set(summary.paths), label);
  }
  // Without shared threads the small sink writes here, as before.
  const alone = createSinkStats();
  await createSink(small.dataset, { ...common, writers: undefined, runId: 'run-2', stats: alone })(asAsync(small.batches));
  t.is(alone.threadWrites, 0);
});
