import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { normalizeIntraday, parseTimeOfDay } from '../transforms/intraday.js';
import { IANAZone } from 'luxon';
import { buildDayHourTable, zoneOffsetMinutes } from '../transforms/time.js';
import { isFlatBmrCalories } from '../transforms/formulas.js';
import type { IntradayRecord } from '../lib/schema.js';
import * as v from 'valibot';
import { checkIntradayPoints } from '../sources/fitbit/index.js';
import { intradayPointSchema, type FitbitUserContext, type IntradayDay, type IntradayDetail, type IntradayPoint } from '../sources/fitbit/types.js';
import { query } from './duckdb.js';

const SAMPLES = fileURLToPath(new URL('../../shared/data/fitbit-api-samples/', import.meta.url));
const SEEN_AT = Date.UTC(2024, 4, 1, 12, 0, 0); // frozen clock

function userIn(timeZone: string): FitbitUserContext {
  return { userId: '2ABC3D', humanId: 'h-1', timeZone, profileUnits: 'metric', profile: { timezone: timeZone, offsetFromUTCMillis: 0 } };
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** Every wall-clock bucket of a day, 00:00:00 up to 23:59, whether or not it exists that day. */
function wallTimes(stepMinutes: number): string[] {
  const out: string[] = [];
  for (let m = 0; m < 1440; m += stepMinutes) out.push(`${pad(Math.floor(m / 60))}:${pad(m % 60)}:00`);
  return out;
}

function day(date: string, times: readonly string[], detail: IntradayDetail = '1min', resource: IntradayDay['resource'] = 'steps'): IntradayDay {
  const minutes = detail === '1min' ? 1 : detail === '5min' ? 5 : 15;
  return {
    resource,
    date,
    detail,
    datasetInterval: minutes,
    datasetType: 'minute',
    dataset: times.map((time, i) => ({ time, value: i % 7 })),
    units: 'metric',
  };
}

/** ±hh:mm, written independently of the code under test. */
function offsetText(ms: number): string {
  const minutes = Math.round(ms / 60000);
  const abs = Math.abs(minutes);
  return `${minutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

interface DuckTime {
  ms: number;
  offset: string;
}

/** DuckDB (ICU): each local wall time of `date` AT TIME ZONE `zone` → epoch ms and the offset then. */
async function duckConvert(zone: string, date: string, stepMinutes: number): Promise<Map<string, DuckTime>> {
  const rows = await query(`
    WITH g AS (
      SELECT ts, ts AT TIME ZONE '${zone}' AS instant
      FROM generate_series(TIMESTAMP '${date} 00:00:00', TIMESTAMP '${date} 23:59:00', INTERVAL ${stepMinutes} MINUTE) t(ts)
    )
    SELECT strftime(ts, '%H:%M:%S') AS wall,
           epoch_ms(instant) AS ms,
           epoch_ms(instant AT TIME ZONE '${zone}') - epoch_ms(instant) AS offset_ms
    FROM g ORDER BY ts`);
  const out = new Map<string, DuckTime>();
  for (const row of rows) {
    out.set(String(row.wall), { ms: Number(row.ms), offset: offsetText(Number(row.offset_ms)) });
  }
  return out;
}

/** DuckDB: the instant of a wall time written with an explicit offset, and the offset in force then. */
async function duckWithOffset(date: string, time: string, offset: string, zone: string): Promise<DuckTime> {
  const [row] = await query(`
    SELECT epoch_ms(TIMESTAMPTZ '${date} ${time}${offset}') AS ms,
           epoch_ms(TIMESTAMPTZ '${date} ${time}${offset}' AT TIME ZONE '${zone}') - epoch_ms(TIMESTAMPTZ '${date} ${time}${offset}') AS offset_ms`);
  return { ms: Number(row!.ms), offset: offsetText(Number(row!.offset_ms)) };
}

const DAYS: Array<[zone: string, date: string, kind: string]> = [
  ['America/Los_Angeles', '2016-03-13', 'spring-forward'],
  ['America/Los_Angeles', '2016-11-06', 'fall-back'],
  ['America/Los_Angeles', '2016-07-01', 'normal'],
  ['America/Los_Angeles', '2024-03-10', 'spring-forward'],
  ['Europe/London', '2016-03-27', 'spring-forward'],
  ['Europe/London', '2016-10-30', 'fall-back'],
  ['Europe/London', '2016-01-15', 'normal'],
  ['Europe/London', '2024-10-27', 'fall-back'],
];

for (const [zone, date, kind] of DAYS) {
  for (const [detail, step] of [['1min', 1], ['15min', 15]] as const) {
    test(`${zone} ${date} (${kind}, ${detail}): every instant and offset equals DuckDB's AT TIME ZONE`, async (t) => {
      const times = wallTimes(step);
      const { records, deadLetters } = normalizeIntraday(day(date, times, detail), userIn(zone), SEEN_AT);
      t.deepEqual(deadLetters, []);
      t.is(records.length, times.length);
      const expected = await duckConvert(zone, date, step);
      t.is(expected.size, times.length);
      let mismatches = 0;
      for (const r of records) {
        const wall = r.id.slice(r.id.lastIndexOf('T') + 1, r.id.lastIndexOf('T') + 9);
        const e = expected.get(wall)!;
        if (r.timestamp !== e.ms || r.tzOffset !== e.offset) {
          mismatches++;
          if (mismatches < 5) t.log(`${wall}: got ${new Date(r.timestamp).toISOString()} ${r.tzOffset}, DuckDB ${new Date(e.ms).toISOString()} ${e.offset}`);
        }
      }
      t.is(mismatches, 0);
      t.is(new Set(records.map((r) => r.id)).size, records.length, 'ids unique');
      t.true(records.every((r) => r.interval === step * 60 && r.date === date && r.timeZone === zone && r.source === 'fitbit'));
      t.true(records.every((r) => r.createdAt === SEEN_AT && r.updatedAt === SEEN_AT));
      // The offset changes on transition days and only there.
      const offsets = new Set(records.map((r) => r.tzOffset));
      t.is(offsets.size, kind === 'normal' ? 1 : 2);
    });
  }
}

