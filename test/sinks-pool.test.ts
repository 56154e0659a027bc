// The sink's writer thread (sinks/pool.ts, write-worker.ts) writes the same files as the
// calling thread: every scenario runs twice, workers 0 and 1, and the outputs must be equal
// byte for byte (same run id, so the same metadata), with the same summaries and stats.
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import test from 'ava';
import type { ActivityRecord, IntradayRecord } from '../lib/schema.js';
import { COLUMNS } from '../lib/schema.js';
import { EtlError } from '../lib/errors.js';
import { createSink, createSinkStats, prepareOutput } from '../sinks/index.js';
import type { SinkConfig, SinkStats } from '../sinks/index.js';
import { sortRows, toColumns } from '../sinks/columns.js';
import type { Row } from '../sinks/columns.js';
import { query } from './duckdb.js';
import { concatPacked, packTable, unpackTable } from '../sinks/transfer.js';
import { hasDuplicates, sortTable } from '../sinks/partition-table.js';
import { activityRecords, asAsync, intradayRecords } from '../bench/sink-data.js';

type Dataset = 'activities' | 'intraday';
type Options = Partial<SinkConfig>;

async function tmpOut(label: string): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), `sinks-pool-${label}-`));
  await prepareOutput(out);
  return out;
}

/** Every file below `dir` (data, manifest, dead letters) by relative path, with its bytes. */
async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  const files = new Map<string, Buffer>();
  for (const e of entries) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    files.set(relative(dir, path), await readFile(path));
  }
  return files;
}

interface Step {
  runId: string;
  batches: readonly unknown[][];
  options?: Options;
}

/** Runs the same steps with the writer thread off and on; returns both outputs' snapshots. */
async function both(dataset: Dataset, steps: readonly Step[], base: Options = {}) {
  const outcome = async (workers: number) => {
    const out = await tmpOut(`w${workers}`);
    const summaries = [];
    const stats: SinkStats[] = [];
    for (const step of steps) {
      const s = createSinkStats();
      const sink = createSink(dataset, { outDir: out, format: 'parquet', runId: step.runId, ...base, ...step.options, stats: s, workers, workerStartRows: 0 });
      summaries.push(await sink(asAsync(step.batches as never[][])));
      stats.push(s);
    }
    return { out, summaries, stats, files: await snapshot(out) };
  };
  return { calling: await outcome(0), pooled: await outcome(1) };
}

function sameOutput(t: import('ava').ExecutionContext, r: Awaited<ReturnType<typeof both>>): void {
  t.deepEqual([...r.pooled.files.keys()].sort(), [...r.calling.files.keys()].sort(), 'same files');
  for (const [path, bytes] of r.calling.files) {
    const other = r.pooled.files.get(path)!;
    if (path.endsWith('_manifest.json')) {
      // The manifest says when it was written; everything else in it must agree.
      const strip = (b: Buffer): unknown => ({ ...(JSON.parse(b.toString('utf8')) as object), updatedAt: null });
      t.deepEqual(strip(other), strip(bytes), path);
    } else t.true(bytes.equals(other), `${path} is byte-identical`);
  }
  t.deepEqual(r.pooled.summaries, r.calling.summaries);
  t.deepEqual(
    r.pooled.stats.map((s) => ({ ...s, maxBufferedRows: 0, threadWrites: 0 })),
    r.calling.stats.map((s) => ({ ...s, maxBufferedRows: 0 })),
  );
  // The writer thread did write them (and the calling thread the others).
  t.deepEqual(
    r.pooled.stats.map((s) => s.threadWrites),
    r.pooled.stats.map((s) => s.partitionWrites),
  );
  t.true(r.calling.stats.every((s) => s.threadWrites === 0));
}

