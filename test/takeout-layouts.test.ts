// Takeout archives of every layout (fixtures/takeout.ts: one zip per layout, one export split in
// two zip parts, one unpacked folder; JSON+CSV twins, `no data` files, a large member that is
// not valid deflate data) imported through the CLI, then read back with DuckDB and compared
// with the Fitabase minute data read here without project code.
import test from 'ava';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { buildTakeoutFixtures, type TakeoutFixtureSet } from '../fixtures/takeout.js';
import { main } from '../pipelines/cli.js';
import { query } from './duckdb.js';

const here = path.dirname(fileURLToPath(import.meta.url));

interface FitabaseDay { date: string; hours: number[]; steps: number[] }
const fitabase = (JSON.parse(gunzipSync(readFileSync(path.join(here, '..', 'fixtures', 'data', 'fitabase', 'minutes.json.gz'))).toString('utf8')) as { users: { id: string; days: FitabaseDay[] }[] }).users;

/** Steps per local date of a Fitabase user, summed from the raw minute rows. */
function dailySteps(id: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of fitabase.find((u) => u.id === id)!.days) out.set(d.date, d.steps.reduce((a, b) => a + b, 0));
  return out;
}

/** Steps of one local hour of a Fitabase day (0 when the hour has no rows). */
function hourSteps(id: string, date: string, hour: number): number {
  const d = fitabase.find((u) => u.id === id)!.days.find((x) => x.date === date)!;
  const i = d.hours.indexOf(hour);
  return i < 0 ? 0 : d.steps.slice(i * 60, i * 60 + 60).reduce((a, b) => a + b, 0);
}

/** Days per archive: the first DAYS local dates of each user (a smaller archive keeps the test fast). */
const DAYS = 6;

let dir = '';
let set: TakeoutFixtureSet;
let out = '';
let firstRun: { code: number; stdout: string; stderr: string };

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await main(args, { env: {}, cwd: dir, stdout: (s) => stdout.push(s), stderr: (s) => stderr.push(s) });
  return { code, stdout: stdout.join(''), stderr: stderr.join('') };
}

test.before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-takeout-'));
  set = buildTakeoutFixtures(path.join(dir, 'archives'), { days: DAYS });
  out = path.join(dir, 'out');
  firstRun = await cli(['run', 'takeout', '--users', set.usersFile, '--out', out]);
});