test('spring-forward: the missing hour lands on the instants of the next hour, with distinct ids', (t) => {
  const { records } = normalizeIntraday(day('2016-03-13', wallTimes(1)), userIn('America/Los_Angeles'), SEEN_AT);
  const byTime = new Map(records.map((r) => [r.id.slice(-8), r]));
  const skipped = byTime.get('02:30:00')!;
  const real = byTime.get('03:30:00')!;
  t.is(skipped.timestamp, Date.UTC(2016, 2, 13, 10, 30));
  t.is(skipped.timestamp, real.timestamp);
  t.not(skipped.id, real.id);
  t.is(byTime.get('01:59:00')!.tzOffset, '-08:00');
  t.is(skipped.tzOffset, '-07:00');
  t.is(real.tzOffset, '-07:00');
});

for (const [zone, date, dstOffset, stdOffset] of [
  ['America/Los_Angeles', '2016-11-06', '-07:00', '-08:00'],
  ['Europe/London', '2016-10-30', '+01:00', '+00:00'],
] as const) {
  test(`${zone} ${date}: a dataset with the repeated hour twice maps the second pass to the later instant`, async (t) => {
    // 00:00–01:59, then 01:00–23:59 again: times run backwards once (1500 points).
    const all = wallTimes(1);
    const times = [...all.slice(0, 120), ...all.slice(60)];
    const { records, deadLetters } = normalizeIntraday(day(date, times), userIn(zone), SEEN_AT);
    t.deepEqual(deadLetters, []);
    t.is(records.length, 1500);
    t.is(new Set(records.map((r) => r.id)).size, 1500, 'ids unique');
    t.is(new Set(records.map((r) => r.timestamp)).size, 1500, 'instants unique: both passes are real hours');
    const later = await duckConvert(zone, date, 1);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const time = times[i]!;
      const firstPassOfRepeat = i >= 60 && i < 120;
      const e = firstPassOfRepeat ? await duckWithOffset(date, time, dstOffset, zone) : later.get(time)!;
      if (r.timestamp !== e.ms || r.tzOffset !== e.offset) {
        t.fail(`${i} ${time}: got ${new Date(r.timestamp).toISOString()} ${r.tzOffset}, expected ${new Date(e.ms).toISOString()} ${e.offset}`);
        return;
      }
    }
    t.is(records[60]!.tzOffset, dstOffset);
    t.is(records[120]!.tzOffset, stdOffset);
    t.is(records[120]!.timestamp - records[60]!.timestamp, 3_600_000);
    t.true(records.slice(1).every((r, i) => r.timestamp > records[i]!.timestamp), 'instants increase through the repeat');
    // A single occurrence of a repeated wall time is the later instant and keeps the same id
    // as the second pass, so re-fetches line up.
    const once = normalizeIntraday(day(date, all), userIn(zone), SEEN_AT).records;
    const single = once.find((r) => r.id.includes('T01:30:00'))!;
    const second = records.filter((r) => r.id.includes('T01:30:00'))[1]!;
    t.is(single.id, second.id);
    t.is(single.timestamp, second.timestamp);
  });
}

