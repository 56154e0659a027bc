// --dry-run: what a run would fetch and how long the rate limits make it take. Reads the
// users file and the state; sends no request and writes nothing.
import { addDays, daysInclusive, yesterdayIn } from '../lib/dates.js';
import { UsersFile } from '../sources/fitbit/users.js';
import { planWindows } from '../sources/humanapi/index.js';
import { HUMANAPI_STATE_KEY, humanApiRange } from './humanapi.js';
import { userStreams } from './fitbit-common.js';
import { planTakeoutRun } from './takeout.js';
import type { PipelineName, RunConfig } from './config.js';
import { defaultStatePath, loadState } from './state.js';

const FITBIT_PER_HOUR = 150;

export async function planRun(config: RunConfig, now = Date.now()): Promise<string> {
  const lines: string[] = [`dry run: nothing is fetched or written (output would go to ${config.outDir})`];
  let totalHours = 0;
  for (const pipeline of config.pipelines) {
    const state = await loadState(config.stateFile ?? defaultStatePath(config.outDir, pipeline), pipeline);
    if (pipeline === 'takeout') {
      lines.push(...(await planTakeoutRun(config)));
      continue;
    }
    if (pipeline === 'humanapi') {
      // The same windows the run would walk: per type, from --since or the watermark less the lookback.
      for (const type of config.types) {
        const { start, end } = humanApiRange(config, now, state.users[HUMANAPI_STATE_KEY]?.streams[type]);
        const windows = start < end ? planWindows(start, end) : [];
        const first = windows[0];
        const last = windows[windows.length - 1];
        lines.push(
          `${pipeline}: ${type}: ${windows.length} window(s) of ≤ 31 days` +
            (first && last ? ` (${new Date(first.since).toISOString()} .. ${new Date(last.before).toISOString()})` : '') +
            `, ≥ ${windows.length} request(s) (one per page of ≤ 500 records)`,
        );
      }
      continue;
    }
    const users = await UsersFile.load(config.usersFile as string);
    let maxPerUser = 0;
    let requests = 0;
    for (const user of users.users()) {
      // Without the profile (no request in a dry run) the users file's zone or UTC decides "yesterday".
      const until = config.until ?? yesterdayIn(user.timezone ?? 'UTC', now);
      const saved = state.users[user.humanId]?.streams ?? {};
      const perUser = requestsFor(pipeline, config, saved, until);
      lines.push(`${pipeline}: user ${user.humanId}: ${perUser.window}, ${perUser.requests} request(s)`);
      requests += perUser.requests;
      maxPerUser = Math.max(maxPerUser, perUser.requests);
    }
    // Users run side by side (userStreams at a time), each limited to 150 requests an hour.
    const streams = userStreams(config.concurrency);
    const rounds = Math.ceil(users.users().length / streams);
    const hours = rounds * Math.max(0, Math.ceil(maxPerUser / FITBIT_PER_HOUR) - 1);
    totalHours += hours;
    lines.push(`${pipeline}: ${users.users().length} user(s), ${requests} request(s); rate-limit waits ≈ ${hours} h (150 requests/hour/user, ${streams} users at a time)`);
  }
  lines.push(`estimated rate-limit waiting: ≈ ${totalHours} h (plus transfer time)`);
  return lines.join('\n');
}

function requestsFor(pipeline: PipelineName, config: RunConfig, saved: Record<string, string>, until: string): { window: string; requests: number } {
  if (pipeline === 'fitbit-intraday') {
    let requests = 1; // profile
    let first = until;
    for (const r of config.resources) {
      const mark = saved[r];
      const since = config.since ?? (mark ? addDays(mark, 1 - config.lookbackDays) : addDays(until, -6));
      if (since < first) first = since;
      requests += daysInclusive(since, until);
    }
    return { window: `${first} .. ${until} × ${config.resources.join(',')} (${config.detail})`, requests };
  }
  const mark = saved['activities'];
  const since = config.since ?? (mark ? addDays(mark.slice(0, 10), -Math.max(1, config.lookbackDays)) : addDays(until, -6));
  return { window: `${since} .. ${until}`, requests: 2 };
}
