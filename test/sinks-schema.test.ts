// Intraday's `estimated` flag (a boolean column: true, false and null) through both formats and
// both Parquet engines, and schema evolution: a partition file written before the column
// existed — here by DuckDB, a writer independent of ours — is merged, its rows reading null.
import { mkdtemp, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { query } from './duckdb.js';
import { tableFromIPC } from 'apache-arrow';
import { readFile } from 'node:fs/promises';
import type { IntradayRecord } from '../lib/schema.js';
import { createSink, prepareOutput } from '../sinks/index.js';
import type { ParquetEngine } from '../sinks/index.js';

async function* once<T>(batch: T[]): AsyncGenerator<T[]> {
  yield batch;
}

function calories(minute: number, estimated: boolean | null, type: IntradayRecord['type'] = 'calories'): IntradayRecord {
  const time = `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}:00`;
  return {
    date: '2016-04-20',
    id: `fitbit:h-1:${type}:2016-04-20T${time}`,
    humanId: 'h-1',
    userId: '2ABC3D',
    source: 'fitbit',
    type,
    timestamp: Date.UTC(2016, 3, 20, 7, minute),
    tzOffset: '-07:00',
    timeZone: 'America/Los_Angeles',
    value: 1.15,
    unit: type === 'calories' ? 'kcal' : 'count',
    interval: 60,
    level: type === 'calories' ? 0 : null,
    mets: type === 'calories' ? 10 : null,
    estimated,
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_000,
  };
}

const input = [calories(0, true), calories(1, false), calories(2, null, 'steps'), calories(3, true)];

for (const engine of ['fast', 'hyparquet-writer'] as ParquetEngine[]) {
  test(`estimated is a BOOLEAN column with nulls kept (${engine})`, async (t) => {
    const out = await mkdtemp(join(tmpdir(), 'sinks-bool-'));
    await prepareOutput(out);
    await createSink('intraday', { outDir: out, format: 'parquet', runId: 'r1', parquetEngine: engine })(once(input));
    const glob = `${out}/intraday/**/*.parquet`;
    const [described] = await query(`SELECT column_type FROM (DESCRIBE SELECT * FROM read_parquet('${glob}')) WHERE column_name = 'estimated'`);
    t.is(described?.column_type, 'BOOLEAN');
    const rows = await query(`SELECT id, estimated FROM read_parquet('${glob}') ORDER BY id`);
    t.deepEqual(
      rows,
      [...input].sort((a, b) => (a.id < b.id ? -1 : 1)).map((r) => ({ id: r.id, estimated: r.estimated })),
    );
  });
}

test('estimated in Arrow is Bool with nulls kept', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'sinks-bool-arrow-'));
  await prepareOutput(out);
  const summary = await createSink('intraday', { outDir: out, format: 'arrow', runId: 'r1' })(once(input));
  const table = tableFromIPC(await readFile(join(out, summary.paths[0]!)));
  const field = table.schema.fields.find((f) => f.name === 'estimated');
  t.is(String(field?.type), 'Bool');
  const byId = new Map<string, unknown>();
  const ids = table.getChild('id')!;
  const flags = table.getChild('estimated')!;
  for (let i = 0; i < table.numRows; i++) byId.set(ids.get(i) as string, flags.get(i));
  for (const r of input) t.is(byId.get(r.id), r.estimated, r.id);
});

test('a partition written before `estimated` existed (by DuckDB) is merged; its rows read null', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'sinks-evolve-'));
  await prepareOutput(out);
  const dir = join(out, 'intraday', 'date=2016-04-20', 'user=h-1');
  await mkdir(dir, { recursive: true });
  // The version-1 layout: every intraday column but `estimated`, in the same order.
  await query(`COPY (SELECT 'fitbit:h-1:steps:2016-04-20T05:00:00' AS id, 'h-1' AS humanId, '2ABC3D' AS userId, 'fitbit' AS source,
      'steps' AS type, make_timestamptz(2016, 4, 20, 12, 0, 0) AS "timestamp", '-07:00' AS tzOffset, 'America/Los_Angeles' AS timeZone,
      42.0::DOUBLE AS value, 'count' AS unit, 60::INTEGER AS "interval", NULL::INTEGER AS level, NULL::DOUBLE AS mets,
      make_timestamptz(2023, 11, 14, 22, 13, 20) AS createdAt, make_timestamptz(2023, 11, 14, 22, 13, 20) AS updatedAt)
    TO '${join(dir, 'data.parquet')}' (FORMAT PARQUET)`);
  await createSink('intraday', { outDir: out, format: 'parquet', runId: 'r2' })(once(input));
  const rows = await query(`SELECT id, value, estimated FROM read_parquet('${out}/intraday/**/*.parquet') ORDER BY id`);
  t.is(rows.length, input.length + 1);
  const old = rows.find((r) => r.id === 'fitbit:h-1:steps:2016-04-20T05:00:00');
  t.deepEqual(old, { id: 'fitbit:h-1:steps:2016-04-20T05:00:00', value: 42, estimated: null });
  t.is(rows.filter((r) => r.estimated === true).length, 2);
});