test('a zone with a 30-minute transition not on the hour (Lord Howe) matches DuckDB', async (t) => {
  for (const date of ['2016-10-02', '2016-04-03']) {
    const times = wallTimes(1);
    const zone = 'Australia/Lord_Howe';
    const table = buildDayHourTable(zone, date)!;
    t.true(Array.from(table.uniform).some((u) => u === 0), 'some hour needs the exact path');
    const { records } = normalizeIntraday(day(date, times), userIn(zone), SEEN_AT);
    const expected = await duckConvert(zone, date, 1);
    const bad = records.filter((r) => {
      const e = expected.get(r.id.slice(r.id.lastIndexOf('T') + 1, r.id.lastIndexOf('T') + 9))!;
      return r.timestamp !== e.ms || r.tzOffset !== e.offset;
    });
    t.deepEqual(bad.map((r) => r.id), [], date);
  }
});

test('units: en_US distance miles and elevation feet become metres; en_GB keeps km', (t) => {
  const user = userIn('America/New_York');
  const points: IntradayPoint[] = [
    { time: '00:00:00', value: 1 },
    { time: '00:01:00', value: 0.0123 },
    { time: '00:02:00', value: 0 },
  ];
  const base = { date: '2019-05-01', detail: '1min' as const, datasetInterval: 1, datasetType: 'minute', dataset: points };
  const us = normalizeIntraday({ ...base, resource: 'distance', units: 'en_US' }, user, SEEN_AT).records;
  t.deepEqual(us.map((r) => r.value), [1609.344, 19.794931, 0]); // 0.0123 mi = 19.7949312 m, kept to 1 µm
  t.true(us.every((r) => r.unit === 'm' && r.level === null && r.mets === null));
  const elevation = normalizeIntraday({ ...base, resource: 'elevation', units: 'en_US', dataset: [{ time: '00:00:00', value: 10 }] }, user, SEEN_AT).records;
  t.is(elevation[0]!.value, 3.048);
  t.is(elevation[0]!.unit, 'm');
  const gb = normalizeIntraday({ ...base, resource: 'distance', units: 'en_GB' }, user, SEEN_AT).records;
  t.deepEqual(gb.map((r) => r.value), [1000, 12.3, 0]);
  const steps = normalizeIntraday({ ...base, resource: 'steps', units: 'en_US' }, user, SEEN_AT).records;
  t.deepEqual(steps.map((r) => [r.value, r.unit]), [[1, 'count'], [0.0123, 'count'], [0, 'count']]);
  const floors = normalizeIntraday({ ...base, resource: 'floors', units: 'metric' }, user, SEEN_AT).records;
  t.is(floors[0]!.unit, 'count');
});

