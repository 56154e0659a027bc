// Google Health intraday pages: the hand-written point check (sources/google-health/points.ts)
// against the valibot schema it stands in for, a bad point amid good ones (a dead letter with
// valibot's reason, the rest of the page lands), and the columnar normalizer on a page that spans
// several local dates; end to end, a loopback API whose page holds bad points, run through the
// pipeline and read back with DuckDB.
import test from 'ava';
import { promises as fs } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { packedRecords } from '../lib/batch.js';
import { createLogger } from '../lib/log.js';
import { parseRunArgs } from '../pipelines/registry.js';
import type { RunConfig } from '../pipelines/config.js';
import { runPipelines } from '../pipelines/run.js';
import { checkPointPage } from '../sources/google-health/points.js';
import { POINT_SCHEMAS, check, type GhIntradayType } from '../sources/google-health/types.js';
import { GhSeenIds, ZoneDays, normalizeGhPointColumns } from '../transforms/google-health.js';
import { query } from './duckdb.js';

const LA = 'America/Los_Angeles';
const user = { humanId: 'h1', userId: '7000000000000000001', timeZone: LA };
const SEEN = Date.UTC(2026, 11, 1);

const interval = (start: unknown, offset: unknown = '-25200s', end: unknown = '2016-04-20T15:16:00Z', endOffset: unknown = '-25200s'): Record<string, unknown> => ({ startTime: start, startUtcOffset: offset, endTime: end, endUtcOffset: endOffset });
const steps = (count: unknown, iv: Record<string, unknown> = interval('2016-04-20T15:15:00Z')): unknown => ({ steps: { interval: iv, count } });

test('the hand check takes exactly what the schema takes, and reads the same values', (t) => {
  const cases: Array<[GhIntradayType, unknown]> = [
    ['steps', steps('12')],
    ['steps', steps(12)],
    ['steps', steps('-3')],
    ['steps', steps('1234567890123456789')],
    ['steps', steps('12345678901234567890')], // 20 digits: not an int64
    ['steps', steps('twelve')],
    ['steps', steps(1.5)],
    ['steps', steps(2 ** 53)],
    ['steps', steps(null)],
    ['steps', steps('7', interval('2016-04-20T15:15:00.250Z'))],
    ['steps', steps('7', interval('2016-04-20T08:15:00-07:00'))],
    ['steps', steps('7', interval('2016-02-30T15:15:00Z'))],
    ['steps', steps('7', interval('2016-04-20T24:15:00Z'))],
    ['steps', steps('7', interval('2016-13-20T15:15:00Z'))],
    ['steps', steps('7', interval('2016-04-20 15:15:00Z'))],
    ['steps', steps('7', interval('2016-04-20T15:15:00Z', '-07:00'))],
    ['steps', steps('7', interval('2016-04-20T15:15:00Z', '-25200.5s'))],
    ['steps', steps('7', interval('2016-04-20T15:15:00Z', -25200))],
    ['steps', steps('7', interval('2016-04-20T15:15:00Z', '-25200s', 'later'))],
    ['steps', steps('7', interval('2016-04-20T15:15:00Z', '-25200s', '2016-04-20T15:16:00Z', '0s'))],
    ['steps', steps('7', interval('2016-04-20T15:15:00Z', '-25200s', '2016-04-20T15:16:00Z', 'x'))],
    ['steps', { steps: { count: '7' } }],
    ['steps', { distance: { interval: interval('2016-04-20T15:15:00Z'), millimeters: '7' } }],
    ['steps', [steps('7')]],
    ['steps', null],
    ['steps', 'steps'],
    ['distance', { distance: { interval: interval('2016-04-20T15:15:00Z'), millimeters: '3590400' } }],
    ['altitude', { altitude: { interval: interval('2016-04-20T15:15:00Z'), gainMillimeters: '3048' } }],
    ['active-energy-burned', { activeEnergyBurned: { interval: interval('2016-04-20T15:15:00Z'), kcal: 1.2345 } }],
    ['active-energy-burned', { activeEnergyBurned: { interval: interval('2016-04-20T15:15:00Z'), kcal: '1.2' } }],
    ['heart-rate', { heartRate: { sampleTime: { physicalTime: '2016-04-20T15:15:07Z', utcOffset: '-25200s' }, beatsPerMinute: '72' } }],
    ['heart-rate', { heartRate: { sampleTime: { physicalTime: '2016-04-20T15:15:07Z' }, beatsPerMinute: '72' } }],
  ];
  for (const [type, raw] of cases) {
    const schema = check(POINT_SCHEMAS[type], raw);
    const page = checkPointPage(type, [raw]);
    const label = `${type} ${JSON.stringify(raw)}`;
    t.is(page.length === 1, schema.ok, label);
    if (schema.ok) {
      t.is(page.startMs[0], Date.parse(schema.value.startTime), label);
      t.is(page.offsets[page.offsetIndex[0]!], schema.value.startUtcOffset, label);
      t.is(page.values[0], Number(schema.value.value), label);
    } else {
      t.is(page.invalid.length, 1, label);
      t.is(page.invalid[0]!.reason, schema.reason, label);
      t.is(page.invalid[0]!.raw, raw, label);
    }
  }
});

