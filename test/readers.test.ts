// Output read by the readers analysts use (scripts/check-readers.ts: DuckDB, polars and hyparquet
// for Parquet; polars and apache-arrow for Arrow IPC): every dataset a run writes, in both
// formats, through the CLI entry point against the fixture API. The demo's own output is
// checked the same way with `npx tsx scripts/check-readers.ts out` (README).
import test from 'ava';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixtureEnv, startFixtureApi, writeUsersFile } from '../fixtures/server.js';
import { main } from '../pipelines/cli.js';
import { checkReaders } from '../scripts/check-readers.js';
import { query } from './duckdb.js';

const RUNS = [
  ['fitbit-intraday', '--since', '2016-04-12', '--until', '2016-04-13', '--resources', 'steps,calories,distance'],
  ['fitbit-activities', '--since', '2016-04-12', '--until', '2016-05-12'],
  ['humanapi', '--since', '2014-07-01', '--until', '2015-09-30', '--types', 'activities,heart_rates,weights,blood_pressures'],
];

for (const format of ['parquet', 'arrow'] as const) {
  test(`every dataset in ${format} reads the same in each reader: rows and the declared types`, async (t) => {
    t.timeout(300_000);
    const api = await startFixtureApi({ fitbit: { users: ['1503960366', '1624580081'], sampleUser: false } });
    const root = await fs.mkdtemp(path.join(os.tmpdir(), `wetl-readers-${format}-`));
    t.teardown(async () => {
      await api.close();
      await fs.rm(root, { recursive: true, force: true });
    });
    const users = await writeUsersFile(api, path.join(root, 'users.json'));
    const out = path.join(root, 'out');
    for (const args of RUNS) {
      const stderr: string[] = [];
      const code = await main(['run', ...args, '--out', out, '--format', format, ...(args[0] === 'humanapi' ? [] : ['--users', users])], {
        env: fixtureEnv(api),
        cwd: root,
        stdout: () => {},
        stderr: (s) => stderr.push(s),
      });
      t.is(code, 0, `${args[0]}: ${stderr.join('')}`);
    }
    const checks = await checkReaders(out);
    t.deepEqual(checks.flatMap((c) => c.problems), []);
    t.deepEqual(checks.map((c) => c.dataset).sort(), ['activities', 'daily_summaries', 'intraday', 'readings']);
    for (const c of checks) {
      t.is(c.format, format);
      const counts = Object.values(c.rows);
      t.is(counts.length, format === 'parquet' ? 3 : 2, `${c.dataset}: every reader counted`);
      t.true(counts[0]! > 0, `${c.dataset}: rows`);
      if (format === 'parquet') {
        // DuckDB from this test's own connection, as a check on the checker.
        const [r] = await query(`SELECT count(*) AS n FROM read_parquet('${path.join(out, c.dataset, '**', '*.parquet')}')`);
        t.is(c.rows.duckdb, Number(r!.n), c.dataset);
      }
    }
  });
}

test('a file whose column type differs from the declared one is reported', async (t) => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-readers-bad-'));
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  const dir = path.join(root, 'intraday', 'date=2016-04-12', 'user=u1');
  await fs.mkdir(dir, { recursive: true });
  // Written by DuckDB with `value` as text: every reader sees it, and each must flag it.
  await query(`COPY (SELECT 'x' AS id, '1' AS value) TO '${path.join(dir, 'data.parquet')}' (FORMAT PARQUET)`);
  const checks = await checkReaders(root);
  t.is(checks.length, 1);
  t.regex(checks[0]!.problems.join('\n'), /DuckDB reads/);
  t.regex(checks[0]!.problems.join('\n'), /polars reads intraday\/date=2016-04-12\/user=u1\/data\.parquet/);
});
