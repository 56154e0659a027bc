// The Fitbit source against the fixture API over loopback, no faults: the profile, the
// activity log list (paginated by pagination.next, 64-bit logIds, the afterDate bound),
// intraday for every resource and detail with and without a time window, and units: an
// en_US answer (miles, feet, inches) lands on the same metres as a metric one.
import test from 'ava';
import { EtlError } from '../lib/errors.js';
import { INTRADAY_TYPES } from '../lib/schema.js';
import { INTRADAY_DETAILS, type FitbitUserContext, type UnitSystem } from '../sources/fitbit/types.js';
import { activitiesSince, activityPages, fetchIntradayDay, fetchProfile, type IntradayRequest } from '../sources/fitbit/index.js';
import { normalizeActivity } from '../transforms/activities.js';
import { strideMetres } from '../transforms/formulas.js';
import { normalizeIntraday } from '../transforms/intraday.js';
import { accepted, fitbitRequests, rig } from './fitbit-helpers.js';
import { SAMPLE_USER_ID } from '../fixtures/server.js';

const FITABASE = '1503960366';
/** The Fitabase user with more than 100 activities: its list has two pages. */
const MANY = '5577150313';

test('profile: the fields the transforms need; the real sample (UTF-8 BOM) parses', async (t) => {
  const r = await rig(t, { fitbit: { users: [FITABASE] } });
  const stored = r.api.fitbit.user(FITABASE).profile;
  const profile = await fetchProfile(r.session(FITABASE));
  t.is(profile.timezone, stored.timezone);
  t.is(profile.height, stored.height as number);
  t.is(profile.strideLengthWalking, stored.strideLengthWalking as number);
  t.is(profile.strideLengthRunning, stored.strideLengthRunning as number);
  t.is(profile.gender, stored.gender as string);
  t.true(Number.isInteger(profile.age) && profile.age! > 18);
  t.is(typeof profile.offsetFromUTCMillis, 'number');
  const sample = await fetchProfile(r.session(SAMPLE_USER_ID));
  t.is(sample.timezone, 'Europe/London');
  t.is(sample.offsetFromUTCMillis, -25200000);
});

test('activity list: afterDate + sort=asc + limit=100 + offset=0, then next verbatim until ""; every logId once and exact', async (t) => {
  const r = await rig(t, { fitbit: { users: [MANY] } });
  const stored = r.api.fitbit.user(MANY).activities;
  t.true(stored.length > 100, 'the user needs two pages');
  const seen: string[] = [];
  for await (const page of activityPages(r.session(MANY), '2016-01-01')) seen.push(...page.map((a) => accepted(a).logId));
  t.is(seen.length, stored.length);
  t.is(new Set(seen).size, seen.length);
  t.deepEqual(new Set(seen), new Set(stored.map((a) => a.logId.toString())));
  t.true(stored.some((a) => a.logId > 2n ** 53n), 'some logIds are past 2^53');

  const requests = fitbitRequests(r.api).map((e) => new URL(e.path, r.api.url));
  t.is(requests.length, 2);
  t.deepEqual(Object.fromEntries(requests[0]!.searchParams), { afterDate: '2016-01-01', sort: 'asc', limit: '100', offset: '0' });
  t.is(requests[1]!.searchParams.get('offset'), '100', 'the second page is the one next named');
});

test('activitiesSince lists an activity that starts exactly at local midnight of the first day', async (t) => {
  const r = await rig(t, { fitbit: { users: [FITABASE] } });
  const template = r.api.fitbit.user(FITABASE).activities[0]!;
  r.api.fitbit.putActivity(FITABASE, { ...template, logId: 9_007_199_254_740_993n, startTime: '2016-04-20T00:00:00.000-07:00', originalStartTime: '2016-04-20T00:00:00.000-07:00' });
  const ids: string[] = [];
  const starts: string[] = [];
  for await (const page of activitiesSince(r.session(FITABASE), '2016-04-20')) {
    for (const checked of page) {
      const a = accepted(checked);
      ids.push(a.logId);
      starts.push(a.startTime);
    }
  }
  t.true(ids.includes('9007199254740993'), 'the midnight activity is listed, its logId exact');
  t.true(starts.every((s) => s >= '2016-04-19'), 'nothing from before the day before');
});

