// Parquet sink: files read back whole by DuckDB and by hyparquet (two independent readers).
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import test from 'ava';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import type { ActivityRecord, ColumnType, IntradayRecord } from '../lib/schema.js';
import { COLUMNS, SCHEMA_VERSION } from '../lib/schema.js';
import type { Compression } from '../lib/sink.js';
import { createSink, createSinkStats, prepareOutput, readManifest } from '../sinks/index.js';
import type { ParquetEngine, SinkConfig } from '../sinks/index.js';
import { activityRecords, asAsync, intradayRecords } from '../bench/sink-data.js';
import { query } from './duckdb.js';

async function tmpOut(): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), 'sinks-parquet-'));
  await prepareOutput(out);
  return out;
}

async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

function run(dataset: 'activities' | 'intraday', options: Partial<SinkConfig> & { outDir: string }, batches: readonly unknown[][]) {
  const sink = createSink(dataset, { format: 'parquet', runId: 'run-1', ...options });
  return sink(asAsync(batches as never[][]));
}

const DUCKDB_TYPE: Record<ColumnType, string> = {
  string: 'VARCHAR',
  timestamp: 'TIMESTAMP WITH TIME ZONE',
  double: 'DOUBLE',
  int64: 'BIGINT',
  int32: 'INTEGER',
  boolean: 'BOOLEAN',
};

const ENGINES: ParquetEngine[] = ['fast', 'hyparquet-writer'];
const COMPRESSIONS: Compression[] = ['snappy', 'zstd', 'none'];

for (const engine of ENGINES) {
  for (const compression of COMPRESSIONS) {
    test(`activities round-trip through DuckDB: types, values, nulls, partitions (${engine}, ${compression})`, async (t) => {
      const out = await tmpOut();
      const input = activityRecords();
      const summary = await run('activities', { outDir: out, compression, parquetEngine: engine }, [input.slice(0, 2), input.slice(2)]);
      t.is(summary.rowsIn, input.length);
      t.is(summary.rows, input.length);
      t.is(summary.deadLetters, 0);
      t.is(summary.partitions, new Set(input.map((r) => `${r.date}/${r.humanId}`)).size);

      const glob = `${out}/activities/**/*.parquet`;
      const described = await query(`DESCRIBE SELECT * FROM read_parquet('${glob}', hive_partitioning=true)`);
      const types = Object.fromEntries(described.map((r) => [r['column_name'], r['column_type']]));
      for (const spec of COLUMNS.activities) t.is(types[spec.name], DUCKDB_TYPE[spec.type], spec.name);
      t.truthy(types['date'], 'date comes from the path');
      t.truthy(types['user'], 'user comes from the path');

      const rows = await query(`
        SELECT id, humanId, userId, source, type, tzOffset, timeZone, duration, distance, calories, pace, speed, sourceData,
               CAST(steps AS VARCHAR) AS steps,
               CAST(epoch_ms(startTime) AS VARCHAR) AS startTime, CAST(epoch_ms(endTime) AS VARCHAR) AS endTime,
               CAST(epoch_ms(createdAt) AS VARCHAR) AS createdAt, CAST(epoch_ms(updatedAt) AS VARCHAR) AS updatedAt,
               CAST(date AS VARCHAR) AS date, CAST("user" AS VARCHAR) AS "user"
        FROM read_parquet('${glob}', hive_partitioning=true) ORDER BY id`);
      const expected = [...input].sort((a, b) => (a.id < b.id ? -1 : 1));
      t.is(rows.length, expected.length);
      rows.forEach((row, i) => {
        const e = expected[i]!;
        t.deepEqual(row, {
          id: e.id,
          humanId: e.humanId,
          userId: e.userId,
          source: e.source,
          type: e.type,
          tzOffset: e.tzOffset,
          timeZone: e.timeZone,
          duration: e.duration,
          distance: e.distance,
          calories: e.calories,
          pace: e.pace,
          speed: e.speed,
          sourceData: e.sourceData,
          steps: e.steps === null ? null : String(e.steps),
          startTime: String(e.startTime),
          endTime: String(e.endTime),
          createdAt: String(e.createdAt),
          updatedAt: String(e.updatedAt),
          date: e.date,
          user: e.humanId,
        });
      });
    });
  }
}

