// takeout: Fitbit / Google Takeout export archives → `intraday` and `activities` (CONTRACTS.md
// "Takeout archives"). Per user: list the archive's members (nothing inflated), read each
// needed minute stream from one encoding (JSON, else CSV), then the exercise logs. Two passes
// over the archive, one per dataset, each into its own sink; the state marks an archive
// imported whole (by the size and mtime of its parts) only after both sinks committed.
import type { DeadLetterWriter, PartitionColumns } from '../lib/sink.js';
import { UsersFile } from '../lib/users-file.js';
import type { ActivityRecord, DeadLetter } from '../lib/schema.js';
import { openArchive, type Archive } from '../sources/takeout/archive.js';
import { planArchive, type ArchivePlan, type StreamPlan } from '../sources/takeout/layout.js';
import { readCsvMinutes, readExercises, readJsonMinutes, readProfile } from '../sources/takeout/read.js';
import { parseTakeoutEntries, type TakeoutUser } from '../sources/takeout/users.js';
import {
  IntradayColumnsBuilder,
  ZoneSelfCheck,
  addCsvRows,
  addJsonRows,
  normalizeExercise,
  streamMapping,
  type TakeoutUserContext,
  type ZoneCheckVerdict,
} from '../transforms/takeout.js';
import { isValidTimeZone } from '../transforms/time.js';
import { mergeSorted } from '../lib/async.js';
import { EtlError } from '../lib/errors.js';
import type { RunConfig } from './config.js';
import type { PipelineDef, PipelineResult, RunContext } from './context.js';
import { startSideSink } from './side-sink.js';
import { SharedWriters } from '../sinks/index.js';
import type { PipelineState } from './state.js';
import { perUserState, runPerUser, type UserIo } from './user-streams.js';
import type { StateStore } from './state/store.js';

export const PIPELINE = 'takeout' as const;

/** The state key under a user's streams: the fingerprint of the archive imported whole. */
export const ARCHIVE_STATE_KEY = 'archive';

export interface TakeoutOptions {
  /** Import archives the state marks as imported whole again. */
  reimport: boolean;
}

/** What one user's import found, for the run summary. */
export interface TakeoutUserReport {
  humanId: string;
  skipped: boolean;
  zoneCheck: ZoneCheckVerdict | null;
  healthConnectRows: number;
  duplicateRows: number;
}

/** The zone of a user: the entry's, else Profile.csv's; an error naming both when neither is there. */
async function userContext(user: TakeoutUser, plan: ArchivePlan): Promise<TakeoutUserContext> {
  const profile = plan.profile === null ? { id: null, timezone: null } : await readProfile(plan.profile);
  const zone = user.timeZone ?? profile.timezone;
  if (zone === null) throw new EtlError('CONFIG', `${user.humanId}: no time zone: the users file entry has no "timezone" and the archive has no Profile.csv with one`, { humanId: user.humanId });
  if (!isValidTimeZone(zone)) throw new EtlError('BAD_RESPONSE', `${user.humanId}: Profile.csv timezone "${zone}" is not an IANA zone; set "timezone" in the users file`, { humanId: user.humanId });
  return { humanId: user.humanId, userId: profile.id ?? user.humanId, timeZone: zone, jsonTimeZone: user.jsonTimeZone };
}

function memberLetter(dataset: 'intraday' | 'activities', humanId: string, member: string, part: string, err: unknown): DeadLetter {
  const reason = err instanceof Error ? err.message : String(err);
  return { dataset, reason: `member cannot be read: ${reason}`, context: { stream: 'takeout', humanId, member, part }, raw: null };
}

/** The twin stream sampled for the time-zone self-check: steps first, then any other. */
function selfCheckStream(plan: ArchivePlan): StreamPlan | null {
  const both = plan.streams.filter((s) => s.encoding === 'json' && s.twins.length > 0);
  return both.find((s) => s.stream === 'steps') ?? both[0] ?? null;
}

/**
 * One pass per user over its archive on the per-user skeleton: the minute streams into the
 * `intraday` sink, the exercise logs into an `activities` side sink. At the user's checkpoint
 * (both committed) an archive read whole — no date filter, the user neither failed nor
 * stopped — is marked imported by its fingerprint, so a rerun after a stop or a kill skips it.
 */
