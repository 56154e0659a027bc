// The replay pipeline (sources/replay → normalizeIntraday → the sink): recorded responses,
// BOM and all, land as they would from the API; DuckDB reads them back and the values are
// checked against the recorded bodies, read here with JSON.parse alone.
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { DuckDBInstance } from '@duckdb/node-api';
import { EtlError } from '../lib/errors.js';
import { runReplayIntraday } from '../pipelines/replay-intraday.js';
import { loadReplayManifest } from '../sources/replay/index.js';

const SAMPLES = fileURLToPath(new URL('../fixtures/data/fitbit/', import.meta.url));

async function recording(): Promise<{ dir: string; steps: Buffer; calories: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'replay-'));
  const steps = await readFile(join(SAMPLES, 'IntradayActivitiesSteps.json')); // real bytes, BOM included
  const calories = await readFile(join(SAMPLES, 'IntradayActivitiesCalories.json'));
  await mkdir(join(dir, 'U1', 'steps'), { recursive: true });
  await mkdir(join(dir, 'U1', 'calories'), { recursive: true });
  await writeFile(join(dir, 'U1', 'steps', '2016-03-08.json'), steps);
  await writeFile(join(dir, 'U1', 'calories', '2015-03-20.json'), calories);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ detail: '1min', users: [{ userId: 'U1', humanId: 'h 1', timezone: 'Europe/London' }] }));
  return { dir, steps, calories };
}

function points(body: Buffer, resource: string): { time: string; value: number }[] {
  const text = body.toString('utf8').replace(/^\uFEFF/, '');
  return (JSON.parse(text) as Record<string, { dataset: { time: string; value: number }[] }>)[`activities-${resource}-intraday`]!.dataset;
}

test('recorded responses land as partitions with every point, in UTC, through the sink', async (t) => {
  const { dir, steps, calories } = await recording();
  const out = join(dir, 'out');
  const result = await runReplayIntraday({ dir, outDir: out, format: 'parquet', runId: 'replay-1', seenAt: Date.UTC(2024, 0, 1), resources: ['steps', 'calories'] });
  const stepPoints = points(steps, 'steps');
  const caloriePoints = points(calories, 'calories');
  t.is(result.responses, 2);
  t.is(result.points, stepPoints.length + caloriePoints.length);
  t.is(result.summary.rows, result.points);
  t.is(result.summary.deadLetters, 0);

  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  const rows = (
    await con.runAndReadAll(`SELECT type, CAST(date AS VARCHAR) AS d, "user" AS u, count(*) AS n, sum(value) AS v,
        CAST(epoch_ms(min("timestamp")) AS VARCHAR) AS first
      FROM read_parquet('${out}/intraday/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY type`)
  ).getRowObjectsJson();
  const sum = (ps: { value: number }[]): number => ps.reduce((s, p) => s + p.value, 0);
  // London is on GMT on both dates: local wall time = UTC.
  const firstInstant = (date: string, ps: { time: string }[]): string => String(Date.parse(`${date}T${ps[0]!.time}Z`));
  t.deepEqual(rows, [
    { type: 'calories', d: '2015-03-20', u: 'h 1', n: String(caloriePoints.length), v: sum(caloriePoints), first: firstInstant('2015-03-20', caloriePoints) },
    { type: 'steps', d: '2016-03-08', u: 'h 1', n: String(stepPoints.length), v: sum(stepPoints), first: firstInstant('2016-03-08', stepPoints) },
  ]);
});

test('a recording that is not an intraday body fails the run naming the file; a bad manifest fails up front', async (t) => {
  const { dir } = await recording();
  await writeFile(join(dir, 'U1', 'steps', '2016-03-09.json'), '{"activities-steps":[]}');
  const err = await t.throwsAsync(runReplayIntraday({ dir, outDir: join(dir, 'out'), format: 'parquet', runId: 'replay-2', seenAt: 0, resources: ['steps'] }));
  t.true(err instanceof EtlError);
  t.is((err as EtlError).code, 'BAD_RESPONSE');
  t.true(err!.message.includes('2016-03-09.json'), err!.message);

  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ users: [{ userId: '../x', timezone: 'UTC' }] }));
  const bad = await t.throwsAsync(loadReplayManifest(dir));
  t.is((bad as EtlError).code, 'CONFIG');
});
