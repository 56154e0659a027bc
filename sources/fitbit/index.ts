// Fitbit Web API sources (API-REFERENCE.md §A): the profile, the activity log list
// (paginated by pagination.next) and intraday datasets by date. Bodies are validated here,
// once; past this file everything is typed.
import * as v from 'valibot';
import { addDays } from '../../lib/dates.js';
import { EtlError } from '../../lib/errors.js';
import { resolveNext } from '../../lib/http.js';
import { paginate, type Paginator } from '../../lib/paginate.js';
import { INTRADAY_TYPES, type IntradayType } from '../../lib/schema.js';
import type { FitbitSession } from './client.js';
import { absentOr, issueReason, NUMERIC_TEXT, optionalText, received, type Checked } from '../../lib/validate.js';
import { checkActivity, INTRADAY_DETAILS, type FitbitProfile, type IntradayDay, type IntradayDetail, type IntradayPoint, type RawActivity, type RejectedPoint, type UnitSystem } from './types.js';

export { FitbitSession, FitbitShared, GOOGLE_HEALTH_SUCCESSOR, METRIC_ACCEPT_LANGUAGE, acceptLanguageFor } from './client.js';

/**
 * Body checks. JSON that does not parse (cut short, an HTML page) is thrown as a plain error
 * and retried; JSON of the wrong shape is a BAD_RESPONSE that asking again will not fix.
 */
function shape(message: string): EtlError {
  return new EtlError('BAD_RESPONSE', message);
}

function parseJson(text: string): unknown {
  return JSON.parse(text);
}

/** The unit system a response is written in when nothing else says (metric is what we ask for). */
export const RESPONSE_UNITS: UnitSystem = 'metric';

/** Adds the user and what was asked for to a body error. */
function withWhere(err: unknown, session: FitbitSession, what: string): unknown {
  if (err instanceof EtlError && err.code === 'BAD_RESPONSE' && !err.message.startsWith('user ')) {
    return new EtlError('BAD_RESPONSE', `user ${session.humanId}: ${what}: ${err.message}`, { ...err.context, user: session.humanId });
  }
  return err;
}

// ---------------------------------------------------------------- profile

const profileNumber = v.optional(v.nullable(v.pipe(v.number(), v.finite('a number'))));
/** Text the transforms only read when it is there: anything else counts as absent. */
const profileText = v.fallback(v.optional(v.string()), undefined);

/** The profile (§A.3): the zone is required; the rest the transforms use when present. */
const profileSchema = v.object({
  user: v.looseObject({
    timezone: v.pipe(v.string(), v.nonEmpty('an IANA time zone')),
    offsetFromUTCMillis: profileNumber,
    height: profileNumber,
    weight: profileNumber,
    strideLengthWalking: profileNumber,
    strideLengthRunning: profileNumber,
    age: profileNumber,
    gender: profileText,
    dateOfBirth: profileText,
    locale: profileText,
  }),
});

export function parseProfile(text: string): FitbitProfile {
  const { user } = parseBody(profileSchema, parseJson(text), 'profile body');
  const profile: FitbitProfile = { timezone: user.timezone, offsetFromUTCMillis: user.offsetFromUTCMillis ?? 0 };
  for (const key of ['height', 'weight', 'strideLengthWalking', 'strideLengthRunning', 'age'] as const) {
    const n = user[key];
    if (n !== undefined && n !== null) profile[key] = n;
  }
  for (const key of ['gender', 'dateOfBirth', 'locale'] as const) {
    const t = user[key];
    if (t !== undefined) profile[key] = t;
  }
  return profile;
}

/** GET the profile (every call is a request; pipelines keep it for the run, see FitbitShared.profiles). */
export async function fetchProfile(session: FitbitSession): Promise<FitbitProfile> {
  try {
    const { value } = await session.get(session.url(`1/user/${encodeURIComponent(session.userId)}/profile.json`), parseProfile);
    return value;
  } catch (err) {
    throw withWhere(err, session, 'profile');
  }
}

// ---------------------------------------------------------------- activity log list

export interface ActivityPage {
  /** Each record validated on its own: one that fails is Rejected (a dead letter), the rest of the page lands. */
  activities: Checked<RawActivity>[];
  next: string;
}

/** The activity list body around its records (§A.1); a body of another shape is a BAD_RESPONSE. */
const activityListSchema = v.looseObject({
  activities: v.array(v.unknown()),
  pagination: v.looseObject({ next: v.string() }),
});

/** Validates a body against `schema`; one of the wrong shape is a BAD_RESPONSE that says where. */
function parseBody<S extends v.GenericSchema>(schema: S, body: unknown, what: string): v.InferOutput<S> {
  const result = v.safeParse(schema, body, { abortEarly: true });
  if (!result.success) throw shape(`${what}: ${issueReason(result.issues)}`);
  return result.output;
}

/**
 * logId is an unsigned 64-bit integer (§A.0) and JSON.parse would round it past 2^53:
 * quote it in the text before parsing so it arrives as the exact decimal string.
 */