test('a bad point amid good ones: a dead letter with its reason, the rest of the page lands in its local dates', (t) => {
  // Newest first, across two local dates in Los Angeles (-07:00) and one point recorded in New York (-04:00).
  const raws = [
    steps('5', interval('2016-04-21T07:01:00Z')), // 2016-04-21 00:01 LA
    steps('6', interval('2016-04-21T06:59:00Z')), // 2016-04-20 23:59 LA
    steps('five', interval('2016-04-21T06:58:00Z')), // bad value
    steps('7', interval('2016-04-20T15:15:00Z', '-90000s')), // offset beyond ±18 h
    steps('8', interval('2016-04-20T12:15:00Z', '-14400s')), // 08:15 in New York
    steps('9', interval('2016-04-20T15:15:00Z')), // 08:15 in LA: that local minute is taken
    steps('0', interval('2016-04-20T07:00:00Z')), // 2016-04-20 00:00 LA: a true zero
  ];
  const page = checkPointPage('steps', raws);
  t.is(page.length, 6);
  t.is(page.invalid.length, 1);
  t.regex(page.invalid[0]!.reason, /steps\.count/);
  const r = normalizeGhPointColumns(page, user, new ZoneDays(LA), SEEN, new GhSeenIds());
  t.deepEqual(r.partitions.map((p) => [p.date, p.table.rowCount]), [['2016-04-21', 1], ['2016-04-20', 3]]);
  const rows = r.partitions.flatMap((p) => packedRecords('intraday', p.date, p.table));
  t.deepEqual(rows.map((x) => [x['id'], x['value'], x['tzOffset'], x['timeZone']]), [
    ['fitbit:h1:steps:2016-04-21T00:01:00', 5, '-07:00', LA],
    ['fitbit:h1:steps:2016-04-20T23:59:00', 6, '-07:00', LA],
    ['fitbit:h1:steps:2016-04-20T08:15:00', 8, '-04:00', 'Etc/GMT+4'],
    ['fitbit:h1:steps:2016-04-20T00:00:00', 0, '-07:00', LA],
  ]);
  t.deepEqual(rows.map((x) => x['timestamp']), [Date.parse('2016-04-21T07:01:00Z'), Date.parse('2016-04-21T06:59:00Z'), Date.parse('2016-04-20T12:15:00Z'), Date.parse('2016-04-20T07:00:00Z')]);
  const reasons = r.deadLetters.map((d) => d.reason);
  t.is(reasons.length, 3);
  t.regex(reasons[0]!, /steps\.count/);
  t.regex(reasons[1]!, /UTC offset "-90000s"/);
  t.regex(reasons[2]!, /second point for local time 2016-04-20T08:15:00/);
  t.deepEqual(r.deadLetters.map((d) => d.context['dataType']), ['steps', 'steps', 'steps']);
});

test('end to end: a page with bad points lands its good points and writes the bad ones to the dead letters', async (t) => {
  const good = (minute: number, count: string): unknown => steps(count, interval(`2016-04-20T15:${String(minute).padStart(2, '0')}:00Z`, '-25200s', `2016-04-20T15:${String(minute + 1).padStart(2, '0')}:00Z`));
  const points = [good(30, '30'), { steps: { interval: interval('2016-04-20T15:29:00Z'), count: 'x' } }, good(28, '28'), { steps: { count: '1' } }, good(27, '0'), good(26, '26')];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.writeHead(200, { 'content-type': 'application/json' });
    if (url.pathname === '/v4/users/me/identity') res.end(JSON.stringify({ healthUserId: '7000000000000000001', legacyUserId: 'CV5TKH' }));
    else if (url.pathname === '/v4/users/me/settings') res.end(JSON.stringify({ timeZone: LA }));
    else res.end(JSON.stringify({ dataPoints: points }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ghpts-'));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await fs.rm(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const users = path.join(dir, 'users.json');
  await fs.writeFile(users, JSON.stringify([{ provider: 'google-health', accessToken: 'at-1', refreshToken: 'rt-1' }]), { mode: 0o600 });
  const out = path.join(dir, 'out');
  const env = { GOOGLE_HEALTH_API_URL: url, GOOGLE_OAUTH_TOKEN_URL: `${url}/token`, GOOGLE_CLIENT_ID: 'cid', GOOGLE_CLIENT_SECRET: 'secret' };
  const config = parseRunArgs(['google-health-intraday', '--users', users, '--out', out, '--since', '2016-04-20', '--until', '2016-04-20', '--resources', 'steps'], env, dir) as RunConfig;
  const lines: string[] = [];
  const summary = await runPipelines(config, { log: createLogger({ json: true, write: (line) => lines.push(line) }) });
  t.is(summary.status, 'complete', lines.join('\n'));
  const files = summary.files['intraday']!.map((f) => `'${path.join(out, 'intraday', f)}'`);
  const rows = await query(`SELECT id, value, strftime("timestamp", '%Y-%m-%dT%H:%M:%SZ') AS ts FROM read_parquet([${files.join(', ')}]) ORDER BY id`);
  t.deepEqual(rows, [
    { id: 'fitbit:CV5TKH:steps:2016-04-20T08:26:00', value: 26, ts: '2016-04-20T15:26:00Z' },
    { id: 'fitbit:CV5TKH:steps:2016-04-20T08:27:00', value: 0, ts: '2016-04-20T15:27:00Z' },
    { id: 'fitbit:CV5TKH:steps:2016-04-20T08:28:00', value: 28, ts: '2016-04-20T15:28:00Z' },
    { id: 'fitbit:CV5TKH:steps:2016-04-20T08:30:00', value: 30, ts: '2016-04-20T15:30:00Z' },
  ]);
  const letters = summary.pipelines[0]!.deadLetterFiles;
  t.is(letters.length, 1);
  const dead = (await fs.readFile(path.isAbsolute(letters[0]!) ? letters[0]! : path.join(out, letters[0]!), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { reason: string; raw: unknown });
  t.is(dead.length, 2);
  t.regex(dead[0]!.reason, /steps\.count/);
  t.deepEqual(dead[0]!.raw, points[1]);
  t.regex(dead[1]!.reason, /steps\.interval/);
  t.deepEqual(dead[1]!.raw, points[3]);
});
