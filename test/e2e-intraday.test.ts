// End to end, as a user runs it: the fixture API on loopback, `wearable-etl run fitbit-intraday`
// through the CLI entry point, then DuckDB over the whole output compared with the Fitabase CSV
// files read here independently (../shared/data).
import test from 'ava';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { query } from './duckdb.js';
import { fixtureEnv, startFixtureApi, writeUsersFile } from '../fixtures/server.js';
import { main } from '../pipelines/cli.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fitabase = path.resolve(here, '..', '..', 'shared', 'data', 'fitabase-2016-04-12');

/** "4/13/2016 1:00:00 PM" → ["2016-04-13", 13] */
function parseFitabaseHour(text: string): [string, number] {
  const [date, time, ampm] = text.split(' ');
  const [m, d, y] = date.split('/').map(Number);
  let h = Number(time.split(':')[0]) % 12;
  if (ampm === 'PM') h += 12;
  return [`${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`, h];
}

function csvRows(file: string): string[][] {
  return readFileSync(path.join(fitabase, file), 'utf8')
    .split(/\r?\n/)
    .slice(1)
    .filter((l) => l.length > 0)
    .map((l) => l.split(','));
}

test('fitbit-intraday through the CLI lands every Fitabase user-day exactly, with true UTC instants', async (t) => {
  t.timeout(180_000);
  const api = await startFixtureApi();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-e2e-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));
  const out = path.join(dir, 'out');
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await main(
    ['run', 'fitbit-intraday', '--users', users, '--out', out, '--since', '2016-04-12', '--until', '2016-05-13', '--resources', 'steps', '--concurrency', '8'],
    { env: fixtureEnv(api), cwd: dir, stdout: (s) => stdout.push(s), stderr: (s) => stderr.push(s) },
  );
  t.is(code, 0, stderr.join(''));
  // Logs go to stderr, one JSON object a line off a terminal: nothing above info on a clean run.
  const logLines = stderr.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; msg: string });
  t.deepEqual(logLines.filter((l) => l.level !== 'info' && l.level !== 'debug'), []);
  t.true(logLines.some((l) => l.msg === 'dataset committed'));

  // Expected: the minute CSV summed per user and local date, read without any project code.
  const expected = new Map<string, number>();
  for (const row of csvRows('minuteStepsWide_merged.csv')) {
    const [date] = parseFitabaseHour(row[1]);
    const key = `fitabase-${row[0]}|${date}`;
    expected.set(key, (expected.get(key) ?? 0) + row.slice(2).reduce((s, v) => s + Number(v), 0));
  }
  t.is(expected.size, 919);

  const glob = path.join(out, 'intraday', '**', '*.parquet');
  const daily = await query(
    `SELECT "user", CAST("date" AS VARCHAR) AS d, sum(value) AS steps FROM read_parquet('${glob}', hive_partitioning=true) WHERE type='steps' GROUP BY ALL`,
  );
  t.is(daily.length, 919);
  const mismatches = daily.filter((r) => expected.get(`${r.user}|${r.d}`) !== Number(r.steps));
  t.deepEqual(mismatches.slice(0, 5), []);

  // Types as the contract says.
  const types = await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${glob}', hive_partitioning=true))`);
  const typeOf = new Map(types.map((r) => [r.column_name, r.column_type]));
  t.is(typeOf.get('timestamp'), 'TIMESTAMP WITH TIME ZONE');
  t.is(typeOf.get('createdAt'), 'TIMESTAMP WITH TIME ZONE');
  t.is(typeOf.get('value'), 'DOUBLE');
  t.is(typeOf.get('interval'), 'INTEGER');

  // Instants: hourly sums by the local hour DuckDB derives from the UTC timestamp equal the
  // Fitabase hourly totals (a separate file) wherever both files have the hour.
  const hourly = new Map<string, number>();
  for (const row of csvRows('hourlySteps_merged.csv')) {
    const [date, hour] = parseFitabaseHour(row[1]);
    hourly.set(`fitabase-${row[0]}|${date}|${hour}`, Number(row[2]));
  }
  const byHour = await query(
    `SELECT "user", strftime(timezone(timeZone, "timestamp"), '%Y-%m-%d') AS d, hour(timezone(timeZone, "timestamp")) AS h, sum(value) AS steps
     FROM read_parquet('${glob}', hive_partitioning=true) WHERE type='steps' GROUP BY ALL`,
  );
  let compared = 0;
  const wrong: string[] = [];
  for (const r of byHour) {
    const want = hourly.get(`${r.user}|${r.d}|${r.h}`);
    if (want === undefined) continue;
    compared++;
    if (want !== Number(r.steps)) wrong.push(`${r.user} ${r.d} ${r.h}h: ${r.steps} != ${want}`);
  }
  t.true(compared > 21_000, `compared ${compared} user-hours`);
  t.deepEqual(wrong.slice(0, 5), []);
  const offsets = await query(`SELECT DISTINCT tzOffset, timeZone FROM read_parquet('${glob}', hive_partitioning=true)`);
  t.deepEqual(offsets, [{ tzOffset: '-07:00', timeZone: 'America/Los_Angeles' }]);

  // A second run over part of the window changes nothing: same rows, no duplicates.
  const before = await query(`SELECT count(*) AS n, sum(hash(id, value, "timestamp", createdAt, updatedAt)) AS h FROM read_parquet('${glob}')`);
  const again = await main(
    ['run', 'fitbit-intraday', '--users', users, '--out', out, '--since', '2016-05-07', '--until', '2016-05-13', '--resources', 'steps', '--concurrency', '8'],
    { env: fixtureEnv(api), cwd: dir, stdout: () => {}, stderr: (s) => stderr.push(s) },
  );
  t.is(again, 0);
  const after = await query(`SELECT count(*) AS n, sum(hash(id, value, "timestamp", createdAt, updatedAt)) AS h FROM read_parquet('${glob}')`);
  t.deepEqual(after, before);
});