export function parseActivityPage(text: string): ActivityPage {
  const body = parseBody(activityListSchema, parseJson(text.replace(/"logId"\s*:\s*(\d+)/g, '"logId":"$1"')), 'activity list body');
  return { activities: body.activities.map(checkActivity), next: body.pagination.next };
}

export interface ActivityListOptions {
  /** First local date (inclusive): afterDate is exclusive in Fitbit's API, so we ask from the day before. */
  since: string;
  /** Most pages to follow (guard). */
  maxPages?: number;
}

/**
 * The afterDate that lists every activity starting on `since` (a local date) or later.
 * afterDate is exclusive, and whether a bare date means that day's midnight or its end is
 * not documented: the day before works either way (callers drop the records before `since`).
 */
export function afterDateFor(since: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(since)) throw new EtlError('USAGE', `activity list: "${since}" is not a date YYYY-MM-DD`);
  return addDays(since, -1);
}

export function activityListPaginator(session: FitbitSession, afterDateTime: string): Paginator<ActivityPage> {
  const context = { user: session.humanId, stream: 'activities' };
  return {
    first: () =>
      session.url(
        `1/user/${encodeURIComponent(session.userId)}/activities/list.json?` +
          new URLSearchParams({ afterDate: afterDateTime, sort: 'asc', limit: '100', offset: '0' }).toString(),
      ),
    // Followed verbatim (Fitbit documents offset 0 only): never built from our own offsets.
    next: (page) => (page.next === '' ? null : resolveNext(page.next, session.base, context)),
    isEmpty: (page) => page.activities.length === 0,
  };
}

/** Yields the activity log list page by page, oldest first, from `afterDateTime` (exclusive; yyyy-MM-dd or yyyy-MM-ddTHH:mm:ss). */
export async function* activityPages(session: FitbitSession, afterDateTime: string, maxPages = 10_000): AsyncGenerator<Checked<RawActivity>[]> {
  const paginator = activityListPaginator(session, afterDateTime);
  const fetchPage = async (url: string): Promise<ActivityPage> => {
    try {
      return (await session.get(url, parseActivityPage)).value;
    } catch (err) {
      throw withWhere(err, session, 'activity list');
    }
  };
  for await (const page of paginate(paginator, fetchPage, { maxRequests: maxPages, context: { user: session.humanId, stream: 'activities' } })) {
    yield page.activities;
  }
}

/** Activities starting on local date `since` or later, page by page, oldest first (records of the day before included: drop them by date). */
export function activitiesSince(session: FitbitSession, since: string, maxPages = 10_000): AsyncGenerator<Checked<RawActivity>[]> {
  return activityPages(session, afterDateFor(since), maxPages);
}

// ---------------------------------------------------------------- intraday

export interface IntradayRequest {
  resource: IntradayType;
  date: string;
  detail: IntradayDetail;
  /** Optional window "HH:mm" (both or neither). */
  startTime?: string;
  endTime?: string;
}

const HH_MM = /^([01]\d|2[0-3]):[0-5]\d$/;

/** Checks a request before it is sent: a wrong one is the caller's mistake, not the server's. */
export function checkIntradayRequest(r: IntradayRequest): void {
  if (!(INTRADAY_TYPES as readonly string[]).includes(r.resource)) throw new EtlError('USAGE', `intraday: unknown resource "${r.resource}" (one of ${INTRADAY_TYPES.join(', ')})`);
  if (!(INTRADAY_DETAILS as readonly string[]).includes(r.detail)) throw new EtlError('USAGE', `intraday: unknown detail "${r.detail}" (one of ${INTRADAY_DETAILS.join(', ')})`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(r.date)) throw new EtlError('USAGE', `intraday: "${r.date}" is not a date YYYY-MM-DD`);
  if ((r.startTime === undefined) !== (r.endTime === undefined)) throw new EtlError('USAGE', 'intraday: give both startTime and endTime, or neither');
  if (r.startTime !== undefined && r.endTime !== undefined) {
    if (!HH_MM.test(r.startTime) || !HH_MM.test(r.endTime) || r.startTime > r.endTime) {
      throw new EtlError('USAGE', `intraday: time window ${r.startTime}-${r.endTime} must be HH:mm-HH:mm, start not after end`);
    }
  }
}

export function intradayPath(userId: string, r: IntradayRequest): string {
  const window = r.startTime && r.endTime ? `/time/${r.startTime}/${r.endTime}` : '';
  return `1/user/${encodeURIComponent(userId)}/activities/${r.resource}/date/${r.date}/1d/${r.detail}${window}.json`;
}

/** The envelope of an intraday response (§A.2), under its key `activities-<resource>-intraday`. */
function intradaySchema(key: string) {
  const day = v.pipe(
    v.looseObject({
      dataset: v.array(v.unknown()),
      datasetInterval: absentOr(v.pipe(v.number(), v.integer('a whole number ≥ 1'), v.minValue(1, 'a whole number ≥ 1')), 'a whole number ≥ 1'),
      datasetType: optionalText,
    }),
    v.check((d) => d.dataset.length === 0 || (d.datasetInterval !== undefined && d.datasetType !== undefined), 'datasetInterval and datasetType with the points'),
  );
  return v.object({ [key]: day });
}
const intradaySchemas = new Map(INTRADAY_TYPES.map((type) => [type, intradaySchema(`activities-${type}-intraday`)] as const));

