// Google Health API v4 sources (reference GOOGLE-HEALTH-AND-TAKEOUT.md §1): identity, settings,
// data points by local-date window, exercise sessions, daily roll-ups. Bodies are validated here,
// once: a page that is not a page fails (and is retried when it does not parse), a record that
// fails its schema comes back as an invalid record for the dead letters.
//
// Choices (the reference marks the facts UNCONFIRMED where it does):
// - Intraday types are read with `:reconcile`, not `list`: one merged stream per type, as the
//   legacy Fitbit intraday series was. `list` returns every source's points (tracker, phone,
//   Health Connect apps), which overlap (§1.9, §3 I-OW1577); merged by id they would keep one of
//   two overlapping points at random. `exercise` is read with `list` (sessions do not overlap,
//   and list carries the session's name, i.e. its id, and its dataSource).
// - Windows are local dates, filtered on `civil_start_time` (`civil_time` for samples): a window
//   holds exactly the points of its partitions (each point's own offset decides its local date),
//   so a watermark "last local date fetched whole" is exact, DST and travel included.
// - A window spans at most WINDOW_DAYS local days (a bounded request; long backfills are split);
//   pages are followed by pageToken until it is empty; an empty page with a token is not the end.
import * as v from 'valibot';
import { addDays, daysInclusive } from '../../lib/dates.js';
import { EtlError } from '../../lib/errors.js';
import { paginate, type Paginator } from '../../lib/paginate.js';
import type { GhUserShared, GoogleHealthSession } from './client.js';
import { checkPointPage, type GhPointPage } from './points.js';
import {
  DataPointPage,
  DailyRollup,
  Exercise,
  Identity,
  RollupPage,
  Settings,
  check,
  type GhDailyRollup,
  type GhExercise,
  type GhIdentity,
  type GhIntradayType,
  type GhRollupType,
  type GhSettings,
  type InvalidRecord,
} from './types.js';

export { GoogleHealthSession, GoogleHealthShared, googleError, type GoogleHealthClientConfig, type TokenPair, type TokenStore } from './client.js';
export { GH_RATE_DEFAULTS, GhRateBudget, type GhRateBudgetState, type GhRateLimitOptions, type GhSharedBudget } from './rate-limit.js';
export * from './types.js';
export { checkPointPage, fastInstant, fastInt64, type GhPointPage } from './points.js';

/** Local days per data-points window: 7 days of minutes (≈ 10,080 points) fit one page of 10,000 or two. */
export const WINDOW_DAYS = 7;
/** Local days per exercise window (pages of 25 sessions). */
export const EXERCISE_WINDOW_DAYS = 31;
/** Most days one :dailyRollUp may span (§1.10): 14 for total calories, 90 for the others. */
export const ROLLUP_MAX_DAYS: { readonly [T in GhRollupType]: number } = { steps: 90, distance: 90, 'total-calories': 14 };
/** Points per page asked for (the documented maximum; exercise: 25). */
export const PAGE_SIZE = 10_000;
export const EXERCISE_PAGE_SIZE = 25;
/** Pages one window may take before the paginator stops (a guard, far above 7 days of minutes). */
export const MAX_PAGES_PER_WINDOW = 200;

/** A body that is not JSON is retried (cut short); JSON of the wrong shape fails at once. */
function body<T>(schema: v.GenericSchema<unknown, T>, text: string, what: string): T {
  const parsed: unknown = JSON.parse(text);
  const r = check(schema, parsed);
  if (!r.ok) throw new EtlError('BAD_RESPONSE', `${what}: ${r.reason}`);
  return r.value;
}

function where(err: unknown, session: GoogleHealthSession, what: string): unknown {
  if (err instanceof EtlError && err.code === 'BAD_RESPONSE' && !err.message.startsWith('user ')) {
    return new EtlError('BAD_RESPONSE', `user ${session.label}: ${what}: ${err.message}`, { ...err.context, user: session.label });
  }
  return err;
}

