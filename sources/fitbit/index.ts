// Fitbit Web API sources (API-REFERENCE.md §A): the profile, the activity log list
// (paginated by pagination.next) and intraday datasets by date. Bodies are validated here,
// once; past this file everything is typed.
import { EtlError } from '../../lib/errors.js';
import { resolveNext } from '../../lib/http.js';
import { paginate, type Paginator } from '../../lib/paginate.js';
import type { IntradayType } from '../../lib/schema.js';
import type { FitbitSession } from './client.js';
import type { FitbitProfile, IntradayDay, IntradayDetail, IntradayPoint, RawActivity, UnitSystem } from './types.js';

export { FitbitSession } from './client.js';

type Json = Record<string, unknown>;

function asObject(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Json;
}

const optNumber = (o: Json, key: string, what: string): number | undefined => {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${what}.${key} is not a number`);
  return v;
};

/** The unit system a response was written in, from what we asked for (Accept-Language). */
export const RESPONSE_UNITS: UnitSystem = 'metric';

// ---------------------------------------------------------------- profile

export function parseProfile(text: string): FitbitProfile {
  const user = asObject(asObject(JSON.parse(text), 'profile body').user, 'profile.user');
  if (typeof user.timezone !== 'string') throw new Error('profile.user.timezone is missing');
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

export async function fetchProfile(session: FitbitSession): Promise<FitbitProfile> {
  const { value } = await session.get(session.url(`1/user/${encodeURIComponent(session.userId)}/profile.json`), parseProfile);
  return value;
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
  const body = asObject(JSON.parse(text.replace(/"logId"\s*:\s*(\d+)/g, '"logId":"$1"')), 'activity list body');
  if (!Array.isArray(body.activities)) throw new Error('activity list body has no "activities" array');
  const pagination = asObject(body.pagination, 'activity list pagination');
  const next = pagination.next;
  if (typeof next !== 'string') throw new Error('pagination.next is not a string');
  const activities = body.activities.map((item: unknown, i: number) => {
    const a = asObject(item, `activities[${i}]`);
    if (typeof a.logId !== 'string' || !/^\d+$/.test(a.logId)) throw new Error(`activities[${i}].logId is missing or not an integer`);
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

export function activityListPaginator(session: FitbitSession, afterDateTime: string): Paginator<ActivityPage> {
  const context = { user: session.humanId, stream: 'activities' };
  return {
    first: () =>
      session.url(
        `1/user/${encodeURIComponent(session.userId)}/activities/list.json?` +
          new URLSearchParams({ afterDate: afterDateTime, sort: 'asc', limit: '100', offset: '0' }).toString(),
      ),
    next: (page) => (page.next === '' ? null : resolveNext(page.next, session.base, context)),
    isEmpty: (page) => page.activities.length === 0,
  };
}

/** Yields the activity log list page by page, oldest first, from `afterDateTime` (yyyy-MM-ddTHH:mm:ss). */
export async function* activityPages(session: FitbitSession, afterDateTime: string, maxPages = 10_000): AsyncGenerator<RawActivity[]> {
  const paginator = activityListPaginator(session, afterDateTime);
  for await (const page of paginate(paginator, async (url) => (await session.get(url, parseActivityPage)).value, {
    maxRequests: maxPages,
    context: { user: session.humanId, stream: 'activities' },
  })) {
    yield page.activities;
  }
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

export function intradayPath(userId: string, r: IntradayRequest): string {
  const window = r.startTime && r.endTime ? `/time/${r.startTime}/${r.endTime}` : '';
  return `1/user/${encodeURIComponent(userId)}/activities/${r.resource}/date/${r.date}/1d/${r.detail}${window}.json`;
}

export function parseIntraday(text: string, r: IntradayRequest, units: UnitSystem): IntradayDay {
  const body = asObject(JSON.parse(text), 'intraday body');
  const key = `activities-${r.resource}-intraday`;
  const intraday = asObject(body[key], key);
  if (!Array.isArray(intraday.dataset)) throw new Error(`${key}.dataset is not an array`);
  const dataset: IntradayPoint[] = intraday.dataset as IntradayPoint[];
  for (let i = 0; i < dataset.length; i++) {
    const p = dataset[i];
    if (typeof p !== 'object' || p === null || typeof p.time !== 'string' || typeof p.value !== 'number') {
      throw new Error(`${key}.dataset[${i}] has no time string or numeric value`);
    }
  }
  const datasetInterval = typeof intraday.datasetInterval === 'number' ? intraday.datasetInterval : NaN;
  const datasetType = typeof intraday.datasetType === 'string' ? intraday.datasetType : '';
  if (dataset.length > 0 && (!Number.isFinite(datasetInterval) || datasetType === '')) {
    throw new Error(`${key} has no datasetInterval/datasetType`);
  }
  return { resource: r.resource, date: r.date, detail: r.detail, datasetInterval, datasetType, dataset, units };
}

export async function fetchIntradayDay(session: FitbitSession, r: IntradayRequest): Promise<IntradayDay> {
  const url = session.url(intradayPath(session.userId, r));
  try {
    const { value } = await session.get(url, (text) => parseIntraday(text, r, RESPONSE_UNITS));
    return value;
  } catch (err) {
    if (err instanceof EtlError) throw err;
    throw new EtlError('BAD_RESPONSE', `user ${session.humanId}: intraday ${r.resource} ${r.date}: ${(err as Error).message}`, { user: session.humanId });
  }
}