test('intraday: one request per resource × detail; buckets from datasetInterval; sums agree across details; a time window cuts the day', async (t) => {
  const r = await rig(t, { fitbit: { users: [FITABASE] } });
  const session = r.session(FITABASE);
  const date = '2016-04-14';
  const sums = new Map<string, number[]>();
  for (const resource of INTRADAY_TYPES) {
    for (const detail of INTRADAY_DETAILS) {
      const day = await fetchIntradayDay(session, { resource, date, detail });
      const minutes = Number(detail.replace('min', ''));
      t.is(day.datasetInterval, minutes, `${resource} ${detail}`);
      t.is(day.datasetType, 'minute');
      t.is(day.units, 'metric');
      t.true(day.dataset.length > 0 && day.dataset.length <= 1440 / minutes);
      t.true(day.dataset.every((p) => Number(p.time.slice(3, 5)) % minutes === 0), 'points on bucket starts');
      const list = sums.get(resource) ?? [];
      list.push(day.dataset.reduce((a, p) => a + p.value, 0));
      sums.set(resource, list);
    }
  }
  t.is(fitbitRequests(r.api).length, INTRADAY_TYPES.length * INTRADAY_DETAILS.length);
  for (const [resource, [one, five, fifteen]] of sums) {
    t.true(Math.abs(one! - five!) < 1e-6 && Math.abs(one! - fifteen!) < 1e-6, `${resource}: ${one} ${five} ${fifteen}`);
  }
  t.true(sums.get('steps')![0]! > 0);

  const full = await fetchIntradayDay(session, { resource: 'steps', date, detail: '1min' });
  const windowed = await fetchIntradayDay(session, { resource: 'steps', date, detail: '1min', startTime: '08:00', endTime: '09:59' });
  t.true(windowed.dataset.length > 0);
  t.true(windowed.dataset.every((p) => p.time >= '08:00:00' && p.time <= '09:59:00'));
  t.deepEqual(windowed.dataset, full.dataset.filter((p) => p.time >= '08:00:00' && p.time <= '09:59:00'));
  t.true(fitbitRequests(r.api).at(-1)!.path.includes('/1d/1min/time/08:00/09:59.json'));
});

test('intraday: the real steps sample has 1,084 points, not 1,440, and lands as 1,084 one-minute rows', async (t) => {
  const r = await rig(t, { fitbit: { users: [] } });
  const session = r.session(SAMPLE_USER_ID);
  const day = await fetchIntradayDay(session, { resource: 'steps', date: '2016-03-08', detail: '1min' });
  t.is(day.dataset.length, 1084);
  const user: FitbitUserContext = { userId: SAMPLE_USER_ID, humanId: 'fitbit-samples', timeZone: 'Europe/London', profile: { timezone: 'Europe/London', offsetFromUTCMillis: 0 }, profileUnits: 'metric' };
  const { records, deadLetters } = normalizeIntraday(day, user, Date.now());
  t.is(deadLetters.length, 0);
  t.is(records.length, 1084);
  t.true(records.every((rec) => rec.interval === 60));
});

test('intraday: a wrong request is refused before anything is sent', async (t) => {
  const r = await rig(t, { fitbit: { users: [FITABASE] } });
  const session = r.session(FITABASE);
  const bad: IntradayRequest[] = [
    { resource: 'heart' as never, date: '2016-04-14', detail: '1min' },
    { resource: 'steps', date: '2016-04-14', detail: '1sec' as never },
    { resource: 'steps', date: '14/04/2016', detail: '1min' },
    { resource: 'steps', date: '2016-04-14', detail: '1min', startTime: '10:00' },
    { resource: 'steps', date: '2016-04-14', detail: '1min', startTime: '10:00', endTime: '09:00' },
    { resource: 'steps', date: '2016-04-14', detail: '1min', startTime: '25:00', endTime: '26:00' },
  ];
  for (const req of bad) {
    const err = await t.throwsAsync(fetchIntradayDay(session, req));
    t.is((err as EtlError).code, 'USAGE', JSON.stringify(req));
  }
  t.is(fitbitRequests(r.api).length, 0);
});