async function runTakeoutImport(ctx: RunContext, users: readonly TakeoutUser[], options: TakeoutOptions, state: PipelineState): Promise<{ result: PipelineResult; reports: TakeoutUserReport[] }> {
  const { config } = ctx;
  const reports = new Map<string, TakeoutUserReport>();
  const fingerprints = new Map<string, string>();
  const pending: TakeoutUser[] = [];
  for (const user of users) {
    const archive = await openArchive(user.archive).catch((err: unknown) => err);
    if (archive instanceof Error) {
      pending.push(user); // fails again, inside the stream, where it is reported per user
      continue;
    }
    const fingerprint = (archive as Archive).fingerprint;
    await (archive as Archive).close();
    if (!options.reimport && state.users[user.humanId]?.streams[ARCHIVE_STATE_KEY] === fingerprint) {
      ctx.log.info('archive already imported whole; skipped (--reimport imports it again)', { pipeline: PIPELINE, user: user.humanId });
      reports.set(user.humanId, { humanId: user.humanId, skipped: true, zoneCheck: null, healthConnectRows: 0, duplicateRows: 0 });
      continue;
    }
    fingerprints.set(user.humanId, fingerprint);
    pending.push(user);
  }
  const since = config.since;
  const until = config.until;
  const writers = new SharedWriters(); // one writer thread for both datasets' files
  const activities = startSideSink(ctx, 'activities', writers);

  async function* userBatches(user: TakeoutUser, { deadLetters, progress }: UserIo): AsyncGenerator<PartitionColumns> {
    const userCtx = yield* intradayBatches(user, deadLetters);
    await exercises(user, userCtx);
    const fingerprint = fingerprints.get(user.humanId);
    if (fingerprint !== undefined && since === null && until === null) progress.mark(ARCHIVE_STATE_KEY, fingerprint);
  }

  async function* intradayBatches(user: TakeoutUser, deadLetters: DeadLetterWriter): AsyncGenerator<PartitionColumns, TakeoutUserContext> {
    const archive = await openArchive(user.archive);
    try {
      const plan = planArchive(archive.members);
      ctx.progress?.({ pipeline: PIPELINE, kind: 'planned', user: user.humanId, units: archive.totalBytes });
      const userCtx = await userContext(user, plan);
      const report: TakeoutUserReport = { humanId: user.humanId, skipped: false, zoneCheck: null, healthConnectRows: 0, duplicateRows: 0 };
      reports.set(user.humanId, report);
      let reported = 0;
      const done = (bytes: number): void => {
        reported += bytes;
        ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: bytes });
      };
      done(plan.skipped.storedBytes + (plan.profile?.storedBytes ?? 0));

      const checkStream = selfCheckStream(plan);
      let check: ZoneSelfCheck | null = null;
      if (checkStream !== null) {
        const twinMapping = streamMapping(checkStream.stream, 'csv');
        const jsonMapping = streamMapping(checkStream.stream, 'json');
        check = new ZoneSelfCheck(checkStream.stream, userCtx, jsonMapping.factor / twinMapping.factor);
        // Sample the CSV twin: a few hundred rows of its first members, then stop reading.
        sampling: for (const member of checkStream.twins) {
          try {
            for await (const batch of readCsvMinutes(member, checkStream.stream)) if (!check.addSample(batch.rows)) break sampling;
          } catch {
            // A twin that cannot be read only weakens the check; the stream itself is the JSON.
          }
        }
      }

      // One stream's local days, in order; the streams are merged by date below.
      const streamDays = async function* (stream: StreamPlan): AsyncGenerator<PartitionColumns> {
        const mapping = streamMapping(stream.stream, stream.encoding);
        const builder = new IntradayColumnsBuilder(userCtx, mapping, ctx.seenAt, since, until);
        for (const member of stream.members) {
          const rowCtx = { member: member.name, humanId: user.humanId };
          let index = 0;
          try {
            if (stream.encoding === 'json') {
              const observe = stream === checkStream ? check : null;
              for await (const batch of readJsonMinutes(member)) {
                for (const bad of batch.bad) deadLetters.write({ dataset: 'intraday', reason: bad.reason, context: { ...rowCtx, stream: 'takeout', index: bad.index }, raw: bad.raw });
                const r = addJsonRows(builder, batch.rows, userCtx, rowCtx, index, observe);
                index += batch.rows.length + batch.bad.length;
                for (const l of r.deadLetters) deadLetters.write(l);
                yield* r.partitions;
              }
            } else {
              for await (const batch of readCsvMinutes(member, stream.stream)) {
                for (const bad of batch.bad) deadLetters.write({ dataset: 'intraday', reason: bad.reason, context: { ...rowCtx, stream: 'takeout', index: bad.index }, raw: bad.raw });
                const r = addCsvRows(builder, batch.rows, rowCtx, index);
                index += batch.rows.length + batch.bad.length;
                report.healthConnectRows += r.healthConnect;
                for (const l of r.deadLetters) deadLetters.write(l);
                yield* r.partitions;
              }
            }
          } catch (err) {
            // The member is a dead letter; what it gave before the error and every other member land.
            deadLetters.write(memberLetter('intraday', user.humanId, member.name, member.part, err));
          }
          done(member.storedBytes);
        }
        const last = builder.flush();
        if (last !== null) yield last;
        report.duplicateRows += builder.stats.duplicates;
        // Twins are not read (only sampled): their bytes count as done.
        done(stream.twins.reduce((s, m) => s + m.storedBytes, 0));
      };
      // A local day of every stream, one after another: a partition's streams reach the sink
      // together and it is written once (stream after stream, each stream of a day came a
      // year apart: the partition file was written, then read back and merged twice).
      yield* mergeSorted(plan.streams.map(streamDays), (p) => p.date);
      // Zip headers and the central directory: the rest of the archive's bytes but the exercise
      // logs, which the activities pass reports.
      done(Math.max(0, archive.totalBytes - reported - plan.exercises.reduce((n, m) => n + m.storedBytes, 0)));
      if (check !== null) {
        report.zoneCheck = check.verdict();
        const v = report.zoneCheck;
        const fields = { pipeline: PIPELINE, user: user.humanId, stream: v.stream, sampled: v.sampled, matchesAsUtc: v.matchesAsUtc, matchesAsLocal: v.matchesAsLocal, verdict: v.verdict, readAs: v.readAs };
        if (v.disagrees) ctx.log.warn('time-zone self-check disagrees with how the JSON stamps were read; set "jsonTimeZone" in the users file', fields);
        else ctx.log.info('time-zone self-check of the JSON stamps', fields);
      }
      return userCtx;
    } finally {
      await archive.close();
    }
  }

  // The exercise logs, into the activities side sink (with its own dead letters).
  async function exercises(user: TakeoutUser, userCtx: TakeoutUserContext): Promise<void> {
    const deadLetters = activities.deadLetters;
    const archive = await openArchive(user.archive);
    try {
      const plan = planArchive(archive.members);
      for (const member of plan.exercises) {
        try {
          for await (const batch of readExercises(member)) {
            for (const bad of batch.bad) deadLetters.write({ dataset: 'activities', reason: bad.reason, context: { stream: 'takeout', humanId: user.humanId, member: member.name, index: bad.index }, raw: bad.raw });
            const records: ActivityRecord[] = [];
            for (const raw of batch.rows) {
              const r = normalizeExercise(raw, userCtx, ctx.seenAt, member.name);
              if (!r.ok) deadLetters.write(r.deadLetter);
              else if ((since === null || r.record.date >= since) && (until === null || r.record.date <= until)) records.push(r.record);
            }
            if (records.length > 0) await activities.push(records);
          }
        } catch (err) {
          deadLetters.write(memberLetter('activities', user.humanId, member.name, member.part, err));
        }
        ctx.progress?.({ pipeline: PIPELINE, kind: 'done', user: user.humanId, units: member.storedBytes });
      }
    } finally {
      await archive.close();
    }
  }

  // One archive at a time: all of it is parsed on this thread, so users side by side only held
  // more at once (bench/takeout.ts: ten users peaked at 292 MB eight at a time, 223 MB one at a time).
  const result = await runPerUser(ctx, { pipeline: PIPELINE, dataset: 'intraday', users: pending, state, batches: userBatches, sides: [activities], usersAtOnce: 1, writers });
  return { result: { ...result, users: users.length }, reports: users.map((u) => reports.get(u.humanId) ?? { humanId: u.humanId, skipped: false, zoneCheck: null, healthConnectRows: 0, duplicateRows: 0 }) };
}

