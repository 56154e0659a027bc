// Fitbit Web API sources (API-REFERENCE.md §A): the profile, the activity log list
// (paginated by pagination.next) and intraday datasets by date. Bodies are validated here,
// once; past this file everything is typed.
import { addDays } from '../../lib/dates.js';
import { EtlError } from '../../lib/errors.js';
import { resolveNext } from '../../lib/http.js';
import { paginate, type Paginator } from '../../lib/paginate.js';
import { INTRADAY_TYPES, type IntradayType } from '../../lib/schema.js';
import type { FitbitSession } from './client.js';
import { INTRADAY_DETAILS, type FitbitProfile, type IntradayDay, type IntradayDetail, type IntradayPoint, type RawActivity, type UnitSystem } from './types.js';

export { FitbitSession, FitbitShared, GOOGLE_HEALTH_SUCCESSOR, METRIC_ACCEPT_LANGUAGE, acceptLanguageFor } from './client.js';

type Json = Record<string, unknown>;

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

function asObject(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw shape(`${what} is not an object`);
  return value as Json;
}

const optNumber = (o: Json, key: string, what: string): number | undefined => {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw shape(`${what}.${key} is not a number`);
  return v;
};

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

export function parseProfile(text: string): FitbitProfile {
  const user = asObject(asObject(parseJson(text), 'profile body').user, 'profile.user');
  if (typeof user.timezone !== 'string' || user.timezone === '') throw shape('profile.user.timezone is missing');
  const profile: FitbitProfile = {
    timezone: user.timezone,
    offsetFromUTCMillis: optNumber(user, 'offsetFromUTCMillis', 'profile.user') ?? 0,
  };
  for (const key of ['height', 'weight', 'strideLengthWalking', 'strideLengthRunning', 'age'] as const) {
    const v = optNumber(user, key, 'profile.user');
    if (v !== undefined) profile[key] = v;
  }
  for (const key of ['gender', 'dateOfBirth', 'locale'] as const) {
    if (typeof user[key] === 'string') profile[key] = user[key] as string;
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
  activities: RawActivity[];
  next: string;
}

/**
 * logId is an unsigned 64-bit integer (§A.0) and JSON.parse would round it past 2^53:
 * quote it in the text before parsing so it arrives as the exact decimal string.
 */
export function parseActivityPage(text: string): ActivityPage {
  const body = asObject(parseJson(text.replace(/"logId"\s*:\s*(\d+)/g, '"logId":"$1"')), 'activity list body');
  if (!Array.isArray(body.activities)) throw shape('activity list body has no "activities" array');
  const pagination = asObject(body.pagination, 'activity list pagination');
  const next = pagination.next;
  if (typeof next !== 'string') throw shape('pagination.next is not a string');
  const activities = body.activities.map((item: unknown, i: number) => {
    const a = asObject(item, `activities[${i}]`);
    if (typeof a.logId !== 'string' || !/^\d+$/.test(a.logId)) throw shape(`activities[${i}].logId is missing or not an integer`);
    return a as unknown as RawActivity;
  });
  return { activities, next };
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
export async function* activityPages(session: FitbitSession, afterDateTime: string, maxPages = 10_000): AsyncGenerator<RawActivity[]> {
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
export function activitiesSince(session: FitbitSession, since: string, maxPages = 10_000): AsyncGenerator<RawActivity[]> {
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

/**
 * One intraday response. The bucket length comes from datasetInterval/datasetType as sent
 * (never assumed from the detail asked for), and a day may hold any number of points.
 */
export function parseIntraday(text: string, r: IntradayRequest, units: UnitSystem): IntradayDay {
  const body = asObject(parseJson(text), 'intraday body');
  const key = `activities-${r.resource}-intraday`;
  const intraday = asObject(body[key], key);
  if (!Array.isArray(intraday.dataset)) throw shape(`${key}.dataset is not an array`);
  const dataset: IntradayPoint[] = intraday.dataset as IntradayPoint[];
  for (let i = 0; i < dataset.length; i++) {
    const p = dataset[i];
    if (typeof p !== 'object' || p === null || typeof p.time !== 'string' || typeof p.value !== 'number') {
      throw shape(`${key}.dataset[${i}] has no time string or numeric value`);
    }
  }
  const datasetInterval = typeof intraday.datasetInterval === 'number' ? intraday.datasetInterval : NaN;
  const datasetType = typeof intraday.datasetType === 'string' ? intraday.datasetType : '';
  if (dataset.length > 0 && (!Number.isFinite(datasetInterval) || datasetType === '')) {
    throw shape(`${key} has no datasetInterval/datasetType`);
  }
  return { resource: r.resource, date: r.date, detail: r.detail, datasetInterval, datasetType, dataset, units, dayTotal: dayTotalOf(body[`activities-${r.resource}`]) };
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