test('units: answers asked in en_US (miles, feet, inches) land on the same metres as metric ones', async (t) => {
  const r = await rig(t, { fitbit: { users: [FITABASE] } });
  const contexts = new Map<UnitSystem, FitbitUserContext>();
  const rows = new Map<UnitSystem, Map<string, number>>();
  const activities = new Map<UnitSystem, Map<string, { distance: number | null; elevation: unknown; pace: number | null }>>();
  for (const units of ['metric', 'en_US'] as const) {
    const session = r.session(FITABASE, { units });
    t.is(session.units, units);
    const profile = await fetchProfile(session);
    const ctx: FitbitUserContext = { userId: FITABASE, humanId: 'h', timeZone: profile.timezone, profile, profileUnits: session.units };
    contexts.set(units, ctx);
    const values = new Map<string, number>();
    for (const resource of ['distance', 'elevation'] as const) {
      const day = await fetchIntradayDay(session, { resource, date: '2016-04-14', detail: '15min' });
      t.is(day.units, units);
      for (const rec of normalizeIntraday(day, ctx, 0).records) values.set(rec.id, rec.value);
    }
    rows.set(units, values);
    const acts = new Map<string, { distance: number | null; elevation: unknown; pace: number | null }>();
    for await (const page of activitiesSince(session, '2016-04-13')) {
      for (const checked of page) {
        const raw = accepted(checked);
        if (units === 'en_US' && raw.distanceUnit !== undefined) t.is(raw.distanceUnit, 'Mile');
        const res = normalizeActivity(checked, ctx, 0);
        if (!res.ok) {
          t.fail(res.deadLetter.reason);
          continue;
        }
        acts.set(res.record.id, { distance: res.record.distance, elevation: JSON.parse(res.record.sourceData).elevationGain, pace: res.record.pace });
      }
    }
    activities.set(units, acts);
  }
  const metric = rows.get('metric')!;
  const us = rows.get('en_US')!;
  t.is(us.size, metric.size);
  t.true(metric.size > 10);
  let distanceSeen = false;
  for (const [id, m] of metric) {
    const u = us.get(id);
    t.not(u, undefined, id);
    // Miles and feet come rounded to 6 decimals: millimetres apart at most.
    t.true(Math.abs(u! - m) < 0.01, `${id}: ${u} vs ${m}`);
    if (id.includes(':distance:') && m > 0) distanceSeen = true;
  }
  t.true(distanceSeen);
  const am = activities.get('metric')!;
  const au = activities.get('en_US')!;
  t.true(am.size > 5);
  t.deepEqual([...au.keys()].sort(), [...am.keys()].sort());
  for (const [id, m] of am) {
    const u = au.get(id)!;
    t.true(Math.abs((u.distance ?? 0) - (m.distance ?? 0)) < 0.01, `${id} distance ${u.distance} vs ${m.distance}`);
    t.true(Math.abs(Number(u.elevation ?? 0) - Number(m.elevation ?? 0)) < 0.01, `${id} elevation`);
  }
  // Profile strides: inches in en_US, cm in metric, the same metres (inches come rounded to 0.1).
  for (const kind of ['walking', 'running'] as const) {
    const m = strideMetres(contexts.get('metric')!.profile, 'metric', kind)!;
    const u = strideMetres(contexts.get('en_US')!.profile, 'en_US', kind)!;
    t.true(Math.abs(m - u) < 0.003, `${kind} stride ${m} vs ${u}`);
  }
  t.not(contexts.get('en_US')!.profile.strideLengthWalking, contexts.get('metric')!.profile.strideLengthWalking, 'the en_US answer really was in inches');
});
