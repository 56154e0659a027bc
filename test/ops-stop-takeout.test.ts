// Issue 19 for Takeout: an import through the wearable-etl command is killed (SIGKILL) or
// interrupted (SIGTERM) after some users' checkpoints, then run again with the same command.
// The archives whose import was committed before the stop are not read again (the state marks
// them at each user's checkpoint, not at the end), and the output equals an uninterrupted run's.
import test from 'ava';
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTakeoutFixtures } from '../fixtures/takeout.js';
import { query } from './duckdb.js';
import { until } from './fitbit-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'pipelines', 'bin.ts');

function startCli(users: string, out: string): { kill: (s: NodeJS.Signals) => void; done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'run', 'takeout', '--users', users, '--out', out, '--concurrency', '1', '--compression', 'none'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  return { kill: (s) => child.kill(s), done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr }))) };
}

/** Users whose archive the state marks as imported whole. */
function imported(out: string): string[] {
  try {
    const state = JSON.parse(readFileSync(path.join(out, '_state', 'takeout.json'), 'utf8')) as { users: Record<string, { streams: Record<string, string> }> };
    return Object.entries(state.users).filter(([, u]) => u.streams['archive'] !== undefined).map(([h]) => h).sort();
  } catch {
    return [];
  }
}

const COLUMNS: Record<string, string> = { intraday: 'id, type, "timestamp", tzOffset, value, unit', activities: 'id, type, startTime, endTime, duration, distance, steps, calories' };

async function fingerprint(out: string, dataset: string): Promise<Record<string, unknown>[]> {
  return query(
    `SELECT "user", CAST("date" AS VARCHAR) AS d, count(*) AS n, count(DISTINCT id) AS ids, sum(hash(${COLUMNS[dataset]})) AS h
     FROM read_parquet('${path.join(out, dataset, '**', '*.parquet')}', hive_partitioning=true, hive_types_autocast=false) GROUP BY ALL ORDER BY ALL`,
  );
}

/** Users the run said it skipped as imported whole. */
const skipped = (stderr: string): string[] =>
  stderr.split('\n').flatMap((l) => (l.includes('archive already imported whole') ? [(JSON.parse(l) as { user: string }).user] : [])).sort();

test('takeout: killed or stopped after some users committed, the rerun reads no committed archive again and ends with the clean output', async (t) => {
  t.timeout(300_000);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-ops-takeout-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const set = buildTakeoutFixtures(path.join(dir, 'archives'), { days: 4 });
  const everyone = set.archives.map((a) => a.humanId).sort();

  const clean = path.join(dir, 'clean');
  const first = await startCli(set.usersFile, clean).done;
  t.is(first.code, 0, first.stderr);
  t.deepEqual(imported(clean), everyone);
  const expected = { intraday: await fingerprint(clean, 'intraday'), activities: await fingerprint(clean, 'activities') };

  for (const [signal, code] of [['SIGKILL', null], ['SIGTERM', 143]] as const) {
    const out = path.join(dir, signal);
    const run = startCli(set.usersFile, out);
    t.true(await until(() => imported(out).length >= 1, 120_000), `${signal}: a user reached its checkpoint`);
    run.kill(signal);
    const stopped = await run.done;
    t.is(stopped.code, code, stopped.stderr);
    const before = imported(out);
    t.true(before.length >= 1 && before.length < everyone.length, `${signal}: stopped between the first and the last user (${before.join(', ')})`);

    const rerun = await startCli(set.usersFile, out).done;
    t.is(rerun.code, 0, rerun.stderr);
    t.deepEqual(skipped(rerun.stderr), before, `${signal}: the archives committed before the stop are not read again`);
    t.deepEqual(imported(out), everyone);
    t.deepEqual(await fingerprint(out, 'intraday'), expected.intraday, `${signal}: intraday equals the clean run`);
    t.deepEqual(await fingerprint(out, 'activities'), expected.activities, `${signal}: activities equal the clean run`);
  }
});