/** GET a resource the user's sessions fetch once per run (identity, settings), kept in their shared state. */
async function once<K extends 'identity' | 'settings'>(session: GoogleHealthSession, key: K, schema: v.GenericSchema<unknown, NonNullable<GhUserShared[K]>>): Promise<NonNullable<GhUserShared[K]>> {
  const known = session.shared[key];
  if (known) return known as NonNullable<GhUserShared[K]>;
  try {
    const value = await session.request({ url: session.url(`v4/users/me/${key}`) }, (t) => body(schema, t, key));
    session.shared[key] = value;
    return value;
  } catch (err) {
    throw where(err, session, key);
  }
}

/** GET /v4/users/me/identity (once per run and user). */
export function fetchIdentity(session: GoogleHealthSession): Promise<GhIdentity> {
  return once(session, 'identity', Identity);
}

/** GET /v4/users/me/settings (time zone), once per run and user. */
export function fetchSettings(session: GoogleHealthSession): Promise<GhSettings> {
  return once(session, 'settings', Settings);
}

/** A window of local dates: `from` inclusive, `to` exclusive. */
export interface DateWindow {
  from: string;
  to: string;
}

/** Splits the local dates since..until (inclusive) into windows of at most `days`. */
export function dateWindows(since: string, until: string, days: number): DateWindow[] {
  const out: DateWindow[] = [];
  for (let from = since; from <= until; from = addDays(from, days)) {
    const end = addDays(from, days);
    const last = addDays(until, 1);
    out.push({ from, to: end < last ? end : last });
  }
  return out;
}

/** Requests a window list needs at least (one page each), for the dry run. */
export function windowCount(since: string, until: string, days: number): number {
  return since > until ? 0 : Math.ceil(daysInclusive(since, until) / days);
}

const snake = (type: string): string => type.replace(/-/g, '_');

/** The AIP-160 filter of a local-date window for a type (§1.8). */
export function civilFilter(type: GhIntradayType | 'exercise', w: DateWindow): string {
  const member = type === 'heart-rate' ? 'sample_time.civil_time' : 'interval.civil_start_time';
  const f = `${snake(type)}.${member}`;
  return `${f} >= "${w.from}" AND ${f} < "${w.to}"`;
}

interface RawPage {
  dataPoints: unknown[];
  nextPageToken: string;
}

/** A page once checked: its records (null when it had none) and its token. */
interface CheckedPage<T extends object> {
  checked: T | null;
  nextPageToken: string;
}

function pagePaginator<T extends object>(session: GoogleHealthSession, path: string, params: Record<string, string>): Paginator<CheckedPage<T>> {
  const url = (token: string): string => session.url(`${path}?${new URLSearchParams(token ? { ...params, pageToken: token } : params).toString()}`);
  return {
    first: () => url(''),
    next: (page) => (page.nextPageToken === '' ? null : url(page.nextPageToken)),
    // An empty page that still carries a token is not the end (§1.8, I-FITGAUGE3).
    isEmpty: (page) => page.checked === null && page.nextPageToken === '',
  };
}

/**
 * A list / :reconcile page: its array and token checked by hand (a valibot array would copy the
 * array of up to 10,000 points), valibot's reason when they are not what they should be.
 */
function pageBody(text: string, what: string): RawPage {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const o = parsed as { dataPoints?: unknown; nextPageToken?: unknown };
    const points = o.dataPoints === undefined ? [] : o.dataPoints;
    const token = o.nextPageToken === undefined ? '' : o.nextPageToken;
    if (Array.isArray(points) && typeof token === 'string') return { dataPoints: points, nextPageToken: token };
  }
  const r = check(DataPointPage, parsed);
  // The schema takes what the hand check takes; anything else it refuses.
  throw new EtlError('BAD_RESPONSE', `${what}: ${r.ok ? 'not a page of data points' : r.reason}`);
}

