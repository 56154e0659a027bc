// The Google Health normalizers, table-driven: ids shared with the legacy Fitbit normalizer (the
// real one, fed the same minute), local dates from each point's own offset, units, absent vs 0,
// exercises (64-bit ids, pace and speed over the active time), and per-record validation.
import test from 'ava';
import { check, DailyRollup, Exercise, POINT_SCHEMAS, type GhPoint } from '../sources/google-health/types.js';
import type { FitbitUserContext, IntradayDay } from '../sources/fitbit/types.js';
import { normalizeIntraday } from '../transforms/intraday.js';
import { GhSeenIds, ZoneDays, exerciseActivityType, fixedOffsetZone, normalizeDailyRollups, normalizeExercise, normalizeGhPoints } from '../transforms/google-health.js';

const SEEN = Date.UTC(2026, 11, 1);
const LA = 'America/Los_Angeles';
const user = { humanId: '1503960366', userId: '7000000000000000001', timeZone: LA };

function fitbitUser(zone = LA): FitbitUserContext {
  return { userId: '1503960366', humanId: '1503960366', timeZone: zone, profile: { timezone: zone, offsetFromUTCMillis: 0 }, profileUnits: 'metric' };
}

const point = (type: GhPoint['type'], startTime: string, startUtcOffset: string, value: string | number): GhPoint => ({ type, startTime, startUtcOffset, value });

test('a Google point has the id, instant and offset of the legacy Fitbit point of the same minute', (t) => {
  const cases: Array<[string, string, string, string]> = [
    // date, time, Google instant, offset
    ['2016-04-20', '08:15:00', '2016-04-20T15:15:00Z', '-25200s'],
    ['2016-03-13', '03:30:00', '2016-03-13T10:30:00Z', '-25200s'], // spring-forward day, after the gap
    ['2016-11-06', '01:30:00', '2016-11-06T09:30:00Z', '-28800s'], // fall-back day, repeated hour (the later pass)
    ['2016-11-06', '01:30:00', '2016-11-06T08:30:00Z', '-25200s'], // the earlier pass
  ];
  for (const [date, time, instant, offset] of cases) {
    const g = normalizeGhPoints([point('steps', instant, offset, '17')], user, new ZoneDays(LA), SEEN, new GhSeenIds());
    t.is(g.records.length, 1, `${date} ${time}`);
    // The Fitbit normalizer, given that minute (twice on the fall-back day, so both passes exist).
    const repeated = date === '2016-11-06';
    const day: IntradayDay = {
      resource: 'steps', date, detail: '1min', datasetInterval: 1, datasetType: 'minute', units: 'metric',
      dataset: repeated ? [{ time, value: 17 }, { time, value: 17 }] : [{ time, value: 17 }],
    };
    const f = normalizeIntraday(day, fitbitUser(), SEEN).records.find((r) => r.timestamp === Date.parse(instant));
    t.truthy(f, `the Fitbit normalizer has ${date}T${time} at ${instant}`);
    t.is(g.records[0]!.id, f!.id);
    t.is(g.records[0]!.timestamp, f!.timestamp);
    t.is(g.records[0]!.tzOffset, f!.tzOffset);
    t.is(g.records[0]!.date, date);
    t.is(g.records[0]!.timeZone, LA);
  }
});

test('local date and time come from the point\'s own offset, not the user\'s zone', (t) => {
  // 23:30 in New York on the 16th is 20:30 in Los Angeles: the row belongs to the 16th either way,
  // but 00:30 in New York on the 17th is the 16th in Los Angeles — New York's date wins.
  const r = normalizeGhPoints([point('steps', '2016-04-17T04:30:00Z', '-14400s', '5')], user, new ZoneDays(LA), SEEN, new GhSeenIds()).records[0]!;
  t.is(r.date, '2016-04-17');
  t.is(r.id, 'fitbit:1503960366:steps:2016-04-17T00:30:00');
  t.is(r.tzOffset, '-04:00');
  t.is(r.timeZone, 'Etc/GMT+4');
  t.is(fixedOffsetZone(330), 'GMT+05:30');
  t.is(fixedOffsetZone(0), 'UTC');
});

test('units: mm to m exactly, kcal and counts as sent; a served 0 is a row with 0', (t) => {
  const pts = [
    point('distance', '2016-04-20T15:15:00Z', '-25200s', '3590400'),
    point('altitude', '2016-04-20T15:15:00Z', '-25200s', '3048'),
    point('active-energy-burned', '2016-04-20T15:15:00Z', '-25200s', 1.2345),
    point('floors', '2016-04-20T15:15:00Z', '-25200s', '0'),
  ];
  const rows = normalizeGhPoints(pts, user, new ZoneDays(LA), SEEN, new GhSeenIds()).records;
  t.deepEqual(rows.map((r) => [r.type, r.value, r.unit]), [['distance', 3590.4, 'm'], ['elevation', 3.048, 'm'], ['active-calories', 1.2345, 'kcal'], ['floors', 0, 'count']]);
});

