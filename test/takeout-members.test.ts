// Bad members become dead letters with their name and reason while the rest lands; the
// self-check's other verdict (JSON stamps written in local time); users-file entries.
import test from 'ava';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { archiveMembers, fixtureUser, writeZips } from '../fixtures/takeout.js';
import { main } from '../pipelines/cli.js';
import { parseTakeoutEntry } from '../sources/takeout/users.js';
import { classifyMember } from '../sources/takeout/layout.js';
import { query } from './duckdb.js';

async function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await main(args, { env: {}, cwd, stdout: (s) => stdout.push(s), stderr: (s) => stderr.push(s) });
  return { code, stdout: stdout.join(''), stderr: stderr.join('') };
}

/** A user cut to its first `days` dates (small archives). */
function smallUser(index: number, days: number): ReturnType<typeof fixtureUser> {
  const user = fixtureUser(index);
  const keep = [...user.days.keys()].sort().slice(0, days);
  user.days = new Map(keep.map((d) => [d, user.days.get(d)!]));
  user.activities = user.activities.filter((a) => a.startTime.slice(0, 10) <= keep[keep.length - 1]!);
  return user;
}

test('members that cannot be parsed are dead letters with their name and reason; every other member lands', async (t) => {
  t.timeout(120_000);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-takeout-bad-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const user = smallUser(0, 3);
  const members = archiveMembers('takeout-fitbit', user);
  const root = 'Takeout/Fitbit/Global Export Data';
  const stepsName = [...members.keys()].find((n) => n.startsWith(`${root}/steps-2016-04`))!;
  const caloriesName = [...members.keys()].find((n) => n.startsWith(`${root}/calories-2016-04`))!;
  const distanceName = [...members.keys()].find((n) => n.startsWith(`${root}/distance-2016-04`))!;
  // Truncated JSON: the rows before the cut land, the member is a dead letter.
  const steps = members.get(stepsName)!;
  members.set(stepsName, steps.slice(0, Math.floor(steps.length / 2)));
  // Not JSON at all.
  members.set(caloriesName, 'this is not json');
  // One bad row inside a good member.
  members.set(distanceName, members.get(distanceName)!.replace(/"dateTime" : "[^"]+"/, '"dateTime" : "2016-04-13 07:00"'));
  // A CSV whose header lacks the value column (its JSON twin is read instead; only sampled).
  members.set('Takeout/Fitbit/Physical Activity_GoogleData/steps_2016-04-13.csv', 'when,how many\n1,2\n');
  const zip = path.join(dir, 'export.zip');
  writeZips([zip], members, null);
  const users = path.join(dir, 'users.json');
  await fs.writeFile(users, JSON.stringify([{ provider: 'takeout', humanId: 'bad-1', archive: 'export.zip', timezone: 'America/Los_Angeles' }]));
  const out = path.join(dir, 'out');
  const r = await cli(['run', 'takeout', '--users', users, '--out', out], dir);
  t.is(r.code, 0, r.stderr);

  const letters = await query(`SELECT reason, context FROM read_json_auto('${path.join(out, '_dead_letter', 'intraday', '*')}', format='newline_delimited')`);
  const byMember = new Map(letters.map((l) => [JSON.stringify(l.context), String(l.reason)]));
  const find = (member: string): string | undefined => [...byMember].find(([c]) => c.includes(member))?.[1];
  t.regex(find(stepsName) ?? '', /member cannot be read: .*steps-2016-04/);
  t.regex(find(caloriesName) ?? '', /member cannot be read/);
  t.regex(find(distanceName) ?? '', /dateTime "2016-04-13 07:00" is not MM\/DD\/YY HH:MM:SS/);
  t.is(letters.length, 3);

  const rows = await query(`SELECT type, count(*) AS n FROM read_parquet('${path.join(out, 'intraday', '**', '*.parquet')}', hive_partitioning=true) GROUP BY ALL`);
  const n = new Map(rows.map((x) => [String(x.type), Number(x.n)]));
  const minutes = [...user.days.values()].reduce((s, d) => s + d.hours.length * 60, 0);
  t.is(n.get('distance'), minutes - 1);
  t.true((n.get('steps') ?? 0) > 0 && (n.get('steps') ?? 0) < minutes);
  t.is(n.get('calories'), undefined);
  t.true((n.get('heart-rate') ?? 0) > 0);
  const [acts] = await query(`SELECT count(*) AS n FROM read_parquet('${path.join(out, 'activities', '**', '*.parquet')}', hive_partitioning=true)`);
  t.true(user.activities.length > 0);
  t.is(Number(acts!.n), user.activities.length);
});

test('JSON stamps written in local time: the self-check says so; jsonTimeZone "local" reads them right', async (t) => {
  t.timeout(120_000);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-takeout-local-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const user = smallUser(2, 2);
  writeZips([path.join(dir, 'local.zip')], archiveMembers('google-health', user, { localJsonStamps: true }), null);
  const entry = { provider: 'takeout', humanId: 'local-1', archive: 'local.zip', timezone: 'America/Los_Angeles' };
  await fs.writeFile(path.join(dir, 'utc.json'), JSON.stringify([entry]));
  await fs.writeFile(path.join(dir, 'local.json'), JSON.stringify([{ ...entry, jsonTimeZone: 'local' }]));

  const asUtc = await cli(['run', 'takeout', '--users', 'utc.json', '--out', 'out-utc'], dir);
  t.is(asUtc.code, 0, asUtc.stderr);
  const warn = (asUtc.stdout + asUtc.stderr).split('\n').find((l) => l.includes('self-check'))!;
  const v = JSON.parse(warn) as { level: string; verdict: string; readAs: string };
  t.is(v.verdict, 'local');
  t.is(v.level, 'warn');

  const asLocal = await cli(['run', 'takeout', '--users', 'local.json', '--out', 'out-local'], dir);
  t.is(asLocal.code, 0, asLocal.stderr);
  const ok = JSON.parse((asLocal.stdout + asLocal.stderr).split('\n').find((l) => l.includes('self-check'))!) as { level: string; verdict: string };
  t.is(ok.verdict, 'local');
  t.is(ok.level, 'info');
  // Read as local, the JSON steps land on the same instants as their CSV twin (which is UTC).
  const daily = await query(`SELECT CAST("date" AS VARCHAR) AS d, sum(value) AS s FROM read_parquet('${path.join(dir, 'out-local', 'intraday', '**', '*.parquet')}', hive_partitioning=true) WHERE type='steps' GROUP BY ALL ORDER BY d`);
  const expected = [...user.days].sort(([a], [b]) => (a < b ? -1 : 1)).map(([d, day]) => ({ d, s: day.steps.reduce((a, b) => a + b, 0) }));
  t.deepEqual(daily.map((x) => ({ d: x.d, s: Number(x.s) })), expected);
});

test('users-file entries: unknown keys, zones and paths', (t) => {
  const dir = '/data/exports';
  const u = parseTakeoutEntry({ provider: 'takeout', humanId: 'h-1', archive: ['a-001.zip', '/abs/a-002.zip'] }, 3, dir);
  t.deepEqual(u.archive, ['/data/exports/a-001.zip', '/abs/a-002.zip']);
  t.is(u.jsonTimeZone, 'UTC');
  t.is(u.timeZone, null);
  t.throws(() => parseTakeoutEntry({ provider: 'takeout', humanId: 'h', archive: 'a.zip', token: 'x' }, 0, dir), { message: /entry 0 \(takeout\): unknown key "token"/ });
  t.throws(() => parseTakeoutEntry({ provider: 'takeout', humanId: 'h', archive: 'a.zip', timezone: 'Mars/Olympus' }, 1, dir), { message: /timezone "Mars\/Olympus" is not an IANA zone/ });
  t.throws(() => parseTakeoutEntry({ provider: 'takeout', humanId: 'h', archive: [] }, 2, dir), { message: /archive/ });
  t.is(parseTakeoutEntry({ provider: 'takeout', humanId: 'h', archive: 'a', jsonTimeZone: 'local' }, 0, dir).jsonTimeZone, 'local');
});

test('member names are matched loosely in every layout', (t) => {
  t.deepEqual(classifyMember('MyFitbitData/Jane/Physical Activity/steps-2016-04-13.json'), { kind: 'json', stream: 'steps', date: '2016-04-13' });
  t.deepEqual(classifyMember('Takeout/Google Health/Global Export Data/heart_rate-2026-06-10.json'), { kind: 'json', stream: 'heart-rate', date: '2026-06-10' });
  t.deepEqual(classifyMember('takeout/fitbit/GlobalExportData/DISTANCE-2024-01-01.JSON'), { kind: 'json', stream: 'distance', date: '2024-01-01' });
  t.deepEqual(classifyMember('Fitbit/Physical Activity_GoogleData/steps_2024-05-01.csv'), { kind: 'csv', stream: 'steps', date: '2024-05-01' });
  t.deepEqual(classifyMember('Takeout/Fitbit/Global Export Data/exercise-1000.json'), { kind: 'exercise', offset: 1000 });
  t.deepEqual(classifyMember('Takeout/Fitbit/Your Profile/Profile.csv'), { kind: 'profile' });
  t.deepEqual(classifyMember('MyFitbitData/Jane/Personal & Account/Profile.csv'), { kind: 'profile' });
  t.deepEqual(classifyMember('Takeout/Fitbit/Global Export Data/resting_heart_rate-2024-01-01.json'), { kind: 'skip' });
  t.deepEqual(classifyMember('Takeout/Google Health/Health Fitness Data_GoogleData/UserActivityProbabilities_1.csv'), { kind: 'skip' });
});
