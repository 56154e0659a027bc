// Arrow sink: IPC files read back by apache-arrow (tableFromIPC).
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { DataType, TimeUnit, tableFromIPC } from 'apache-arrow';
import type { Table } from 'apache-arrow';
import type { ActivityRecord } from '../lib/schema.js';
import { COLUMNS, SCHEMA_VERSION } from '../lib/schema.js';
import type { Compression } from '../lib/sink.js';
import { createSink, createSinkStats, prepareOutput } from '../sinks/index.js';
import { loadCodec } from '../sinks/compression.js';
import { registerArrowZstd } from '../sinks/arrow/encoder.js';
import { activityRecords, asAsync, intradayRecords } from '../bench/sink-data.js';

async function tmpOut(): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), 'sinks-arrow-'));
  await prepareOutput(out);
  return out;
}

async function readTable(path: string): Promise<Table> {
  // Compressed (zstd) files need a codec registered with apache-arrow before reading.
  await loadCodec('zstd');
  registerArrowZstd();
  return tableFromIPC(await readFile(path));
}

function rowsOf(table: Table): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const row: Record<string, unknown> = {};
    for (const field of table.schema.fields) row[field.name] = table.getChild(field.name)!.get(i);
    rows.push(row);
  }
  return rows;
}

for (const compression of ['snappy', 'zstd', 'none'] as Compression[]) {
  test(`activities round-trip through apache-arrow: types, values, nulls (${compression})`, async (t) => {
    const out = await tmpOut();
    const input = activityRecords();
    const sink = createSink('activities', { outDir: out, format: 'arrow', runId: 'run-arrow', compression });
    const summary = await sink(asAsync([input]));
    t.is(summary.rows, input.length);
    t.true(summary.paths.every((p) => p.endsWith('/data.arrow')));
    let seen = 0;
    for (const path of summary.paths) {
      const bytes = await readFile(join(out, path));
      t.is(bytes.subarray(0, 6).toString('latin1'), 'ARROW1', 'IPC file format magic');
      const table = await readTable(join(out, path));
      const fields = new Map(table.schema.fields.map((f) => [f.name, f]));
      t.deepEqual([...fields.keys()], COLUMNS.activities.map((c) => c.name));
      for (const spec of COLUMNS.activities) {
        const field = fields.get(spec.name)!;
        t.is(field.nullable, spec.nullable, spec.name);
        if (spec.type === 'timestamp') {
          t.true(DataType.isTimestamp(field.type), spec.name);
          // Timestamp<MILLISECOND, "UTC">
          const type = field.type as { unit: TimeUnit; timezone?: string | null };
          t.is(type.unit, TimeUnit.MILLISECOND);
          t.is(type.timezone, 'UTC');
        }
        if (spec.type === 'string') t.true(DataType.isUtf8(field.type), spec.name);
        if (spec.type === 'int64') t.is(String(field.type), 'Int64');
        if (spec.type === 'double') t.is(String(field.type), 'Float64');
        t.is(field.metadata.get('unit'), spec.unit, `unit of ${spec.name}`);
      }
      t.is(table.schema.metadata.get('wearable-etl.schema_version'), String(SCHEMA_VERSION));
      t.is(table.schema.metadata.get('wearable-etl.run_id'), 'run-arrow');
      for (const row of rowsOf(table)) {
        const e = input.find((r) => r.id === row['id'])!;
        t.truthy(e);
        t.is(row['startTime'], e.startTime);
        t.is(row['endTime'], e.endTime);
        t.is(row['updatedAt'], e.updatedAt);
        t.is(row['steps'], e.steps === null ? null : BigInt(e.steps));
        t.is(row['distance'], e.distance);
        t.is(row['pace'], e.pace);
        t.is(row['timeZone'], e.timeZone);
        t.is(row['humanId'], e.humanId);
        t.is(row['userId'], e.userId);
        t.is(row['sourceData'], e.sourceData);
        seen++;
      }
    }
    t.is(seen, input.length);
  });
}

test('arrow: re-running the same window changes nothing; an update replaces its row and keeps createdAt', async (t) => {
  const out = await tmpOut();
  const input = intradayRecords({ users: 2, days: 2, points: 30 });
  const first = await createSink('intraday', { outDir: out, format: 'arrow', runId: 'run-1' })(asAsync([input]));
  const before = new Map<string, unknown[]>();
  for (const path of first.paths) before.set(path, rowsOf(await readTable(join(out, path))));

  const stats = createSinkStats();
  const second = await createSink('intraday', { outDir: out, format: 'arrow', runId: 'run-2', stats })(asAsync([input]));
  t.deepEqual(second.paths, first.paths);
  t.is(stats.merge.unchanged, input.length);
  for (const path of second.paths) t.deepEqual(rowsOf(await readTable(join(out, path))), before.get(path), path);

  const target = input[5]!;
  const edited = { ...target, value: 999, updatedAt: target.updatedAt + 1000, createdAt: target.createdAt + 1000 };
  await createSink('intraday', { outDir: out, format: 'arrow', runId: 'run-3' })(asAsync([[edited]]));
  const path = first.paths.find((p) => p.includes(`date=${target.date}/user=${target.humanId}/`))!;
  const rows = rowsOf(await readTable(join(out, path)));
  t.is(rows.length, 30);
  const row = rows.find((r) => r['id'] === target.id)!;
  t.is(row['value'], 999);
  t.is(row['updatedAt'], target.updatedAt + 1000);
  t.is(row['createdAt'], target.createdAt);
  const timestamps = rows.map((r) => r['timestamp'] as number);
  t.deepEqual(timestamps, [...timestamps].sort((a, b) => a - b), 'rows sorted by timestamp');
});

test('arrow: activities merge keeps the stored row when only timestamps moved', async (t) => {
  const out = await tmpOut();
  const input = activityRecords().slice(0, 2) as [ActivityRecord, ActivityRecord];
  await createSink('activities', { outDir: out, format: 'arrow', runId: 'run-1' })(asAsync([input]));
  const [a] = input;
  const summary = await createSink('activities', { outDir: out, format: 'arrow', runId: 'run-2' })(asAsync([[{ ...a, updatedAt: a.updatedAt + 5 }]]));
  t.is(summary.rows, 2);
  const rows = rowsOf(await readTable(join(out, summary.paths[0]!)));
  t.is(rows.find((r) => r['id'] === a.id)!['updatedAt'], a.updatedAt);
});
