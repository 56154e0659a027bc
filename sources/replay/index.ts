// Replays recorded Fitbit intraday responses from files, for benchmarks and offline re-runs.
// Layout: <dir>/manifest.json (the users and what was asked for) and one response body per
// user, resource and local date at <dir>/<userId>/<resource>/<date>.json, exactly as the API
// sent it (a UTF-8 BOM is allowed). Bodies go through the Fitbit source's own parseIntraday,
// so what comes out is what sources/fitbit yields for the same responses.
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { EtlError, errorMessage } from '../../lib/errors.js';
import { INTRADAY_TYPES, type IntradayType } from '../../lib/schema.js';
import { RESPONSE_UNITS, parseIntraday } from '../fitbit/index.js';
import { INTRADAY_DETAILS, type IntradayDay, type IntradayDetail, type UnitSystem } from '../fitbit/types.js';
import { isValidZone } from '../fitbit/users.js';

export const REPLAY_MANIFEST = 'manifest.json';

export interface ReplayUser {
  userId: string;
  /** The user in the output namespace (default: userId). */
  humanId: string;
  /** IANA zone the user's local dates and times are in. */
  timezone: string;
  /** Unit system the responses were written in (default metric, what the pipeline asks for). */
  units: UnitSystem;
}

export interface ReplayManifest {
  /** Detail level the responses were requested at (default 1min). */
  detail: IntradayDetail;
  users: ReplayUser[];
}

const DATE_FILE = /^(\d{4}-\d{2}-\d{2})\.json$/;
const UNIT_SYSTEMS: readonly UnitSystem[] = ['metric', 'en_US', 'en_GB'];

function bad(path: string, message: string): EtlError {
  return new EtlError('CONFIG', `replay manifest ${path}: ${message}`, { path });
}

/** Reads and checks <dir>/manifest.json. */
export async function loadReplayManifest(dir: string): Promise<ReplayManifest> {
  const path = join(dir, REPLAY_MANIFEST);
  let parsed: unknown;
  try {
    parsed = JSON.parse(stripBom(await readFile(path, 'utf8')));
  } catch (err) {
    throw bad(path, `cannot read it: ${errorMessage(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad(path, 'expected an object with a "users" array');
  const body = parsed as Record<string, unknown>;
  const detail = body['detail'] ?? '1min';
  if (!(INTRADAY_DETAILS as readonly unknown[]).includes(detail)) throw bad(path, `detail must be one of ${INTRADAY_DETAILS.join(', ')}`);
  if (!Array.isArray(body['users'])) throw bad(path, 'expected a "users" array');
  const seen = new Set<string>();
  const users = body['users'].map((entry: unknown, i: number): ReplayUser => {
    if (typeof entry !== 'object' || entry === null) throw bad(path, `users[${i}] is not an object`);
    const u = entry as Record<string, unknown>;
    const userId = u['userId'];
    // The user id names a folder: no separators, no dot names.
    if (typeof userId !== 'string' || !/^[A-Za-z0-9._-]+$/.test(userId) || userId === '.' || userId === '..') {
      throw bad(path, `users[${i}].userId must be a plain folder name`);
    }
    if (seen.has(userId)) throw bad(path, `user ${userId} is listed twice`);
    seen.add(userId);
    const humanId = u['humanId'] ?? userId;
    if (typeof humanId !== 'string' || humanId === '') throw bad(path, `users[${i}].humanId must be a non-empty string`);
    const timezone = u['timezone'];
    if (typeof timezone !== 'string' || !isValidZone(timezone)) throw bad(path, `users[${i}].timezone must be an IANA zone`);
    const units = u['units'] ?? RESPONSE_UNITS;
    if (!(UNIT_SYSTEMS as readonly unknown[]).includes(units)) throw bad(path, `users[${i}].units must be one of ${UNIT_SYSTEMS.join(', ')}`);
    return { userId, humanId, timezone, units: units as UnitSystem };
  });
  return { detail: detail as IntradayDetail, users };
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export interface ReplayOptions {
  resources: readonly IntradayType[];
  detail: IntradayDetail;
  /** First and last local date to replay (inclusive); default: every recorded date. */
  since?: string;
  until?: string;
}

/** The recorded dates of one user and resource, ascending (none when the folder is missing). */
export async function recordedDates(dir: string, userId: string, resource: IntradayType): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(join(dir, userId, resource));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const dates: string[] = [];
  for (const name of names) {
    const m = DATE_FILE.exec(name);
    if (m) dates.push(m[1]!);
  }
  return dates.sort();
}

/**
 * One user's recorded responses, date by date and, within a date, resource by resource (the
 * order the Fitbit pipeline fetches in). A body that is not a valid intraday response throws
 * the EtlError that parseIntraday throws for it, naming the file.
 */
export async function* replayIntradayDays(dir: string, user: ReplayUser, options: ReplayOptions): AsyncGenerator<IntradayDay> {
  for (const resource of options.resources) {
    if (!(INTRADAY_TYPES as readonly string[]).includes(resource)) throw new EtlError('USAGE', `replay: unknown resource "${resource}"`);
  }
  const byResource = await Promise.all(options.resources.map((r) => recordedDates(dir, user.userId, r)));
  const work: { resource: IntradayType; date: string }[] = [];
  const dates = [...new Set(byResource.flat())].sort();
  const has = byResource.map((list) => new Set(list));
  for (const date of dates) {
    if ((options.since !== undefined && date < options.since) || (options.until !== undefined && date > options.until)) continue;
    options.resources.forEach((resource, r) => {
      if (has[r]!.has(date)) work.push({ resource, date });
    });
  }
  for (const { resource, date } of work) {
    const path = join(dir, user.userId, resource, `${date}.json`);
    // Read synchronously: bodies are tens of kB from the page cache (about 50 µs each), cheaper
    // than the four thread-pool round trips of an async readFile, which the sink's writes share.
    const text = stripBom(readFileSync(path, 'utf8'));
    let day: IntradayDay;
    try {
      day = parseIntraday(text, { resource, date, detail: options.detail }, user.units);
    } catch (err) {
      // Unlike a response, a file does not get better by reading it again: always BAD_RESPONSE.
      const code = err instanceof EtlError ? err.code : 'BAD_RESPONSE';
      throw new EtlError(code, `${path}: ${errorMessage(err)}`, { path }, { cause: err });
    }
    yield day;
  }
}
