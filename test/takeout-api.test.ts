// An API run (fitbit-intraday and fitbit-activities against the fixture API on loopback) and
// the same users' Takeout archives over the same days into one output: one row per minute and
// per activity, and the archive's rows equal the API's (instants, offsets, metres, pace, speed).
import test from 'ava';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureEnv, startFixtureApi, writeUsersFile } from '../fixtures/server.js';
import { buildTakeoutFixtures } from '../fixtures/takeout.js';
import { main } from '../pipelines/cli.js';
import { query } from './duckdb.js';

const DAYS = 5;

async function cli(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number; stderr: string }> {
  const stderr: string[] = [];
  const code = await main(args, { env, cwd, stdout: () => {}, stderr: (s) => stderr.push(s) });
  return { code, stderr: stderr.join('') };
}

test('API run plus archive over the same days: one row per minute and per activity, with the API values', async (t) => {
  t.timeout(240_000);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-takeout-api-'));
  const set = buildTakeoutFixtures(path.join(dir, 'archives'), { days: DAYS });
  // The JSON layouts with distance in cm (account: Kilometer logs; takeout-fitbit: Mile logs and DST days).
  const chosen = set.archives.filter((a) => a.layout === 'account' || a.layout === 'takeout-fitbit');
  const api = await startFixtureApi({ fitbit: { users: chosen.map((a) => a.userId), sampleUser: false } });
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const env = fixtureEnv(api);
  const fitbitUsers = await writeUsersFile(api, path.join(dir, 'fitbit-users.json'));
  const takeoutUsers = path.join(dir, 'takeout-users.json');
  await fs.writeFile(takeoutUsers, JSON.stringify(chosen.map((a) => ({ ...a.entry, archive: path.join('archives', String(a.entry.archive)) }))));
  const out = path.join(dir, 'out');
  const window = ['--since', '2016-04-12', '--until', '2016-04-17'];
  for (const p of ['fitbit-intraday', 'fitbit-activities']) {
    const r = await cli(['run', p, '--users', fitbitUsers, '--out', out, ...window, ...(p === 'fitbit-intraday' ? ['--resources', 'steps,distance,calories'] : [])], env, dir);
    t.is(r.code, 0, r.stderr);
  }
  // The API's rows, copied aside by DuckDB before the archive lands on top of them.
  const apiIntraday = path.join(dir, 'api-intraday.parquet');
  const apiActivities = path.join(dir, 'api-activities.parquet');
  await query(`COPY (SELECT * FROM read_parquet('${path.join(out, 'intraday', '**', '*.parquet')}', hive_partitioning=true)) TO '${apiIntraday}' (FORMAT parquet)`);
  await query(`COPY (SELECT * FROM read_parquet('${path.join(out, 'activities', '**', '*.parquet')}', hive_partitioning=true)) TO '${apiActivities}' (FORMAT parquet)`);

  const r = await cli(['run', 'takeout', '--users', takeoutUsers, '--out', out, ...window], env, dir);
  t.is(r.code, 0, r.stderr);

  const merged = `read_parquet('${path.join(out, 'intraday', '**', '*.parquet')}', hive_partitioning=true)`;
  const [counts] = await query(`SELECT count(*) AS n, count(DISTINCT ("user", type, "timestamp")) AS minutes, count(DISTINCT id) AS ids,
    count(*) FILTER (WHERE source = 'takeout' AND type <> 'heart-rate') AS takeout FROM ${merged}`);
  t.is(Number(counts!.n), Number(counts!.minutes));
  t.is(Number(counts!.n), Number(counts!.ids));
  // Every API minute was matched by the archive (the archive replaced it: one row, newer).
  const [apiCount] = await query(`SELECT count(*) AS n FROM read_parquet('${apiIntraday}')`);
  t.true(Number(apiCount!.n) > 10_000);
  t.is(Number(counts!.takeout), Number(apiCount!.n));

  // Same id, same instant, offset, local date and value (metres exact) as the API's row.
  const [cmp] = await query(`SELECT count(*) AS matched,
      count(*) FILTER (WHERE a."timestamp" <> m."timestamp") AS bad_ts,
      count(*) FILTER (WHERE a.tzOffset <> m.tzOffset) AS bad_offset,
      count(*) FILTER (WHERE a."date" <> m."date") AS bad_date,
      count(*) FILTER (WHERE a.value <> m.value) AS bad_value,
      count(*) FILTER (WHERE a.type = 'distance' AND a.value <> m.value) AS bad_distance,
      count(*) FILTER (WHERE a.unit <> m.unit OR a."interval" <> m."interval") AS bad_unit
    FROM read_parquet('${apiIntraday}') a JOIN ${merged} m USING (id)`);
  t.is(Number(cmp!.matched), Number(apiCount!.n));
  for (const k of ['bad_ts', 'bad_offset', 'bad_date', 'bad_value', 'bad_distance', 'bad_unit']) t.is(Number(cmp![k]), 0, k);

  // Activities: ids fitbit-<logId>, one row each, the API's instants, offset, distance, pace, speed.
  const mergedActs = `read_parquet('${path.join(out, 'activities', '**', '*.parquet')}', hive_partitioning=true)`;
  const [acts] = await query(`SELECT count(*) AS n, count(DISTINCT id) AS ids, count(*) FILTER (WHERE source='takeout') AS takeout,
      count(*) FILTER (WHERE NOT regexp_matches(id, '^fitbit-\\d+$')) AS bad_ids FROM ${mergedActs}`);
  const [apiActs] = await query(`SELECT count(*) AS n FROM read_parquet('${apiActivities}')`);
  t.true(Number(apiActs!.n) > 5);
  t.is(Number(acts!.n), Number(acts!.ids));
  t.is(Number(acts!.n), Number(apiActs!.n));
  t.is(Number(acts!.takeout), Number(apiActs!.n));
  t.is(Number(acts!.bad_ids), 0);
  const actDiff = await query(`SELECT a.id, a.startTime, m.startTime AS t2, a.endTime, m.endTime AS e2, a.tzOffset, m.tzOffset AS o2, a.distance, m.distance AS d2, a.pace, m.pace AS p2, a.speed, m.speed AS s2
    FROM read_parquet('${apiActivities}') a JOIN ${mergedActs} m USING (id)
    WHERE a.startTime <> m.startTime OR a.endTime <> m.endTime OR a.tzOffset <> m.tzOffset OR a.duration <> m.duration OR a."date" <> m."date"
      OR a.distance IS DISTINCT FROM m.distance OR a.steps IS DISTINCT FROM m.steps OR a.calories IS DISTINCT FROM m.calories
      OR abs(a.pace - m.pace) > 1e-9 * a.pace OR abs(a.speed - m.speed) > 1e-9 * a.speed OR a.type <> m.type LIMIT 3`);
  t.deepEqual(actDiff, []);
});
