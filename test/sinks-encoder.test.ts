// The fast Parquet encoder on awkward data (null patterns, dictionaries of every size,
// non-ASCII and long strings, page and row-group splits), read back by hyparquet and DuckDB.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetRead, parquetReadObjects } from 'hyparquet';
import type { ColumnSpec } from '../lib/schema.js';
import type { Row } from '../sinks/columns.js';
import { toColumns } from '../sinks/columns.js';
import { SNAPPY_IMPLEMENTATION, compressBlock, loadCodec } from '../sinks/compression.js';
import { compareUtf8, encodeParquet } from '../sinks/parquet/index.js';
import { escapePartitionValue, partitionPath, validateDate } from '../sinks/index.js';

const SPECS: ColumnSpec[] = [
  { name: 'id', type: 'string', nullable: false },
  { name: 'few', type: 'string', nullable: true },
  { name: 'many', type: 'string', nullable: true },
  { name: 'ts', type: 'timestamp', nullable: true },
  { name: 'big', type: 'int64', nullable: true },
  { name: 'small', type: 'int32', nullable: true },
  { name: 'x', type: 'double', nullable: true },
  { name: 'req', type: 'double', nullable: false },
];

/** Deterministic pseudo-random numbers (xorshift) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function makeRows(n: number, seed: number): Row[] {
  const r = rng(seed);
  const words = ['α', 'steps', '', 'Zoë 🏃', 'x'.repeat(100), '\uFFFD', 'é'];
  return Array.from({ length: n }, (_, i) => {
    const nullRun = Math.floor(i / 37) % 3 === 0; // long runs of nulls, then mixed
    return {
      id: `id-${i}-${'ü'.repeat(i % 3)}`,
      few: nullRun ? null : r() < 0.2 ? null : words[Math.floor(r() * words.length)]!,
      many: r() < 0.1 ? null : `value ${Math.floor(r() * 5000)} ${i % 7 === 0 ? '日本' : ''}`,
      ts: i % 5 === 0 ? null : Math.floor(r() * 4e12) - 1e12,
      big: i % 4 === 0 ? null : (i % 2 === 0 ? 1 : -1) * Math.floor(r() * Number.MAX_SAFE_INTEGER),
      small: nullRun ? null : Math.floor(r() * 2 ** 32) - 2 ** 31,
      x: i % 9 === 0 ? null : (r() - 0.5) * 1e6,
      req: i === 0 ? -0 : r(),
    };
  });
}

const cases: { name: string; n: number; rowGroupRows?: number; pageRows?: number; compression: 'snappy' | 'zstd' | 'none' }[] = [
  { name: 'one page', n: 500, compression: 'snappy' },
  { name: 'pages and row groups split unevenly', n: 3001, rowGroupRows: 1000, pageRows: 333, compression: 'snappy' },
  { name: 'zstd', n: 2000, pageRows: 700, compression: 'zstd' },
  { name: 'uncompressed, tiny pages', n: 257, pageRows: 8, compression: 'none' },
  { name: 'a single row', n: 1, compression: 'snappy' },
  { name: 'no rows', n: 0, compression: 'snappy' },
];

for (const c of cases) {
  test(`encoder round-trip: ${c.name}`, async (t) => {
    await loadCodec(c.compression);
    const rows = makeRows(c.n, c.n + 7);
    const bytes = encodeParquet(SPECS, toColumns(SPECS, rows), {
      compression: c.compression,
      keyValueMetadata: [['k', 'v']],
      createdBy: 'test',
      ...(c.rowGroupRows === undefined ? {} : { rowGroupRows: c.rowGroupRows }),
      ...(c.pageRows === undefined ? {} : { pageRows: c.pageRows }),
    });
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const meta = parquetMetadata(file);
    t.is(Number(meta.num_rows), c.n);
    if (c.rowGroupRows !== undefined) t.is(meta.row_groups.length, Math.ceil(c.n / c.rowGroupRows));

    if (c.compression !== 'zstd') {
      const back = await parquetReadObjects({ file, parsers: { timestampFromMilliseconds: (ms: bigint) => Number(ms) } });
      t.is(back.length, c.n);
      back.forEach((row, i) => {
        const e = rows[i]!;
        t.is(row['id'], e['id']);
        t.is(row['few'] ?? null, e['few']);
        t.is(row['many'] ?? null, e['many']);
        t.is(row['ts'] ?? null, e['ts']);
        t.is(row['big'] ?? null, e['big'] === null ? null : BigInt(e['big'] as number));
        t.is(row['small'] ?? null, e['small']);
        t.is(row['x'] ?? null, e['x']);
        t.is(row['req'], e['req']);
      });
    }

    // DuckDB: same values, and statistics that agree with the data (it prunes with them).
    const dir = await mkdtemp(join(tmpdir(), 'sinks-encoder-'));
    const path = join(dir, 'f.parquet');
    await writeFile(path, bytes);
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    const read = await con.runAndReadAll(
      `SELECT id, few, many, CAST(epoch_ms(ts) AS VARCHAR) AS ts, CAST(big AS VARCHAR) AS big, small, x, req FROM read_parquet('${path}')`,
    );
    const duckRows = read.getRowObjectsJson();
    t.is(duckRows.length, c.n);
    duckRows.forEach((row, i) => {
      const e = rows[i]!;
      t.deepEqual(row, {
        id: e['id'],
        few: e['few'],
        many: e['many'],
        ts: e['ts'] === null ? null : String(e['ts']),
        big: e['big'] === null ? null : String(e['big']),
        small: e['small'],
        x: e['x'],
        req: e['req'],
      });
    });
    if (rows.some((r) => r['ts'] !== null)) {
      const stats = await con.runAndReadAll(`SELECT count(*) AS n FROM read_parquet('${path}') WHERE ts = (SELECT max(ts) FROM read_parquet('${path}'))`);
      t.true(Number(stats.getRowObjectsJson()[0]!['n']) >= 1, 'filtering on the max timestamp finds it (statistics are right)');
      const few = await con.runAndReadAll(`SELECT count(*) AS n FROM read_parquet('${path}') WHERE few = 'Zoë 🏃'`);
      t.is(Number(few.getRowObjectsJson()[0]!['n']), rows.filter((r) => r['few'] === 'Zoë 🏃').length);
    }
  });
}

test('snappy output lives in memory V8 counts, so dead pages are collected in time', (t) => {
  // The native codec's own buffers (mimalloc) were invisible to V8: dead ones piled up between
  // collections of the writer thread (bench/README.md, "Memory: what was measured").
  const next = rng(7);
  const data = new Uint8Array(4 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (next() * 256) | 0;
  const before = process.memoryUsage().arrayBuffers;
  const out = compressBlock('snappy', data);
  const grown = process.memoryUsage().arrayBuffers - before;
  t.true(out.length > data.length * 0.9, 'random bytes do not compress');
  t.true(grown >= out.length * 0.9, `${SNAPPY_IMPLEMENTATION}: ${out.length} bytes of output, array buffers grew by ${grown}`);
});

test('compareUtf8 orders as UTF-8 bytes do', (t) => {
  const values = ['a', 'b', 'ab', '', '\uFFFD', '😀', 'é', 'z', '\uE000', '𝄞'];
  const bytes = [...values].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  t.deepEqual([...values].sort(compareUtf8), bytes);
});

test('partition values: percent-encoding outside [A-Za-z0-9._-], rejects what cannot be placed', (t) => {
  const table: [string, string][] = [
    ['h-1', 'h-1'],
    ['A.b_c-9', 'A.b_c-9'],
    ['a/b', 'a%2Fb'],
    ['../x', '..%2Fx'],
    ['%2F', '%252F'],
    ['..', '%2E%2E'],
    ['.', '%2E'],
    ['a b', 'a%20b'],
    ["it's(*)!~", 'it%27s%28%2A%29%21%7E'],
    ['ü', '%C3%BC'],
    ['\\', '%5C'],
  ];
  for (const [raw, escaped] of table) t.is(escapePartitionValue(raw), escaped, raw);
  for (const bad of ['', '\u0000', 'a\nb', '\u007f', '\uD800', 'x'.repeat(201)]) {
    t.throws(() => escapePartitionValue(bad), { message: /partition value/ }, JSON.stringify(bad));
  }
  t.is(partitionPath('intraday', '2024-02-29', 'a/b'), 'intraday/date=2024-02-29/user=a%2Fb');
  for (const bad of ['2023-02-29', '2024-13-01', '2024-1-01', '24-01-01', '2024-01-01T00:00', '../2024-01-01', '']) {
    t.throws(() => validateDate(bad), { message: /calendar date/ }, bad);
  }
  t.throws(() => partitionPath('nope' as never, '2024-01-01', 'u'), { message: /unknown dataset/ });
});

test('numbers written value by value (what a big-endian machine does) give the same file', (t) => {
  const table = toColumns(SPECS, makeRows(3001, 11));
  const options = { compression: 'none' as const, keyValueMetadata: [], createdBy: 'test', pageRows: 700 };
  const portable = encodeParquet(SPECS, table, { ...options, portableNumbers: true });
  t.true(portable.equals(encodeParquet(SPECS, table, options)));
});

test('long strings keep statistics: truncated to bounds, marked inexact, and readers still find every value', async (t) => {
  const specs: ColumnSpec[] = [
    { name: 'id', type: 'string', nullable: false },
    { name: 'few', type: 'string', nullable: true },
    { name: 'long', type: 'string', nullable: true },
  ];
  // 'few' has a dictionary (few distinct values), 'long' is PLAIN; both hold values past 64 bytes.
  const head = 'wearable-etl '.repeat(6); // 78 bytes
  const few = [`${head}a`, `${head}b`, `${head}é${'z'.repeat(20)}`, 'short'];
  const rows: Row[] = Array.from({ length: 400 }, (_, i) => ({
    id: `id-${String(i).padStart(4, '0')}`,
    few: i % 10 === 0 ? null : few[i % few.length]!,
    long: i % 13 === 0 ? null : `${String((i * 7919) % 400).padStart(4, '0')}-${'ü'.repeat(40)}-${i}`,
  }));
  const bytes = encodeParquet(specs, toColumns(specs, rows), { compression: 'snappy', keyValueMetadata: [], createdBy: 'test' });
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const meta = parquetMetadata(file);
  const utf8 = (v: unknown): Buffer => (v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(String(v), 'utf8'));
  for (const chunk of meta.row_groups[0]!.columns) {
    const name = chunk.meta_data!.path_in_schema[0]!;
    const stats = chunk.meta_data!.statistics!;
    t.truthy(stats.min_value, `${name} has a min`);
    t.truthy(stats.max_value, `${name} has a max`);
    const min = utf8(stats.min_value);
    const max = utf8(stats.max_value);
    t.true(min.length <= 64 && max.length <= 64, `${name} bounds are at most 64 bytes`);
    t.is(min.toString('utf8').includes('\uFFFD'), false, `${name} min is whole characters`);
    const values = rows.map((r) => r[name]).filter((v): v is string => typeof v === 'string');
    for (const v of values) {
      t.true(Buffer.compare(min, Buffer.from(v, 'utf8')) <= 0 && Buffer.compare(Buffer.from(v, 'utf8'), max) <= 0, `${name}: ${v} within its bounds`);
    }
    const longest = Math.max(...values.map((v) => Buffer.byteLength(v)));
    if (name === 'id') t.falsy(stats.is_max_value_exact === false || stats.is_min_value_exact === false, 'short values: exact');
    if (longest > 64 && name === 'long') t.is(stats.is_max_value_exact, false, `${name}: max is a bound`);
  }
  // DuckDB prunes with these statistics: filters on the largest and smallest values find them.
  const dir = await mkdtemp(join(tmpdir(), 'sinks-encoder-stats-'));
  const path = join(dir, 'f.parquet');
  await writeFile(path, bytes);
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  for (const name of ['few', 'long']) {
    const values = rows.map((r) => r[name]).filter((v): v is string => typeof v === 'string');
    const sorted = [...values].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const v of [sorted[0]!, sorted.at(-1)!]) {
      const got = await con.runAndReadAll(`SELECT count(*) AS n FROM read_parquet('${path}') WHERE "${name}" = '${v.replace(/'/g, "''")}'`);
      t.is(Number(got.getRowObjectsJson()[0]!['n']), values.filter((x) => x === v).length, `${name} = ${v}`);
    }
  }
});

test('data pages are cut by size: long strings take several pages, each under the page size', async (t) => {
  const specs: ColumnSpec[] = [
    { name: 'id', type: 'string', nullable: false },
    { name: 'doc', type: 'string', nullable: false },
    { name: 'x', type: 'double', nullable: false },
  ];
  const rows: Row[] = Array.from({ length: 3000 }, (_, i) => ({ id: `id-${i}`, doc: `${i}:${'d'.repeat(1000)}`, x: i / 3 }));
  const pageBytes = 256 * 1024;
  const bytes = encodeParquet(specs, toColumns(specs, rows), { compression: 'none', keyValueMetadata: [], createdBy: 'test', pageBytes });
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const pages = new Map<string, number[]>();
  let back: Record<string, unknown>[] = [];
  await parquetRead({
    file,
    rowFormat: 'object',
    onPage: (page) => {
      const name = page.pathInSchema.join('.');
      const list = pages.get(name) ?? [];
      list.push(page.rowEnd - page.rowStart);
      pages.set(name, list);
    },
    onComplete: (rows) => {
      back = rows as Record<string, unknown>[];
    },
  });
  t.is(back.length, rows.length);
  t.true(back.every((r, i) => r['doc'] === rows[i]!['doc']));
  // 3,000 values of ~1 KB: 3 MB, so about 12 pages of 256 KB (one per 250 rows or so).
  const docPages = pages.get('doc')!;
  t.true(docPages.length >= 11, `doc in ${docPages.length} pages`);
  t.true(docPages.every((n) => n * 1005 <= pageBytes + 1005), 'no page holds more than its size of values');
  t.is(pages.get('id')!.length, 1, 'short strings: one page');
  t.is(pages.get('x')!.length, 1, '3,000 doubles: one page');
});