/**
 * The points of a dataset, each checked by hand (a point that fails is rejected with its
 * reason, the rest of the day goes on). Accepts exactly what intradayPointSchema accepts — a
 * test holds them to that — at a fraction of its cost (bench/validation.ts).
 */
export function checkIntradayPoints(dataset: readonly unknown[]): { points: IntradayPoint[]; rejected: RejectedPoint[] } {
  const points: IntradayPoint[] = [];
  const rejected: RejectedPoint[] = [];
  for (let i = 0; i < dataset.length; i++) {
    const p = dataset[i];
    if (isPlainPoint(p)) {
      points.push(p);
      continue;
    }
    const read = readPoint(p, `dataset[${i}]`);
    if (typeof read === 'string') rejected.push({ ok: false, reason: read, raw: p, index: i });
    else points.push(read);
  }
  return { points, rejected };
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** The common point: a time, a finite number, level and mets finite numbers or absent. */
function isPlainPoint(p: unknown): p is IntradayPoint {
  return typeof p === 'object' && p !== null && !Array.isArray(p) &&
    'time' in p && typeof p.time === 'string' &&
    'value' in p && finite(p.value) &&
    (!('level' in p) || p.level === undefined || finite(p.level)) &&
    (!('mets' in p) || p.mets === undefined || finite(p.mets));
}

/** Any other point: absent fields as undefined, numeric text as a number, or why it is no point. */
function readPoint(p: unknown, at: string): IntradayPoint | string {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return `${at}: expected Object, received ${received(p)}`;
  const time = 'time' in p ? p.time : undefined;
  if (typeof time !== 'string') return time === undefined ? `${at}.time is missing` : `${at}.time: expected string, received ${received(time)}`;
  const raw = 'value' in p ? p.value : undefined;
  let value: number;
  if (finite(raw)) value = raw;
  else if (typeof raw === 'string' && NUMERIC_TEXT.test(raw)) value = Number(raw);
  else return raw === undefined ? `${at}.value is missing` : `${at}.value: expected a number, received ${received(raw)}`;
  const level = optionalPointNumber('level' in p ? p.level : undefined, `${at}.level`);
  if (typeof level === 'string') return level;
  const mets = optionalPointNumber('mets' in p ? p.mets : undefined, `${at}.mets`);
  if (typeof mets === 'string') return mets;
  return { ...p, time, value, level: level?.n, mets: mets?.n };
}

/** level/mets: a finite number, or absent (undefined, null or ""); else why not. */
function optionalPointNumber(x: unknown, at: string): { n: number } | undefined | string {
  if (finite(x)) return { n: x };
  if (x === undefined || x === null || x === '') return undefined;
  return `${at}: expected a number, received ${received(x)}`;
}

/**
 * One intraday response. The bucket length comes from datasetInterval/datasetType as sent
 * (never assumed from the detail asked for), and a day may hold any number of points.
 */
export function parseIntraday(text: string, r: IntradayRequest, units: UnitSystem): IntradayDay {
  const key = `activities-${r.resource}-intraday`;
  const schema = intradaySchemas.get(r.resource);
  if (schema === undefined) throw new EtlError('USAGE', `intraday: unknown resource "${r.resource}"`);
  const parsed = parseJson(text);
  const body = parseBody(schema, parsed, 'intraday body')[key]!;
  const { points, rejected } = checkIntradayPoints(body.dataset);
  const { resource, date, detail } = r;
  const day: IntradayDay = { resource, date, detail, datasetInterval: body.datasetInterval ?? Number.NaN, datasetType: body.datasetType ?? '', dataset: points, units, dayTotal: dayTotalOf(typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)[`activities-${resource}`] : undefined) };
  if (rejected.length > 0) day.rejected = rejected;
  return day;
}

/** `activities-<resource>`: [{ dateTime, value: "1234" }] — the value comes as a numeric string. */
function dayTotalOf(summary: unknown): number | null {
  const first: unknown = Array.isArray(summary) ? summary[0] : undefined;
  if (first === null || typeof first !== 'object') return null;
  const value = (first as { value?: unknown }).value;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  return Number.isFinite(n) ? n : null;
}

/** One request: one user, resource and local date (optionally a time window of it). */
export async function fetchIntradayDay(session: FitbitSession, r: IntradayRequest): Promise<IntradayDay> {
  checkIntradayRequest(r);
  const url = session.url(intradayPath(session.userId, r));
  const units = session.units;
  try {
    const { value } = await session.get(url, (text) => parseIntraday(text, r, units));
    return value;
  } catch (err) {
    throw withWhere(err, session, `intraday ${r.resource} ${r.date}`);
  }
}
