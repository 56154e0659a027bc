// Google Health entries of the users file (CONTRACTS.md): `{"provider": "google-health",
// "humanId"?, "refreshToken", "accessToken"?, "timezone"?}`. Validated once at start-up; an
// unknown key is a CONFIG error naming the entry.
import * as v from 'valibot';
import { isValidZone } from '../../lib/dates.js';
import { EtlError } from '../../lib/errors.js';

export const GOOGLE_HEALTH_PROVIDER = 'google-health';

export interface GoogleHealthUserEntry {
  /** Position in the users file (what `rotate` is told). */
  index: number;
  /** The output name; when absent, legacyUserId else healthUserId from the identity. */
  humanId?: string;
  refreshToken: string;
  accessToken?: string;
  timezone?: string;
}


const NonEmpty = v.pipe(v.string('must be a string'), v.minLength(1, 'must not be empty'));

const Entry = v.strictObject(
  {
    provider: v.literal(GOOGLE_HEALTH_PROVIDER),
    humanId: v.optional(NonEmpty),
    refreshToken: NonEmpty,
    accessToken: v.optional(NonEmpty),
    timezone: v.optional(v.pipe(NonEmpty, v.check(isValidZone, 'is not an IANA time zone'))),
  },
  'unknown key'
);

/** One entry's fields → the entry, or a CONFIG error that says which entry and what is wrong (never a token). */
export function parseGoogleHealthEntry(index: number, fields: Record<string, unknown>, file: string): GoogleHealthUserEntry {
  const r = v.safeParse(Entry, { provider: GOOGLE_HEALTH_PROVIDER, ...fields });
  if (!r.success) {
    const issue = r.issues[0];
    const key = issue ? v.getDotPath(issue) : null;
    const unknownKey = Object.keys(fields).find((k) => !['provider', 'humanId', 'refreshToken', 'accessToken', 'timezone'].includes(k));
    const reason = unknownKey !== undefined
      ? `unknown key "${unknownKey}" (allowed: provider, humanId, refreshToken, accessToken, timezone)`
      : `"${key ?? 'entry'}" ${issue?.message ?? 'is invalid'}`;
    throw new EtlError('CONFIG', `users file ${file}, entry ${index} (google-health): ${reason}`, { file });
  }
  const o = r.output;
  return {
    index,
    refreshToken: o.refreshToken,
    ...(o.humanId !== undefined ? { humanId: o.humanId } : {}),
    ...(o.accessToken !== undefined ? { accessToken: o.accessToken } : {}),
    ...(o.timezone !== undefined ? { timezone: o.timezone } : {}),
  };
}

/** Every google-health entry; humanIds given twice are refused. */
export function parseGoogleHealthEntries(entries: ReadonlyArray<{ index: number; fields: Record<string, unknown> }>, file: string): GoogleHealthUserEntry[] {
  const out = entries.map((e) => parseGoogleHealthEntry(e.index, e.fields, file));
  const seen = new Set<string>();
  for (const e of out) {
    if (e.humanId === undefined) continue;
    if (seen.has(e.humanId)) throw new EtlError('CONFIG', `users file ${file}, entry ${e.index}: humanId "${e.humanId}" appears twice`, { file });
    seen.add(e.humanId);
  }
  return out;
}