function batchesOf<T>(rows: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

const shape = { users: 3, days: 2, points: 1440 };

test('new partitions: the same bytes from the writer thread (parquet fast/snappy, zstd, parquetjs; arrow)', async (t) => {
  const rows = intradayRecords(shape);
  for (const base of [{}, { compression: 'zstd' }, { parquetEngine: 'parquetjs' }, { format: 'arrow' }] as Options[]) {
    const r = await both('intraday', [{ runId: 'run-1', batches: batchesOf(rows, 1000) }], base);
    t.is(r.calling.summaries[0]!.files, shape.users * shape.days);
    sameOutput(t, r);
  }
});

test('rows arriving out of order, and repeated ids within a run, are sorted and merged the same way', async (t) => {
  const rows = intradayRecords({ users: 2, days: 1, points: 300 });
  const shuffled = [...rows].reverse();
  // Repeats: the same id again, newer (replaces), equal in content (unchanged), older (ignored).
  const repeats: IntradayRecord[] = [
    { ...rows[5]!, value: 999, updatedAt: rows[5]!.updatedAt + 1 },
    { ...rows[6]!, updatedAt: rows[6]!.updatedAt + 5, createdAt: rows[6]!.createdAt + 5 },
    { ...rows[7]!, value: 1, updatedAt: rows[7]!.updatedAt - 1 },
    { ...rows[8]!, value: 2 }, // a tie on updatedAt: the later arrival wins
  ];
  const r = await both('intraday', [{ runId: 'run-1', batches: [...batchesOf(shuffled, 64), repeats] }]);
  sameOutput(t, r);
  t.true(r.calling.stats[0]!.merge.replaced >= 1);
  // The first 256 rows of a partition were packed into columns on arrival, the repeats came as
  // rows: read back by DuckDB, each id once, the newest version (on a tie, the later arrival).
  const got = await query(`SELECT id, value, createdAt FROM read_parquet('${r.pooled.out}/intraday/**/*.parquet') ORDER BY id`);
  t.is(got.length, rows.length);
  const byId = new Map(got.map((g) => [g['id'], g]));
  t.is(Number(byId.get(rows[5]!.id)!['value']), 999);
  t.is(new Date(String(byId.get(rows[6]!.id)!['createdAt'])).getTime(), rows[6]!.createdAt, 'equal but for the stamps: the older createdAt is kept');
  t.is(Number(byId.get(rows[7]!.id)!['value']), rows[7]!.value);
  t.is(Number(byId.get(rows[8]!.id)!['value']), 2);
});

test('re-runs merge with the files already there (aligned and by id), in the same way', async (t) => {
  const rows = intradayRecords(shape);
  const changed = rows.map((row, i) => (i % 7 === 0 ? { ...row, value: row.value + 1, updatedAt: row.updatedAt + 1000 } : row));
  const extra = intradayRecords({ ...shape, points: 1500 }).filter((_, i) => i % 1500 >= 1440);
  const r = await both('intraday', [
    { runId: 'run-1', batches: batchesOf(rows, 2000) },
    { runId: 'run-2', batches: batchesOf(changed, 2000) },
    { runId: 'run-3', batches: batchesOf([...extra, ...changed.slice(0, 500)], 300) },
  ]);
  sameOutput(t, r);
  t.is(r.calling.stats[1]!.mergedWithExisting, shape.users * shape.days);
  t.true(r.calling.stats[1]!.merge.replaced > 0);
  t.true(r.calling.stats[2]!.merge.added > 0);
});

test('a partition flushed and fed again in the same run, and activities with nulls and unicode, come out the same', async (t) => {
  const all = intradayRecords({ users: 2, days: 2, points: 60 });
  const interleaved: IntradayRecord[][] = [];
  for (let i = 0; i < 60; i += 10) for (let p = 0; p < 4; p++) interleaved.push(all.slice(p * 60 + i, p * 60 + i + 10));
  const r = await both('intraday', [{ runId: 'run-1', batches: interleaved, options: { maxOpenPartitions: 1, highWaterRows: 25 } }]);
  sameOutput(t, r);
  t.true(r.calling.stats[0]!.mergedWithExisting > 0);

  const activities = activityRecords();
  const a = await both('activities', [
    { runId: 'run-1', batches: [activities.slice(0, 2), activities.slice(2)] },
    { runId: 'run-2', batches: [activities.map((x: ActivityRecord) => ({ ...x, calories: null, updatedAt: x.updatedAt + 1 }))] },
  ]);
  sameOutput(t, a);
  // And an independent reader agrees on what the writer thread wrote.
  const rows = await query(`SELECT count(*) AS n, count(calories) AS c FROM read_parquet('${a.pooled.out}/activities/**/*.parquet')`);
  t.deepEqual(rows, [{ n: String(activities.length), c: '0' }]);
});

test('a write that fails on the writer thread fails the run with the sink error, as on the calling thread', async (t) => {
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

test('concatPacked of packed chunks holds what packing the rows together holds (dictionary and joined chunks, nulls in some)', (t) => {
  const specs = COLUMNS.activities;
  const base = activityRecords() as unknown as Row[];
  // Chunk 1: few distinct strings (dictionary columns); chunk 2: a column packed joined (many
  // distinct timeZone values) and nulls in number columns; chunk 3: one row.
  const chunk1 = base.map((r, i) => ({ ...r, id: `a-${i}` }));
  const chunk2 = Array.from({ length: 200 }, (_, i) => ({ ...base[i % base.length]!, id: `b-${i}`, timeZone: `Zone/${i}`, calories: null, steps: i % 3 ? null : i }));
  const chunk3 = [{ ...base[0]!, id: 'c-0', timeZone: null }];
  const parts = [chunk1, chunk2, chunk3].map((rows) => packTable(toColumns(specs, rows)).packed);
  t.deepEqual(parts.map((p) => (p.columns[8] as { strings: { kind: string } }).strings.kind), ['dict', 'joined', 'dict'], 'timeZone packed both ways');
  const { packed, transfer } = concatPacked(parts);
  const all = [...chunk1, ...chunk2, ...chunk3];
  t.is(packed.rowCount, all.length);
  t.deepEqual(unpackTable(structuredClone(packed, { transfer })), toColumns(specs, all));
  t.deepEqual(unpackTable(concatPacked([parts[0]!, parts[2]!]).packed), toColumns(specs, [...chunk1, ...chunk3]), 'dictionary chunks only');
});

test('hasDuplicates finds a repeated id in both packings; sortTable orders as sortRows does', (t) => {
  const specs = COLUMNS.intraday;
  const rows = intradayRecords({ users: 1, days: 2, points: 50 });
  const columns = (r: readonly IntradayRecord[]) => toColumns(specs, r as unknown as Row[]);
  const ids = (r: readonly IntradayRecord[]) => packTable(columns(r)).packed.columns[0]!;
  const unique = ids(rows);
  const repeated = ids([...rows, rows[17]!]);
  t.true(unique.type === 'string' && unique.strings.kind === 'joined');
  if (unique.type === 'string') t.false(hasDuplicates(unique.strings, rows.length));
  if (repeated.type === 'string') t.true(hasDuplicates(repeated.strings, rows.length + 1));
  const dict = packTable(columns(rows)).packed.columns[1]!; // humanId: one value
  if (dict.type === 'string') {
    t.is(dict.strings.kind, 'dict');
    t.true(hasDuplicates(dict.strings, rows.length));
    t.false(hasDuplicates(dict.strings, 1));
  }

  // Values that differ only far from their end (the hash looks at the end) are told apart too.
  const early = (values: string[]) => packTable({ rowCount: values.length, columns: [{ type: 'string', values }] }).packed.columns[0]!;
  const distinct = Array.from({ length: 500 }, (_, i) => `${String(i).padStart(4, '0')}-the-same-tail-0123456789`);
  const e1 = early(distinct);
  const e2 = early([...distinct, distinct[250]!]);
  if (e1.type === 'string') t.false(hasDuplicates(e1.strings, distinct.length));
  if (e2.type === 'string') t.true(hasDuplicates(e2.strings, distinct.length + 1));

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