/** The --dry-run lines: per user, the members and bytes it would read and skip. */
export async function planTakeout(users: readonly TakeoutUser[], imported: (humanId: string) => string | undefined, reimport: boolean): Promise<string[]> {
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  const lines: string[] = [];
  for (const user of users) {
    let archive: Archive;
    try {
      archive = await openArchive(user.archive);
    } catch (err) {
      lines.push(`takeout ${user.humanId}: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    try {
      const plan = planArchive(archive.members);
      if (!reimport && imported(user.humanId) === archive.fingerprint) {
        lines.push(`takeout ${user.humanId}: ${user.archive.join(', ')} already imported whole; skipped (--reimport reads it again)`);
        continue;
      }
      const streams = plan.streams.map((s) => `${s.stream} (${s.encoding}, ${s.members.length})`).join(', ') || 'none';
      lines.push(
        `takeout ${user.humanId}: read ${plan.read.members} of ${archive.members.length} members, ${mb(plan.read.bytes)} inflated from ${mb(plan.read.storedBytes)} of ${mb(archive.totalBytes)}; ` +
          `skip ${plan.skipped.members} (${mb(plan.skipped.storedBytes)}); streams: ${streams}; exercise logs: ${plan.exercises.length} file(s)`,
      );
    } finally {
      await archive.close();
    }
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// The pipeline: users file, state, sinks.

/** The users file's takeout entries (entries of other providers are left to their pipelines). */
export async function loadTakeoutUsers(file: string): Promise<TakeoutUser[]> {
  const users = await UsersFile.load(file);
  return parseTakeoutEntries(users.entries(TAKEOUT_PROVIDER).map((e) => ({ index: e.index, fields: { ...e.fields } })), users.dir);
}

const TAKEOUT_PROVIDER = 'takeout' as const;

function checkTakeout(config: RunConfig): string | null {
  if (!config.usersFile) return 'needs --users FILE (a users file with "provider": "takeout" entries)';
  if (!config.usersByProvider[TAKEOUT_PROVIDER]) return `the users file ${config.usersFile} has no "provider": "takeout" entries`;
  return null;
}

export const takeout: PipelineDef = {
  name: PIPELINE,
  provider: TAKEOUT_PROVIDER,
  summary: 'Fitbit / Google Takeout export archives (zip, zip parts or folder), read offline; --reimport reads an imported archive again',
  datasets: ['intraday', 'activities'],
  flags: ['users', 'since', 'until', 'concurrency'],
  check: checkTakeout,
  plan: (config, _now, store) => planTakeoutRun(config, store),
  run: (ctx) => runTakeout(ctx),
  demo: { args: [], help: 'Takeout archives of five of the users, one per export layout (their rows merge with the API rows)' },
};

/** `wearable-etl run takeout`. */
export async function runTakeout(ctx: RunContext): Promise<PipelineResult & { takeout: TakeoutUserReport[] }> {
  const { config } = ctx;
  if (config.usersFile === null) throw new EtlError('CONFIG', 'takeout needs --users FILE (entries with "provider": "takeout")');
  const users = await loadTakeoutUsers(config.usersFile);
  if (users.length === 0) return { pipeline: PIPELINE, datasets: [], users: 0, failedUsers: [], deadLetterFiles: [], takeout: [] };
  const state = await perUserState(ctx, PIPELINE);
  const { result, reports } = await runTakeoutImport(ctx, users, { reimport: config.reimport }, state);
  // The self-check verdicts go to the run summary (`pipelines[].checks`).
  const checks = reports.flatMap((r) => (r.zoneCheck === null ? [] : [{ check: 'json-time-zone', user: r.humanId, ...r.zoneCheck }]));
  return { ...result, checks, takeout: reports };
}

/** --dry-run lines for the takeout pipeline. */
export async function planTakeoutRun(config: RunConfig, store: StateStore): Promise<string[]> {
  if (config.usersFile === null) return ['takeout: needs --users FILE'];
  const users = await loadTakeoutUsers(config.usersFile);
  const state = await store.load(PIPELINE);
  const lines = await planTakeout(users, (h) => state.users[h]?.streams[ARCHIVE_STATE_KEY], config.reimport);
  return lines.length > 0 ? lines : ['takeout: no users file entries with "provider": "takeout"'];
}