/** A real response file → IntradayDay. */
function loadIntraday(file: string, resource: IntradayDay['resource'], date: string): IntradayDay {
  let text = readFileSync(SAMPLES + file, 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const body = JSON.parse(text) as Record<string, { dataset: IntradayPoint[]; datasetInterval: number; datasetType: string }>;
  const part = body[`activities-${resource}-intraday`]!;
  return { resource, date, detail: '1min', datasetInterval: part.datasetInterval, datasetType: part.datasetType, dataset: part.dataset, units: 'metric' };
}

test('real calories day: level and mets kept as reported, kcal, 60 s buckets; not a flat BMR day', (t) => {
  const input = loadIntraday('IntradayActivitiesCalories.json', 'calories', '2015-03-20');
  const { records, deadLetters } = normalizeIntraday(input, userIn('Europe/London'), SEEN_AT);
  t.deepEqual(deadLetters, []);
  t.is(records.length, 1440);
  records.forEach((r, i) => {
    const p = input.dataset[i]!;
    if (r.level !== p.level || r.mets !== p.mets || r.value !== p.value || r.unit !== 'kcal' || r.interval !== 60) {
      t.fail(`point ${i} differs: ${JSON.stringify(r)} vs ${JSON.stringify(p)}`);
    }
  });
  t.false(isFlatBmrCalories(records));
  t.true(records.every((r) => r.estimated === false), 'a worn day is not flagged');
  t.is(records[0]!.timestamp, Date.UTC(2015, 2, 20, 0, 0)); // London is on GMT in March before the change
});

test('a day of flat BMR calories (not worn) is flagged estimated on every row; other resources carry null', (t) => {
  const bmrPerMinute = 1650 / 1440;
  const points = Array.from({ length: 1440 }, (_, m) => ({
    time: `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}:00`,
    value: Math.round(bmrPerMinute * 1e4) / 1e4,
    level: 0,
    mets: 10,
  }));
  const flat: IntradayDay = { resource: 'calories', date: '2016-04-20', detail: '1min', datasetInterval: 1, datasetType: 'minute', dataset: points, units: 'metric' };
  const { records } = normalizeIntraday(flat, userIn('America/Los_Angeles'), SEEN_AT);
  t.is(records.length, 1440);
  t.true(records.every((r) => r.estimated === true));
  // One active minute makes it a worn day.
  const worn = { ...flat, dataset: points.map((p, i) => (i === 600 ? { ...p, value: 6.2, level: 3, mets: 80 } : p)) };
  t.true(normalizeIntraday(worn, userIn('America/Los_Angeles'), SEEN_AT).records.every((r) => r.estimated === false));
  const steps = normalizeIntraday({ ...flat, resource: 'steps', dataset: points.map((p) => ({ time: p.time, value: 0 })) }, userIn('UTC'), SEEN_AT);
  t.true(steps.records.every((r) => r.estimated === null));
});

test('real steps day with 1,084 points (not 1,440)', (t) => {
  const input = loadIntraday('IntradayActivitiesSteps.json', 'steps', '2016-03-08');
  const { records, deadLetters } = normalizeIntraday(input, userIn('America/Los_Angeles'), SEEN_AT);
  t.deepEqual(deadLetters, []);
  t.is(records.length, 1084);
  t.true(records.every((r) => r.level === null && r.mets === null && r.unit === 'count' && r.tzOffset === '-08:00'));
  t.is(records[0]!.timestamp, Date.UTC(2016, 2, 8, 8, 0));
  t.is(records[0]!.id, 'fitbit:h-1:steps:2016-03-08T00:00:00');
});

test('interval from datasetInterval/datasetType, falling back to the requested detail', (t) => {
  const user = userIn('UTC');
  const base = day('2020-01-01', ['00:00:00', '00:05:00']);
  t.is(normalizeIntraday({ ...base, datasetInterval: 5, datasetType: 'minute' }, user, SEEN_AT).records[0]!.interval, 300);
  t.is(normalizeIntraday({ ...base, datasetInterval: 15, datasetType: 'minute', detail: '15min' }, user, SEEN_AT).records[0]!.interval, 900);
  t.is(normalizeIntraday({ ...base, datasetInterval: 0, datasetType: '', detail: '5min' }, user, SEEN_AT).records[0]!.interval, 300);
});

test('bad points become dead letters and the rest of the day goes on', (t) => {
  const dataset: unknown[] = [
    { time: '00:00:00', value: 3 },
    { time: '24:00:00', value: 1 },
    { time: '1:00:00', value: 1 },
    { time: '01:00', value: 1 },
    { time: '01:61:00', value: 1 },
    { time: '01:02:00', value: 'lots' },
    { time: '01:03:00', value: Number.NaN },
    { time: '00:00:00', value: 4 }, // a duplicate on a day without a repeated hour
    { time: '02:00:00', value: '7' }, // numeric text is still a number
    { time: null, value: 1 },
    { time: '03:00:00', value: 2, level: 'high' },
  ];
  // As the source hands the day on: points checked for their types (sources/fitbit), the time
  // checked where it is parsed (the transform).
  const { points, rejected } = checkIntradayPoints(dataset);
  const { records, deadLetters } = normalizeIntraday({ ...day('2020-06-01', []), dataset: points, rejected }, userIn('Europe/London'), SEEN_AT);
  t.deepEqual(records.map((r) => [r.id.slice(-8), r.value]), [['00:00:00', 3], ['02:00:00', 7]]);
  t.is(deadLetters.length, 9);
  const reasons = deadLetters.map((d) => d.reason);
  t.deepEqual(reasons.slice(0, 4), [
    'dataset[5].value: expected a number, received "lots"',
    'dataset[6].value: expected a number, received NaN',
    'dataset[9].time: expected string, received null',
    'dataset[10].level: expected a number, received "high"',
  ]);
  t.deepEqual(deadLetters.slice(0, 4).map((d) => [d.context.index, d.raw]), [5, 6, 9, 10].map((i) => [i, dataset[i]]));
  t.regex(reasons[4]!, /bad time "24:00:00"/);
  t.regex(reasons[5]!, /bad time "1:00:00"/);
  t.regex(reasons[8]!, /00:00:00 occurs more than once/);
  t.true(deadLetters.every((d) => d.dataset === 'intraday' && d.context.resource === 'steps' && d.context.date === '2020-06-01'));
});

test('the hand-written point check accepts exactly what the point schema accepts, with the same values', (t) => {
  const table: unknown[] = [
    { time: '00:00:00', value: 3 }, { time: '00:01:00', value: '7' }, { time: '00:01:00', value: ' 1e3 ' }, { time: '00:01:00', value: '' },
    { time: '00:01:00', value: 'x' }, { time: '00:01:00', value: Infinity }, { time: '00:01:00', value: null }, { time: '00:01:00' },
    { value: 1 }, { time: 5, value: 1 }, { time: '00:01:00', value: 1, level: 2, mets: 10 }, { time: '00:01:00', value: 1, level: null, mets: '' },
    { time: '00:01:00', value: 1, level: '2' }, { time: '00:01:00', value: 1, mets: NaN }, { time: '00:01:00', value: 1, extra: true },
    null, 5, 'x', [1], [],
  ];
  for (const raw of table) {
    const byHand = checkIntradayPoints([raw]);
    const bySchema = v.safeParse(intradayPointSchema, raw);
    const schemaOk = bySchema.success && typeof raw === 'object' && raw !== null && !Array.isArray(raw);
    t.is(byHand.points.length === 1, schemaOk, JSON.stringify(raw));
    if (schemaOk && bySchema.success) {
      const strip = (p: object): object => Object.fromEntries(Object.entries(p).filter(([, x]) => x !== undefined));
      t.deepEqual(strip(byHand.points[0]!), strip(bySchema.output), JSON.stringify(raw));
    }
  }
});

test('a day that cannot be placed is one dead letter, not an exception', (t) => {
  const good = day('2020-06-01', ['00:00:00']);
  const cases: Array<[IntradayDay, FitbitUserContext, RegExp]> = [
    [good, userIn('Mars/Olympus_Mons'), /time zone "Mars\/Olympus_Mons"/],
    [{ ...good, date: '2020-02-30' }, userIn('UTC'), /date "2020-02-30"/],
    [{ ...good, units: 'imperial' as never }, userIn('UTC'), /unknown unit system "imperial"/],
    [{ ...good, resource: 'heart' as never }, userIn('UTC'), /unknown intraday resource "heart"/],
  ];
  for (const [input, user, reason] of cases) {
    const { records, deadLetters } = normalizeIntraday(input, user, SEEN_AT);
    t.deepEqual(records, []);
    t.is(deadLetters.length, 1);
    t.regex(deadLetters[0]!.reason, reason);
  }
});

test('time parser: char codes, strict', (t) => {
  const table: Array<[unknown, number]> = [
    ['00:00:00', 0], ['23:59:59', 86399], ['12:34:56', 45296], ['24:00:00', -1], ['12:60:00', -1],
    ['12:00:60', -1], ['12-00-00', -1], ['ab:cd:ef', -1], ['12:00:00Z', -1], ['', -1], [1200, -1], [undefined, -1],
  ];
  for (const [input, expected] of table) t.is(parseTimeOfDay(input), expected, String(input));
});

test('the records are plain objects with every intraday column', (t) => {
  const r: IntradayRecord = normalizeIntraday(day('2020-06-01', ['10:00:00'], '1min', 'calories'), userIn('UTC'), SEEN_AT).records[0]!;
  t.deepEqual(Object.keys(r).sort(), ['createdAt', 'date', 'estimated', 'humanId', 'id', 'interval', 'level', 'mets', 'source', 'timeZone', 'timestamp', 'type', 'tzOffset', 'unit', 'updatedAt', 'userId', 'value'].sort());
  t.is(r.tzOffset, '+00:00');
  t.is(r.level, null); // calories without level/mets in the point: null, not invented
});

test('zone offsets (Intl longOffset) agree with luxon across zones, odd offsets and LMT', (t) => {
  const zones = ['America/Los_Angeles', 'Europe/London', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'Pacific/Chatham', 'America/St_Johns', 'UTC'];
  const instants: number[] = [Date.UTC(1800, 0, 1), Date.UTC(1970, 0, 1)];
  for (let i = 0; i < 400; i++) instants.push(Date.UTC(2000, 0, 1) + i * 79_999_937_000 / 100); // ~25 years, odd steps
  for (const zone of zones) {
    const lz = IANAZone.create(zone);
    for (const ms of instants) {
      const ours = zoneOffsetMinutes(zone, ms);
      if (Math.abs(ours - lz.offset(ms)) > 1e-9) {
        t.fail(`${zone} at ${new Date(ms).toISOString()}: ${ours} vs luxon ${lz.offset(ms)}`);
        return;
      }
    }
  }
  t.true(Number.isNaN(zoneOffsetMinutes('Mars/Olympus_Mons', 0)));
  t.is(zoneOffsetMinutes('Europe/London', Date.UTC(1800, 0, 1)), -1.25); // LMT −0:01:15
});
