// Users-file entries of the takeout pipeline (CONTRACTS.md "Takeout archives"):
//   {"provider": "takeout", "humanId": "h-1", "archive": "exports/h-1.zip", "timezone": "America/Chicago"}
// `archive` is one zip, an array of the zip parts of one export, or a folder; relative paths are
// relative to the users file. `jsonTimeZone` overrides how the zone-less US stamps of the JSON
// files are read (reference §2.5): "UTC" (default), "local" (the user's zone) or an IANA zone.
import path from 'node:path';
import * as v from 'valibot';
import { EtlError } from '../../lib/errors.js';
import { isValidTimeZone } from '../../transforms/time.js';

export interface TakeoutUser {
  /** Position in the users file (for messages). */
  index: number;
  humanId: string;
  /** Absolute paths: one zip or folder, or the zip parts of one export. */
  archive: string[];
  /** The entry's zone; null → Profile.csv's. */
  timeZone: string | null;
  /** "UTC", "local" or an IANA zone: how the JSON files' US stamps are read. */
  jsonTimeZone: string;
}

const NonEmpty = v.pipe(v.string(), v.trim(), v.nonEmpty());
const Entry = v.strictObject({
  provider: v.literal('takeout'),
  humanId: v.pipe(NonEmpty, v.regex(/^[^/\\\0]+$/, 'must not contain / or \\')),
  archive: v.union([NonEmpty, v.pipe(v.array(NonEmpty), v.minLength(1))]),
  timezone: v.optional(NonEmpty),
  jsonTimeZone: v.optional(NonEmpty),
});

/** Validates one entry (unknown keys rejected); `dir` is the users file's folder. */
export function parseTakeoutEntry(fields: Record<string, unknown>, index: number, dir: string): TakeoutUser {
  const r = v.safeParse(Entry, { provider: 'takeout', ...fields });
  const where = `users file entry ${index}`;
  if (!r.success) {
    const issue = r.issues[0];
    const key = issue.path?.map((p) => String(p.key)).join('.') ?? '';
    const reason = issue.kind === 'schema' && issue.type === 'strict_object' ? `unknown key "${key}"` : `${key || 'entry'}: ${issue.message}`;
    throw new EtlError('CONFIG', `${where} (takeout): ${reason}`, { index });
  }
  const e = r.output;
  if (e.timezone !== undefined && !isValidTimeZone(e.timezone)) throw new EtlError('CONFIG', `${where} (takeout): timezone "${e.timezone}" is not an IANA zone`, { index });
  const json = e.jsonTimeZone ?? 'UTC';
  if (json !== 'local' && !isValidTimeZone(json)) throw new EtlError('CONFIG', `${where} (takeout): jsonTimeZone "${json}" is not "UTC", "local" or an IANA zone`, { index });
  const archives = typeof e.archive === 'string' ? [e.archive] : e.archive;
  return {
    index,
    humanId: e.humanId,
    archive: archives.map((a) => path.resolve(dir, a)),
    timeZone: e.timezone ?? null,
    jsonTimeZone: json,
  };
}

/** Validates every takeout entry; two entries with one humanId are a usage error. */
export function parseTakeoutEntries(entries: readonly { index: number; fields: Record<string, unknown> }[], dir: string): TakeoutUser[] {
  const users = entries.map((e) => parseTakeoutEntry(e.fields, e.index, dir));
  const seen = new Set<string>();
  for (const u of users) {
    if (seen.has(u.humanId)) throw new EtlError('CONFIG', `users file entry ${u.index} (takeout): humanId "${u.humanId}" appears twice`, { index: u.index });
    seen.add(u.humanId);
  }
  return users;
}
