// Which members of an export matter, matched loosely: every layout of reference §2.1
// (`MyFitbitData/<name>/Physical Activity/`, `[Takeout/]Fitbit/` and `[Takeout/]Google Health/`
// with `Global Export Data/` and `Physical Activity_GoogleData/`), whatever the case, spaces or
// underscores of the folder names and whatever lies above them. Only the folder a file sits in
// and its own name count; the rest is skipped without being inflated.
import type { ArchiveMember } from './archive.js';

/** The minute streams an export carries and the importer reads. */
export type TakeoutStream = 'steps' | 'distance' | 'calories' | 'heart-rate' | 'altitude' | 'floors';

export type MemberKind =
  | { kind: 'json'; stream: TakeoutStream; date: string }
  | { kind: 'csv'; stream: TakeoutStream; date: string }
  | { kind: 'exercise'; offset: number }
  | { kind: 'profile' }
  | { kind: 'skip' };

/** Folder names compared without case, spaces, underscores or other punctuation. */
const loose = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');

const JSON_FOLDERS = new Set(['physicalactivity', 'globalexportdata']);
const CSV_FOLDERS = new Set(['physicalactivitygoogledata']);
const PROFILE_FOLDERS = new Set(['personalaccount', 'yourprofile', 'profile']);

const JSON_STREAMS: Readonly<Record<string, TakeoutStream>> = {
  steps: 'steps', distance: 'distance', calories: 'calories', heartrate: 'heart-rate', altitude: 'altitude',
};
const CSV_STREAMS: Readonly<Record<string, TakeoutStream>> = {
  steps: 'steps', distance: 'distance', calories: 'calories', heartrate: 'heart-rate', floors: 'floors',
};

/** `<metric>-YYYY-MM-DD.json` (JSON) / `<metric>_YYYY-MM-DD.csv` (CSV), loosely (case, spaces). */
const DATED = /^(.+?)[\s_-]+\(?(\d{4})-(\d{2})-\(?(\d{2})\)?\.(json|csv)$/;
const EXERCISE = /^exercise[\s_-]*(\d+)\.json$/;

export function classifyMember(name: string): MemberKind {
  const parts = name.split('/').filter((p) => p.length > 0);
  const file = (parts[parts.length - 1] ?? '').trim().toLowerCase();
  const folder = loose(parts[parts.length - 2] ?? '');
  if (file === 'profile.csv' && PROFILE_FOLDERS.has(folder)) return { kind: 'profile' };
  if (JSON_FOLDERS.has(folder)) {
    const ex = EXERCISE.exec(file);
    if (ex) return { kind: 'exercise', offset: Number(ex[1]) };
    const m = DATED.exec(file);
    const stream = m && m[5] === 'json' ? JSON_STREAMS[loose(m[1]!)] : undefined;
    if (m && stream) return { kind: 'json', stream, date: `${m[2]}-${m[3]}-${m[4]}` };
  }
  if (CSV_FOLDERS.has(folder)) {
    const m = DATED.exec(file);
    const stream = m && m[5] === 'csv' ? CSV_STREAMS[loose(m[1]!)] : undefined;
    if (m && stream) return { kind: 'csv', stream, date: `${m[2]}-${m[3]}-${m[4]}` };
  }
  return { kind: 'skip' };
}

export interface StreamPlan {
  stream: TakeoutStream;
  /** The encoding read: JSON when the export has it, else CSV (§2.8: each stream counted once). */
  encoding: 'json' | 'csv';
  /** Members read, in date order. */
  members: ArchiveMember[];
  /** Members of the other encoding, not read (one is sampled for the time-zone self-check). */
  twins: ArchiveMember[];
}

export interface ArchivePlan {
  streams: StreamPlan[];
  /** exercise-N.json in numeric order (exercise-900 before exercise-1000). */
  exercises: ArchiveMember[];
  profile: ArchiveMember | null;
  /** Members not needed (never inflated) and the bytes they take in the archive. */
  skipped: { members: number; storedBytes: number };
  /** Members read and their inflated bytes (what a dry run reports). */
  read: { members: number; bytes: number; storedBytes: number };
}

/** Streams a run never reads, whatever the encoding: CSV calories are active kcal only (§2.6). */
const CSV_ONLY_EXCLUDED: ReadonlySet<TakeoutStream> = new Set(['calories']);

export function planArchive(members: readonly ArchiveMember[], wanted: ReadonlySet<TakeoutStream> | null = null): ArchivePlan {
  const json = new Map<TakeoutStream, { m: ArchiveMember; date: string }[]>();
  const csv = new Map<TakeoutStream, { m: ArchiveMember; date: string }[]>();
  const exercises: { m: ArchiveMember; offset: number }[] = [];
  let profile: ArchiveMember | null = null;
  for (const m of members) {
    const k = classifyMember(m.name);
    if (k.kind === 'json' || k.kind === 'csv') {
      const map = k.kind === 'json' ? json : csv;
      const list = map.get(k.stream) ?? [];
      list.push({ m, date: k.date });
      map.set(k.stream, list);
    } else if (k.kind === 'exercise') exercises.push({ m, offset: k.offset });
    else if (k.kind === 'profile' && profile === null) profile = m;
  }
  const byDate = (list: { m: ArchiveMember; date: string }[]): ArchiveMember[] =>
    [...list].sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : a.m.name < b.m.name ? -1 : 1)).map((x) => x.m);
  const streams: StreamPlan[] = [];
  for (const stream of ['steps', 'distance', 'calories', 'heart-rate', 'altitude', 'floors'] as const) {
    if (wanted !== null && !wanted.has(stream)) continue;
    const j = json.get(stream);
    const c = csv.get(stream);
    if (j) streams.push({ stream, encoding: 'json', members: byDate(j), twins: c ? byDate(c) : [] });
    else if (c && !CSV_ONLY_EXCLUDED.has(stream)) streams.push({ stream, encoding: 'csv', members: byDate(c), twins: [] });
  }
  const exerciseMembers = exercises.sort((a, b) => a.offset - b.offset).map((x) => x.m);
  const used = new Set<ArchiveMember>([...streams.flatMap((s) => s.members), ...exerciseMembers, ...(profile ? [profile] : [])]);
  const read = { members: 0, bytes: 0, storedBytes: 0 };
  const skipped = { members: 0, storedBytes: 0 };
  for (const m of members) {
    if (used.has(m)) {
      read.members++;
      read.bytes += m.size;
      read.storedBytes += m.storedBytes;
    } else {
      skipped.members++;
      skipped.storedBytes += m.storedBytes;
    }
  }
  return { streams, exercises: exerciseMembers, profile, skipped, read };
}