test.after.always(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const glob = (dataset: string): string => path.join(out, dataset, '**', '*.parquet');

test('every layout lands: steps per user and local date equal the Fitabase daily totals (DST days by their rule)', async (t) => {
  t.is(firstRun.code, 0, firstRun.stderr);
  const rows = await query(`SELECT "user", CAST("date" AS VARCHAR) AS d, sum(value) AS steps FROM read_parquet('${glob('intraday')}', hive_partitioning=true) WHERE type='steps' GROUP BY ALL`);
  const got = new Map(rows.map((r) => [`${String(r.user)}|${String(r.d)}`, Number(r.steps)]));
  const expected = new Map<string, number>();
  for (const a of set.archives) for (const [date, steps] of [...dailySteps(a.userId)].sort().slice(0, DAYS)) expected.set(`${a.humanId}|${date}`, steps);
  // DST copies of one real day (fixtures/README.md): the spring-forward day has no 02:00 hour,
  // the fall-back day has its 01:00 hour twice.
  const dst = set.archives.find((a) => a.humanId === set.dst.humanId)!;
  const total = dailySteps(dst.userId).get(set.dst.sourceDate)!;
  expected.set(`${dst.humanId}|2016-03-13`, total - hourSteps(dst.userId, set.dst.sourceDate, 2));
  expected.set(`${dst.humanId}|2016-11-06`, total + hourSteps(dst.userId, set.dst.sourceDate, 1));
  t.is(expected.size, set.archives.length * DAYS + 2);
  const diff = [...expected].filter(([k, v]) => got.get(k) !== v).slice(0, 5);
  t.deepEqual(diff, []);
  t.is(got.size, expected.size);
});

test("every point's instant is DuckDB's AT TIME ZONE of the local minute in its id, DST days included", async (t) => {
  const local = `regexp_extract(id, '(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2})([+-]\\d{2}:\\d{2})?$', 1)`;
  const offset = `regexp_extract(id, '(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2})([+-]\\d{2}:\\d{2})?$', 2)`;
  const [r] = await query(`
    WITH p AS (SELECT *, ${local} AS loc, ${offset} AS off FROM read_parquet('${glob('intraday')}', hive_partitioning=true))
    SELECT count(*) AS n,
      count(*) FILTER (WHERE off = '' AND (strptime(loc, '%Y-%m-%dT%H:%M:%S') AT TIME ZONE timeZone) <> "timestamp") AS bad_plain,
      count(*) FILTER (WHERE off <> '' AND CAST(loc || off AS TIMESTAMPTZ) <> "timestamp") AS bad_offset,
      count(*) FILTER (WHERE strftime(timezone(timeZone, "timestamp"), '%Y-%m-%dT%H:%M:%S') <> loc) AS bad_wall,
      count(*) FILTER (WHERE CAST(timezone(timeZone, "timestamp") AS DATE) <> "date") AS bad_date,
      count(*) FILTER (WHERE off <> '') AS with_offset,
      count(*) FILTER (WHERE CAST("date" AS VARCHAR) IN ('2016-03-13', '2016-11-06')) AS dst_rows,
      count(*) - count(DISTINCT id) AS dup_ids
    FROM p`);
  t.true(Number(r!.n) > 80_000);
  t.is(Number(r!.bad_plain), 0);
  t.is(Number(r!.bad_offset), 0);
  t.is(Number(r!.bad_wall), 0);
  t.is(Number(r!.bad_date), 0);
  t.is(Number(r!.dup_ids), 0);
  // The repeated 01:00 hour of 2016-11-06 twice (-07:00 and -08:00) for steps, distance, calories.
  t.is(Number(r!.with_offset), 3 * 120);
  t.true(Number(r!.dst_rows) > 3 * 1380);
});

test('distance lands in metres from JSON centimetres and from CSV metres; Health Connect copies and CSV calories are left out', async (t) => {
  // The google-health archive has distance only as CSV (metres), its twin archives as JSON (cm).
  const gh = set.archives.find((a) => a.layout === 'google-health')!;
  const tf = set.archives.find((a) => a.layout === 'takeout-fitbit')!;
  const rows = await query(`
    SELECT "user", type, count(*) AS n, sum(value) AS total, max(value) AS top, any_value(unit) AS unit
    FROM read_parquet('${glob('intraday')}', hive_partitioning=true) WHERE "user" IN ('${gh.humanId}', '${tf.humanId}') GROUP BY ALL ORDER BY ALL`);
  const by = new Map(rows.map((r) => [`${String(r.user)}|${String(r.type)}`, r]));
  t.is(by.get(`${gh.humanId}|distance`)!.unit, 'm');
  t.is(by.get(`${tf.humanId}|distance`)!.unit, 'm');
  // A minute's stride-long distance is a few metres, not hundreds (cm) or thousandths (km).
  t.true(Number(by.get(`${tf.humanId}|distance`)!.top) < 300 && Number(by.get(`${tf.humanId}|distance`)!.top) > 10);
  t.true(Number(by.get(`${gh.humanId}|distance`)!.top) < 300 && Number(by.get(`${gh.humanId}|distance`)!.top) > 10);
  // CSV distance: only minutes with steps (sparse), the Health Connect row not among them.
  const [moving] = await query(`SELECT count(*) AS n FROM read_parquet('${glob('intraday')}', hive_partitioning=true) WHERE "user"='${gh.humanId}' AND type='steps' AND value > 0`);
  t.is(Number(by.get(`${gh.humanId}|distance`)!.n), Number(moving!.n));
  // Calories come from the dense JSON (every minute), never from the sparse active-kcal CSV.
  t.is(Number(by.get(`${gh.humanId}|calories`)!.n), Number(by.get(`${gh.humanId}|steps`)!.n));
  t.is(Number(by.get(`${gh.humanId}|floors`)!.unit === 'count' ? 1 : 0), 1);
  // Heart rate: JSON and its CSV twin, counted once (one row per sample second).
  const [hr] = await query(`SELECT count(*) AS n, count(DISTINCT "timestamp") AS instants, min(value) AS lo, max(value) AS hi FROM read_parquet('${glob('intraday')}', hive_partitioning=true) WHERE type='heart-rate'`);
  t.true(Number(hr!.n) > 100);
  t.is(Number(hr!.n), Number(hr!.instants));
  t.true(Number(hr!.lo) >= 60 && Number(hr!.hi) <= 126);
});

test('the time-zone self-check finds UTC JSON stamps where both encodings exist, and the run summary carries it', async (t) => {
  const lines = firstRun.stdout.split('\n').concat(firstRun.stderr.split('\n')).filter((l) => l.includes('self-check'));
  const verdicts = lines.map((l) => JSON.parse(l) as { user: string; verdict: string; sampled: number; matchesAsUtc: number; matchesAsLocal: number });
  const twins = set.archives.filter((a) => a.layout !== 'account' && a.layout !== 'folder').map((a) => a.humanId).sort();
  t.deepEqual(verdicts.map((v) => v.user).sort(), twins);
  for (const v of verdicts) {
    t.is(v.verdict, 'utc');
    t.true(v.sampled > 100);
    t.is(v.matchesAsLocal, 0);
  }
  // The run summary (<out>/_runs/<runId>.json) carries the same verdicts.
  const summary = JSON.parse(firstRun.stdout.split('\n').find((l) => l.includes('"run summary"'))!) as { runId: string };
  const file = JSON.parse(await fs.readFile(path.join(out, '_runs', `${summary.runId}.json`), 'utf8')) as { pipelines: { checks?: { user: string; verdict: string; check: string }[] }[] };
  const checks = file.pipelines[0]!.checks ?? [];
  t.deepEqual(checks.map((c) => c.user).sort(), twins);
  t.true(checks.every((c) => c.verdict === 'utc' && c.check === 'json-time-zone'));
});

test('re-import: --reimport rewrites identical rows; without it the archive is skipped and no file changes', async (t) => {
  const snapshot = async (): Promise<string> => {
    const rows = await query(`SELECT md5(string_agg(CAST(COLUMNS(*) AS VARCHAR), '|' ORDER BY id)) AS h FROM read_parquet('${glob('intraday')}', hive_partitioning=true)`);
    const acts = await query(`SELECT md5(string_agg(CAST(COLUMNS(*) AS VARCHAR), '|' ORDER BY id)) AS h FROM read_parquet('${glob('activities')}', hive_partitioning=true)`);
    return JSON.stringify([rows, acts]);
  };
  const before = await snapshot();
  const again = await cli(['run', 'takeout', '--users', set.usersFile, '--out', out, '--reimport']);
  t.is(again.code, 0, again.stderr);
  t.is(await snapshot(), before);
  const files = path.join(out, 'intraday', 'date=2016-04-15', `user=${set.archives[0]!.humanId}`, 'data.parquet');
  const mtime = (await fs.stat(files)).mtimeMs;
  const skipped = await cli(['run', 'takeout', '--users', set.usersFile, '--out', out]);
  t.is(skipped.code, 0, skipped.stderr);
  t.is((skipped.stdout + skipped.stderr).match(/already imported whole; skipped/g)?.length, set.archives.length);
  t.is((await fs.stat(files)).mtimeMs, mtime);
  t.is(await snapshot(), before);
});

test('--dry-run lists members and bytes to read and skip, the big member among the skipped, and writes nothing', async (t) => {
  const dryOut = path.join(dir, 'dry');
  const r = await cli(['run', 'takeout', '--users', set.usersFile, '--out', dryOut, '--dry-run']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('takeout '));
  t.is(lines.length, set.archives.length);
  const gh = lines.find((l) => l.includes(set.archives.find((a) => a.layout === 'google-health')!.humanId))!;
  t.regex(gh, /read \d+ of \d+ members, [\d.]+ MB inflated/);
  t.regex(gh, /streams: steps \(json, \d\), distance \(csv, \d\), calories \(json, \d\), floors \(csv, \d\)/);
  await t.throwsAsync(fs.stat(dryOut));
});

test('--since/--until filter local dates', async (t) => {
  const o = path.join(dir, 'window');
  const r = await cli(['run', 'takeout', '--users', set.usersFile, '--out', o, '--since', '2016-04-14', '--until', '2016-04-15']);
  t.is(r.code, 0, r.stderr);
  const rows = await query(`SELECT DISTINCT CAST("date" AS VARCHAR) AS d FROM read_parquet('${path.join(o, '**', '*.parquet')}', hive_partitioning=true) ORDER BY d`);
  t.deepEqual(rows.map((x) => x.d), ['2016-04-14', '2016-04-15']);
});