test('a second point of the same local minute is a dead letter, not an overwrite', (t) => {
  const seen = new GhSeenIds();
  const r = normalizeGhPoints([point('steps', '2016-04-20T15:15:00Z', '-25200s', '1'), point('steps', '2016-04-20T12:15:00Z', '-14400s', '2')], user, new ZoneDays(LA), SEEN, seen);
  t.is(r.records.length, 1);
  t.is(r.deadLetters.length, 1);
  t.regex(r.deadLetters[0]!.reason, /second point for local time 2016-04-20T08:15:00/);
});

test('records that fail their schema come back one by one with a reason', (t) => {
  const good = { steps: { interval: { startTime: '2016-04-20T15:15:00Z', startUtcOffset: '-25200s', endTime: '2016-04-20T15:16:00Z', endUtcOffset: '-25200s' }, count: '12' } };
  t.deepEqual(check(POINT_SCHEMAS.steps, good), { ok: true, value: point('steps', '2016-04-20T15:15:00Z', '-25200s', '12') });
  const bad = check(POINT_SCHEMAS.steps, { steps: { ...good.steps, count: 'twelve' } });
  t.false(bad.ok);
  if (!bad.ok) t.regex(bad.reason, /steps\.count/);
  const noOffset = check(POINT_SCHEMAS.steps, { steps: { ...good.steps, interval: { ...good.steps.interval, startUtcOffset: '-07:00' } } });
  t.false(noOffset.ok);
});

test('exercise: 64-bit id exact, elapsed duration, metres, pace and speed over the active time', (t) => {
  const raw = {
    name: 'users/me/dataTypes/exercise/dataPoints/9007199254740993',
    exercise: {
      interval: { startTime: '2016-04-20T15:00:00Z', startUtcOffset: '-25200s', endTime: '2016-04-20T15:31:00Z', endUtcOffset: '-25200s' },
      exerciseType: 'RUNNING', activeDuration: '1800s',
      metricsSummary: { distanceMillimeters: 5000000, steps: '6000', caloriesKcal: 412.5, averageHeartRateBeatsPerMinute: '152' },
      updateTime: '2016-04-20T16:00:00Z',
    },
  };
  const e = check(Exercise, raw);
  t.true(e.ok);
  if (!e.ok) return;
  const r = normalizeExercise(e.value, user, new ZoneDays(LA), SEEN);
  t.true(r.ok);
  if (!r.ok) return;
  t.is(r.record.id, 'fitbit-9007199254740993');
  t.is(r.record.duration, 1860);
  t.is(r.record.endTime - r.record.startTime, 1_860_000);
  t.is(r.record.distance, 5000);
  t.is(r.record.pace, 1800 / 5); // s/km over 30 active minutes
  t.is(r.record.speed, 5 / 0.5); // km/h
  t.is(r.record.steps, 6000);
  t.is(r.record.tzOffset, '-07:00');
  t.is(r.record.date, '2016-04-20');
  t.is(r.record.type, 'running');
  t.is(r.record.updatedAt, Date.parse('2016-04-20T16:00:00Z'));
  t.regex(r.record.sourceData, /"averageHeartRateBeatsPerMinute":"152"/);
  t.false(check(Exercise, { ...raw, name: 'users/me/dataTypes/steps/dataPoints/1' }).ok);
  t.is(exerciseActivityType('OTHER', 'Evening hike'), 'hiking');
  t.is(exerciseActivityType('SOME_NEW_TYPE'), 'other');
});

test('daily roll-ups: an absent value is null, a present 0 is 0', (t) => {
  const day = (o: object) => {
    const r = check(DailyRollup, { civilStartTime: { date: { year: 2016, month: 4, day: 20 } }, ...o });
    if (!r.ok) throw new Error(r.reason);
    return r.value;
  };
  const rec = normalizeDailyRollups('2016-04-20', { steps: day({ steps: { countSum: '0' } }), distance: day({}), 'total-calories': day({ totalCalories: { kcalSum: 1834.25 } }) }, user, SEEN);
  t.is(rec.id, 'google-health:1503960366:2016-04-20');
  t.is(rec.steps, 0);
  t.is(rec.distance, null);
  t.is(rec.calories, 1834.25);
  t.is(rec.source, 'google-health');
});
