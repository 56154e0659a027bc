// Scheduled runs: three runs over a fixture dataset that grows between them. Each record lands
// once, and the second and third runs fetch only what is new plus the lookback.
import test from 'ava';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { query } from './duckdb.js';
import { fixtureEnv, startFixtureApi, writeUsersFile, type FitbitDay, type FixtureApi } from '../fixtures/server.js';
import { main } from '../pipelines/cli.js';

/** Local dates of the intraday requests logged since `from`. */
function requestedDates(api: FixtureApi, from: number): string[] {
  const dates = new Set<string>();
  for (const e of api.log.slice(from)) {
    const m = /\/activities\/steps\/date\/(\d{4}-\d{2}-\d{2})\//.exec(e.path);
    if (m) dates.add(m[1]);
  }
  return [...dates].sort();
}

test('three scheduled runs over a growing dataset land each record once and fetch only new days plus the lookback', async (t) => {
  t.timeout(120_000);
  const ids = ['1503960366', '1624580081', '1644430081'];
  const api = await startFixtureApi({ fitbit: { users: ids, sampleUser: false } });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-sched-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));
  const out = path.join(dir, 'out');

  // The full data, then only what "has synced" by each run.
  const full = new Map(ids.map((id) => [id, new Map(api.fitbit.user(id).days)]));
  const syncedThrough = (last: string): void => {
    for (const id of ids) {
      const days = api.fitbit.user(id).days;
      days.clear();
      for (const [date, day] of full.get(id) as Map<string, FitbitDay>) if (date <= last) days.set(date, day);
    }
  };
  const run = async (extra: string[]): Promise<number> => {
    const err: string[] = [];
    const code = await main(['run', 'fitbit-intraday', '--users', users, '--out', out, '--resources', 'steps', ...extra], {
      env: fixtureEnv(api),
      cwd: dir,
      stdout: () => {},
      stderr: (s) => err.push(s),
    });
    // Logs go to stderr now: nothing there but info lines.
    t.deepEqual(err.filter((l) => !l.startsWith('{') || (JSON.parse(l) as { level: string }).level !== 'info'), []);
    return code;
  };

  syncedThrough('2016-04-19');
  let mark = api.log.length;
  t.is(await run(['--since', '2016-04-13', '--until', '2016-04-19']), 0);
  t.deepEqual(requestedDates(api, mark), ['2016-04-13', '2016-04-14', '2016-04-15', '2016-04-16', '2016-04-17', '2016-04-18', '2016-04-19']);

  // A late sync changes 04-19 (inside a one-day lookback); five new days arrive. Without the
  // state a run would start a week back (04-18), so the dates asked tell the state was used.
  syncedThrough('2016-04-24');
  const late = full.get(ids[0])?.get('2016-04-19');
  if (!late) throw new Error('fixture has no 2016-04-19 for the first user');
  const changed = { ...late, steps: Uint16Array.from(late.steps) };
  changed.steps[12 * 60] += 1000;
  api.fitbit.user(ids[0]).days.set('2016-04-19', changed);
  mark = api.log.length;
  t.is(await run(['--until', '2016-04-24', '--lookback', '1']), 0);
  t.deepEqual(requestedDates(api, mark), ['2016-04-19', '2016-04-20', '2016-04-21', '2016-04-22', '2016-04-23', '2016-04-24']);

  syncedThrough('2016-04-29');
  api.fitbit.user(ids[0]).days.set('2016-04-19', changed);
  mark = api.log.length;
  t.is(await run(['--until', '2016-04-29', '--lookback', '1']), 0);
  t.deepEqual(requestedDates(api, mark), ['2016-04-24', '2016-04-25', '2016-04-26', '2016-04-27', '2016-04-28', '2016-04-29']);

  const glob = path.join(out, 'intraday', '**', '*.parquet');
  const [counts] = await query(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet('${glob}')`);
  t.is(counts.n, counts.ids, 'no id twice');

  // Totals per user-day equal what the API serves now (the late change included).
  const got = await query(`SELECT "user", CAST("date" AS VARCHAR) AS d, sum(value) AS s FROM read_parquet('${glob}', hive_partitioning=true) GROUP BY ALL`);
  const want = new Map<string, number>();
  for (const id of ids) {
    for (const [date, day] of api.fitbit.user(id).days) {
      if (date < '2016-04-13') continue;
      let sum = 0;
      for (const h of day.hours) for (let m = 0; m < 60; m++) sum += day.steps[h * 60 + m];
      want.set(`fitabase-${id}|${date}`, sum);
    }
  }
  t.is(got.length, [...want.values()].length);
  for (const r of got) t.is(Number(r.s), want.get(`${r.user}|${r.d}`) ?? -1, `${r.user} ${r.d}`);
  const state = JSON.parse(await fs.readFile(path.join(out, '_state', 'fitbit-intraday.json'), 'utf8')) as { users: Record<string, { streams: Record<string, string>; rateBudget?: { remaining: number } }> };
  t.is(state.users[`fitabase-${ids[0]}`].streams.steps, '2016-04-29');
  t.true(typeof state.users[`fitabase-${ids[0]}`].rateBudget?.remaining === 'number');
});

test('usage errors exit 2 with one line before any request; --dry-run sends nothing and writes nothing', async (t) => {
  const api = await startFixtureApi({ fitbit: { users: ['1503960366'], sampleUser: false } });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-usage-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const users = await writeUsersFile(api, path.join(dir, 'users.json'));
  const cases: string[][] = [
    ['run', 'fitbit-steps', '--users', users],
    ['run', 'fitbit-intraday', '--users', users, '--since', '2016-02-30'],
    ['run', 'fitbit-intraday', '--users', users, '--since', '2016-05-02', '--until', '2016-05-01'],
    ['run', 'fitbit-intraday', '--users', users, '--resources', 'steps,heart'],
    ['run', 'fitbit-intraday', '--users', users, '--detail', '1sec'],
    ['run', 'fitbit-intraday', '--users', path.join(dir, 'missing.json')],
    ['run', 'fitbit-intraday'],
    ['run', 'fitbit-intraday', '--users', users, '--bogus'],
    ['frobnicate'],
  ];
  for (const argv of cases) {
    const err: string[] = [];
    const code = await main([...argv, '--out', path.join(dir, 'out')], { env: fixtureEnv(api), cwd: dir, stdout: () => {}, stderr: (s) => err.push(s) });
    t.is(code, 2, argv.join(' '));
    t.is(err.join('').trim().split('\n').length, 1, `one line for ${argv.join(' ')}: ${err.join('')}`);
  }
  const bad = path.join(dir, 'bad-users.json');
  await fs.writeFile(bad, '[{"userId": "x", "accessToken": "a"}]');
  const err: string[] = [];
  t.is(await main(['run', 'fitbit-intraday', '--users', bad, '--out', path.join(dir, 'out')], { env: fixtureEnv(api), cwd: dir, stdout: () => {}, stderr: (s) => err.push(s) }), 2);
  t.regex(err.join(''), /refreshToken/);
  t.deepEqual(api.log, [], 'no request was sent');

  const stdout: string[] = [];
  const code = await main(['run', 'fitbit-intraday', '--users', users, '--out', path.join(dir, 'dry'), '--since', '2016-04-01', '--until', '2016-05-10', '--dry-run'], {
    env: fixtureEnv(api),
    cwd: dir,
    stdout: (s) => stdout.push(s),
    stderr: () => {},
  });
  t.is(code, 0);
  t.regex(stdout.join(''), /fitabase-1503960366: 2016-04-01 \.\. 2016-05-10 × steps,calories,distance \(1min\), 121 request\(s\)/);
  t.deepEqual(api.log, []);
  await t.throwsAsync(fs.stat(path.join(dir, 'dry')));
});