for (const engine of ENGINES) {
  test(`hyparquet reads the logical types, values and metadata (${engine})`, async (t) => {
    const out = await tmpOut();
    const input = activityRecords();
    const summary = await run('activities', { outDir: out, parquetEngine: engine, runId: 'run-hy' }, [input]);
    let seen = 0;
    for (const path of summary.paths) {
      const bytes = await readFile(join(out, path));
      const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      const meta = parquetMetadata(file);
      const byName = new Map(meta.schema.slice(1).map((el) => [el.name, el]));
      for (const spec of COLUMNS.activities) {
        const el = byName.get(spec.name)!;
        t.is(el.repetition_type, spec.nullable ? 'OPTIONAL' : 'REQUIRED', spec.name);
        if (spec.type === 'timestamp') {
          t.deepEqual(el.logical_type, { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' }, spec.name);
          t.is(el.converted_type, 'TIMESTAMP_MILLIS');
          t.is(el.type, 'INT64');
        }
        if (spec.type === 'string') t.deepEqual(el.logical_type, { type: 'STRING' }, spec.name);
        if (spec.type === 'int64') t.is(el.type, 'INT64');
      }
      const kv = new Map((meta.key_value_metadata ?? []).map((e) => [e.key, e.value]));
      t.is(kv.get('wearable-etl.schema_version'), String(SCHEMA_VERSION));
      t.is(kv.get('wearable-etl.run_id'), 'run-hy');
      const units = JSON.parse(kv.get('wearable-etl.units') ?? '{}') as Record<string, string>;
      for (const spec of COLUMNS.activities) t.is(units[spec.name] ?? "none", spec.unit ?? "none", `unit of ${spec.name}`);

      const rows = await parquetReadObjects({ file });
      for (const row of rows) {
        const e = input.find((r) => r.id === row['id'])!;
        t.truthy(e, `row ${String(row['id'])} was written`);
        t.true(row['startTime'] instanceof Date);
        t.is((row['startTime'] as Date).getTime(), e.startTime);
        t.is((row['updatedAt'] as Date).getTime(), e.updatedAt);
        t.is(row['steps'] ?? null, e.steps === null ? null : BigInt(e.steps));
        t.is(row['distance'] ?? null, e.distance);
        t.is(row['timeZone'] ?? null, e.timeZone);
        t.is(row['sourceData'], e.sourceData);
        seen++;
      }
    }
    t.is(seen, input.length);
  });
}

async function partitionChecksums(out: string, dataset: string): Promise<Record<string, unknown>[]> {
  return query(`
    SELECT CAST(date AS VARCHAR) AS d, CAST("user" AS VARCHAR) AS u, count(*) AS n, count(DISTINCT id) AS ids,
           md5(string_agg(CAST(t AS VARCHAR), '|' ORDER BY id)) AS checksum
    FROM read_parquet('${out}/${dataset}/**/*.parquet', hive_partitioning=true) t
    GROUP BY ALL ORDER BY ALL`);
}

test('re-running the same window gives the same rows, never duplicates', async (t) => {
  const out = await tmpOut();
  const shape = { users: 3, days: 2, points: 120 };
  const first = await run('intraday', { outDir: out, runId: 'run-1' }, [...intradayRecordsInBatches(shape, 97)]);
  const before = await partitionChecksums(out, 'intraday');
  const files = (await walk(join(out, 'intraday'))).sort();
  const stats = createSinkStats();
  const second = await run('intraday', { outDir: out, runId: 'run-2', stats }, [...intradayRecordsInBatches(shape, 50)]);
  const after = await partitionChecksums(out, 'intraday');
  t.deepEqual(after, before);
  t.is(before.length, 6);
  for (const p of after) t.is(Number(p['n']), Number(p['ids']));
  t.is(after.reduce((sum, p) => sum + Number(p['n']), 0), shape.users * shape.days * shape.points);
  t.deepEqual((await walk(join(out, 'intraday'))).sort(), files);
  t.is(second.rows, first.rows);
  t.is(stats.merge.unchanged, shape.users * shape.days * shape.points, 'every re-fetched row matched the stored one');
  t.is(stats.mergedWithExisting, 6);
});

function* intradayRecordsInBatches(shape: { users: number; days: number; points: number }, size: number): Generator<IntradayRecord[]> {
  const all = intradayRecords(shape);
  for (let i = 0; i < all.length; i += size) yield all.slice(i, i + size);
}

test('a re-fetch with updated activities keeps one row per id: the newest, with the older createdAt', async (t) => {
  const out = await tmpOut();
  const original = activityRecords().filter((r) => r.humanId === 'h-1' && r.date === '2024-05-06');
  t.true(original.length >= 3);
  await run('activities', { outDir: out, runId: 'run-1' }, [original]);
  const [a, b, c] = original as [ActivityRecord, ActivityRecord, ActivityRecord];
  const later = 1_800_000_000_000;
  const refetch: ActivityRecord[] = [
    // edited at the source: newer updatedAt, new distance, and a createdAt the source moved forward
    { ...a, distance: 6000, updatedAt: later, createdAt: later },
    // same content, only timestamps moved: the stored row stays as it was
    { ...b, updatedAt: later, createdAt: later },
    // an older version of c (stale cache upstream): the stored row wins
    { ...c, calories: 1, updatedAt: c.updatedAt - 1000 },
    // new
    { ...a, id: 'fitbit-new', startTime: a.startTime + 60_000, updatedAt: later, createdAt: later },
  ];
  const summary = await run('activities', { outDir: out, runId: 'run-2' }, [refetch]);
  t.is(summary.rows, original.length + 1);
  const rows = await query(`
    SELECT id, distance, calories, CAST(epoch_ms(createdAt) AS VARCHAR) AS createdAt, CAST(epoch_ms(updatedAt) AS VARCHAR) AS updatedAt
    FROM read_parquet('${out}/activities/**/*.parquet') ORDER BY id`);
  const byId = new Map(rows.map((r) => [r['id'], r]));
  t.is(rows.length, original.length + 1);
  t.deepEqual(byId.get(a.id), { id: a.id, distance: 6000, calories: a.calories, createdAt: String(a.createdAt), updatedAt: String(later) });
  t.deepEqual(byId.get(b.id), { id: b.id, distance: b.distance, calories: b.calories, createdAt: String(b.createdAt), updatedAt: String(b.updatedAt) });
  t.deepEqual(byId.get(c.id), { id: c.id, distance: c.distance, calories: c.calories, createdAt: String(c.createdAt), updatedAt: String(c.updatedAt) });
  t.is(byId.get('fitbit-new')?.['createdAt'], String(later));
});

test('a partition flushed and fed again in the same run is merged with what was flushed', async (t) => {
  const out = await tmpOut();
  const all = intradayRecords({ users: 2, days: 2, points: 60 });
  // Interleave the four partitions so each is flushed (1 open partition at most) and fed again.
  const batches: IntradayRecord[][] = [];
  for (let i = 0; i < 60; i += 10) {
    for (let p = 0; p < 4; p++) batches.push(all.slice(p * 60 + i, p * 60 + i + 10));
  }
  const stats = createSinkStats();
  const summary = await run('intraday', { outDir: out, maxOpenPartitions: 1, highWaterRows: 25, stats }, batches);
  t.is(summary.rows, all.length);
  t.is(summary.partitions, 4);
  t.true(stats.mergedWithExisting > 0);
  t.true(stats.partitionWrites > 4);
  const sums = await partitionChecksums(out, 'intraday');
  t.is(sums.length, 4);
  for (const p of sums) {
    t.is(Number(p['n']), 60);
    t.is(Number(p['ids']), 60);
  }
  // Rows in a file are sorted by timestamp whatever order they came in.
  const ordered = await query(`SELECT bool_and(ok) AS sorted FROM (
      SELECT timestamp >= lag(timestamp) OVER (PARTITION BY filename ORDER BY file_row_number) OR lag(timestamp) OVER (PARTITION BY filename ORDER BY file_row_number) IS NULL AS ok
      FROM read_parquet('${out}/intraday/**/*.parquet', filename=true, file_row_number=true))`);
  t.is(ordered[0]?.['sorted'], true);
});

test('partition values are escaped and never leave the output root; unplaceable records go to the dead letters', async (t) => {
  const out = await tmpOut();
  const template = intradayRecords({ users: 1, days: 1, points: 2 })[0]!;
  const ids = ['../x', 'a/b', '%2F', '..', '.', 'ü ser', '', '\u0000', 'nul\u0000inside'];
  const records = ids.map((humanId, i) => ({ ...template, id: `r-${i}`, humanId }));
  records.push({ ...template, id: 'bad-date', date: '../../etc' }, { ...template, id: 'feb-30', date: '2024-02-30' });
  const summary = await run('intraday', { outDir: out, runId: 'run-esc' }, [records]);
  t.is(summary.deadLetters, 5);
  t.is(summary.rows, 6);

  const root = resolve(out);
  for (const file of await walk(out)) {
    const rel = relative(root, resolve(file));
    t.false(rel.startsWith('..'), `${file} is inside the output root`);
  }
  const users = (await readdir(join(out, 'intraday', `date=${template.date}`))).sort();
  t.deepEqual(users, ['user=%252F', 'user=%2E', 'user=%2E%2E', 'user=..%2Fx', 'user=a%2Fb', 'user=%C3%BC%20ser'].sort());

  const rows = await query(`SELECT humanId, CAST("user" AS VARCHAR) AS u FROM read_parquet('${out}/intraday/**/*.parquet', hive_partitioning=true) ORDER BY humanId`);
  t.deepEqual(
    rows.map((r) => r['humanId']),
    ['%2F', '.', '..', '../x', 'a/b', 'ü ser'],
  );

  const deadFile = join(out, '_dead_letter', 'intraday', 'run-esc.jsonl');
  const letters = (await readFile(deadFile, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { dataset: string; reason: string; context: Record<string, unknown>; raw: { id: string; humanId: string } });
  t.deepEqual(letters.map((l) => l.raw.id).sort(), ['bad-date', 'feb-30', 'r-6', 'r-7', 'r-8']);
  for (const letter of letters) {
    t.is(letter.dataset, 'intraday');
    t.is(letter.context['code'], 'PARTITION');
    t.true(letter.reason.length > 10);
  }
  t.regex(letters.find((l) => l.raw.id === 'r-6')!.reason, /empty/);
  t.regex(letters.find((l) => l.raw.id === 'r-7')!.reason, /control character/);
  t.regex(letters.find((l) => l.raw.id === 'feb-30')!.reason, /calendar date/);
});

test('records that do not fit the schema go to the dead letters with the reason', async (t) => {
  const out = await tmpOut();
  const good = intradayRecords({ users: 1, days: 1, points: 3 });
  const bad = [
    { ...good[0]!, id: 'no-ts', timestamp: undefined },
    { ...good[0]!, id: 'float-ts', timestamp: 1.5 },
    { ...good[0]!, id: 'str-value', value: '12' },
    { ...good[0]!, id: 'big-interval', interval: 2 ** 40 },
    'not a record',
  ];
  const summary = await run('intraday', { outDir: out, runId: 'run-bad' }, [[...good, ...bad]]);
  t.is(summary.rows, 3);
  t.is(summary.rowsIn, 8);
  t.is(summary.deadLetters, 5);
  const letters = (await readFile(join(out, '_dead_letter', 'intraday', 'run-bad.jsonl'), 'utf8')).trim().split('\n');
  t.is(letters.length, 5);
  t.regex(letters.join('\n'), /column timestamp is required/);
  t.regex(letters.join('\n'), /column value must be a number/);
  t.regex(letters.join('\n'), /32-bit integer/);
});

test('memory stays bounded: 4x the input keeps buffered rows and open partitions under their limits', async (t) => {
  const limits = { highWaterRows: 1000, maxOpenPartitions: 5 };
  for (const users of [2, 8]) {
    const out = await tmpOut();
    const stats = createSinkStats();
    const shape = { users, days: 3, points: 500 };
    const summary = await run('intraday', { outDir: out, ...limits, stats }, [...intradayRecordsInBatches(shape, 700)]);
    t.is(summary.rows, users * 3 * 500);
    t.true(stats.maxBufferedRows <= limits.highWaterRows, `buffered ${stats.maxBufferedRows} rows`);
    t.true(stats.maxOpenPartitions <= limits.maxOpenPartitions, `${stats.maxOpenPartitions} open partitions`);
    const [count] = await query(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet('${out}/intraday/**/*.parquet')`);
    t.deepEqual(count, { n: String(users * 3 * 500), ids: String(users * 3 * 500) });
  }
});

test('the manifest lists every file with its rows and keeps partitions a run did not touch', async (t) => {
  const out = await tmpOut();
  const all = intradayRecords({ users: 3, days: 1, points: 10 });
  await run('intraday', { outDir: out, runId: 'run-1' }, [all.filter((r) => r.humanId !== 'h-2')]);
  await run('intraday', { outDir: out, runId: 'run-2' }, [all.filter((r) => r.humanId !== 'h-0')]);
  const manifest = await readManifest(out, 'intraday');
  t.truthy(manifest);
  t.is(manifest!.schemaVersion, SCHEMA_VERSION);
  t.is(manifest!.runId, 'run-2');
  const counts = await query(`SELECT filename, count(*) AS n FROM read_parquet('${out}/intraday/**/*.parquet', filename=true) GROUP BY ALL`);
  const byFile = new Map(counts.map((c) => [relative(join(out, 'intraday'), String(c['filename'])).split(sep).join('/'), Number(c['n'])]));
  t.is(manifest!.files.length, 3);
  for (const f of manifest!.files) t.is(f.rows, byFile.get(f.path) ?? -1, f.path);
  t.deepEqual(
    manifest!.files.map((f) => [f.path.split('/')[1], f.runId]),
    [
      ['user=h-0', 'run-1'],
      ['user=h-1', 'run-2'],
      ['user=h-2', 'run-2'],
    ],
  );
  // Nothing is left in the temporary folder after a clean run.
  t.deepEqual(await readdir(out).then((names) => names.filter((n) => n === '_tmp')), []);
});

test('bad options are rejected up front', (t) => {
  t.throws(() => createSink('intraday', { outDir: '/tmp/x', format: 'parquet', runId: 'r', compression: 'lz4' as never }), { message: /compression/ });
  t.throws(() => createSink('intraday', { outDir: '/tmp/x', format: 'parquet', runId: 'r', highWaterRows: 0 }), { message: /highWaterRows/ });
  t.throws(() => createSink('intraday', { outDir: '/tmp/x', format: 'parquet', runId: 'r', colour: 'blue' } as never), { message: /unknown sink option/ });
  t.throws(() => createSink('intraday', { outDir: '/tmp/x', format: 'parquet', runId: '' }), { message: /runId/ });
});