/**
 * The pages of a list / :reconcile, each checked by `check` as soon as it is parsed: the parsed
 * JSON (a page of 10,000 points is ~2.5 MB of objects) is dropped before the page is handed on,
 * so it is not held while the rows go through the sink.
 */
async function* checkedPages<T extends object>(session: GoogleHealthSession, path: string, params: Record<string, string>, what: string, checkPage: (raws: unknown[]) => T): AsyncGenerator<T> {
  const paginator = pagePaginator<T>(session, path, params);
  const fetchPage = async (url: string): Promise<CheckedPage<T>> => {
    try {
      const raw = await session.request({ url }, (t) => pageBody(t, `${what} page`));
      return { checked: raw.dataPoints.length > 0 ? checkPage(raw.dataPoints) : null, nextPageToken: raw.nextPageToken };
    } catch (err) {
      throw where(err, session, what);
    }
  };
  for await (const page of paginate(paginator, fetchPage, { maxRequests: MAX_PAGES_PER_WINDOW, context: { user: session.label, stream: what } })) {
    if (page.checked !== null) yield page.checked;
  }
}

export interface Checked<T> {
  records: T[];
  invalid: InvalidRecord[];
}

function checkAll<T>(schema: v.GenericSchema<unknown, T>, raws: unknown[]): Checked<T> {
  const out: Checked<T> = { records: [], invalid: [] };
  for (const raw of raws) {
    const r = check(schema, raw);
    if (r.ok) out.records.push(r.value);
    else out.invalid.push({ reason: r.reason, raw });
  }
  return out;
}

/** The points of one type and local-date window (`:reconcile`), page by page, newest first, in columns. */
export async function* dataPointPages(session: GoogleHealthSession, type: GhIntradayType, w: DateWindow): AsyncGenerator<GhPointPage> {
  const path = `v4/users/me/dataTypes/${type}/dataPoints:reconcile`;
  yield* checkedPages(session, path, { filter: civilFilter(type, w), pageSize: String(PAGE_SIZE) }, `${type} ${w.from}..${w.to}`, (raws) => checkPointPage(type, raws));
}

/** The exercise sessions starting in a local-date window (`list`, 25 a page), newest first. */
export async function* exercisePages(session: GoogleHealthSession, w: DateWindow): AsyncGenerator<Checked<GhExercise>> {
  const path = 'v4/users/me/dataTypes/exercise/dataPoints';
  yield* checkedPages(session, path, { filter: civilFilter('exercise', w), pageSize: String(EXERCISE_PAGE_SIZE) }, `exercise ${w.from}..${w.to}`, (raws) => checkAll(Exercise, raws));
}

const civil = (date: string): { date: { year: number; month: number; day: number } } => ({
  // Numbers, never zero-padded text: "month": 04 is rejected as an octal literal (§1.10).
  date: { year: Number(date.slice(0, 4)), month: Number(date.slice(5, 7)), day: Number(date.slice(8, 10)) },
});

/** POST :dailyRollUp for one type over local dates [from, to) (at most ROLLUP_MAX_DAYS[type]). */
export async function dailyRollUp(session: GoogleHealthSession, type: GhRollupType, w: DateWindow): Promise<Checked<GhDailyRollup>> {
  if (daysInclusive(w.from, addDays(w.to, -1)) > ROLLUP_MAX_DAYS[type]) {
    throw new EtlError('USAGE', `dailyRollUp ${type}: ${w.from}..${w.to} is longer than ${ROLLUP_MAX_DAYS[type]} days`);
  }
  const what = `${type} daily roll-up ${w.from}..${w.to}`;
  try {
    const page = await session.request(
      { url: session.url(`v4/users/me/dataTypes/${type}/dataPoints:dailyRollUp`), method: 'POST', body: JSON.stringify({ range: { start: civil(w.from), end: civil(w.to) }, windowSizeDays: 1 }) },
      (t) => body(RollupPage, t, what),
    );
    return checkAll(DailyRollup, page.rollupDataPoints);
  } catch (err) {
    throw where(err, session, what);
  }
}
