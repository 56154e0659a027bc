// Set-up shared by the Google Health tests: the fixture API, a users file of google-health
// entries (and Fitbit ones when asked), the run through the real CLI code path, and the truth
// read straight from the bundled Fitabase file (not through the fixture's code).
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { googleHealthEnv, googleHealthUsers, startFixtureApi, type FixtureApi, type FixtureOptions } from '../fixtures/server.js';
import { createLogger } from '../lib/log.js';
import { parseRunArgs } from '../pipelines/registry.js';
import type { RunConfig } from '../pipelines/config.js';
import { runPipelines, type RunSummary } from '../pipelines/run.js';
import type { RunContext } from '../pipelines/context.js';

export const FAST = { retry: { maxAttempts: 12, baseDelayMs: 5, maxDelayMs: 60, timeoutMs: 10_000 } };

export async function ghRig(t: { teardown(fn: () => Promise<void>): void }, options: FixtureOptions): Promise<{ api: FixtureApi; dir: string }> {
  const api = await startFixtureApi(options);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-gh-'));
  t.teardown(async () => {
    await api.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  return { api, dir };
}

export async function writeJson(file: string, value: unknown): Promise<string> {
  await fs.writeFile(file, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  return file;
}

export async function run(
  api: FixtureApi,
  dir: string,
  args: string[],
  lines: string[],
  tuning: RunContext['tuning'] = FAST,
  extraEnv: Record<string, string> = {},
): Promise<RunSummary> {
  const config = parseRunArgs(args, { ...googleHealthEnv(api), ...extraEnv }, dir) as RunConfig;
  return runPipelines(config, { log: createLogger({ json: true, write: (line) => lines.push(line) }), ...(tuning ? { tuning } : {}) });
}

export { googleHealthUsers };

/** Steps per local date of a Fitabase user, straight from the bundled file. */
export function fitabaseDailySteps(id: string): Map<string, { total: number; byHour: Map<number, number> }> {
  const file = new URL('../fixtures/data/fitabase/minutes.json.gz', import.meta.url);
  const data = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')) as { users: Array<{ id: string; days: Array<{ date: string; hours: number[]; steps: number[] }> }> };
  const user = data.users.find((u) => u.id === id);
  if (!user) throw new Error(`no Fitabase user ${id}`);
  const out = new Map<string, { total: number; byHour: Map<number, number> }>();
  for (const d of user.days) {
    const byHour = new Map<number, number>();
    d.hours.forEach((h, i) => byHour.set(h, d.steps.slice(i * 60, i * 60 + 60).reduce((a, b) => a + b, 0)));
    out.set(d.date, { total: [...byHour.values()].reduce((a, b) => a + b, 0), byHour });
  }
  return out;
}

export const shift = (date: string, days: number): string => new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
