// The run report after a small demo-like run: the fixture API on loopback, `wearable-etl run
// fitbit-intraday` (3 users × 4 days, steps and calories) and `wearable-etl report` through the
// CLI entry point. summary.json is checked against DuckDB over the same files; then the output
// is damaged (a day's partition removed, one minute's value rewritten) and the report must say so,
// also when it reads the facts the sink wrote into each file and its own cache of them.
import test from 'ava';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { query } from './duckdb.js';
import { fixtureEnv, startFixtureApi, writeUsersFile } from '../fixtures/server.js';
import { main } from '../pipelines/cli.js';
import { writeReport, type ReportSummary } from '../pipelines/report.js';
import { footerFacts } from '../pipelines/report-scan.js';
import { FACTS_KEY, type PartitionFacts } from '../sinks/index.js';
import { chromium } from 'playwright-core';

const SINCE = '2016-04-13';
const UNTIL = '2016-04-16';
const USERS = 3;

interface DatasetFigures {
  rows: number;
  partitions: number;
  users: number;
  firstDate: string;
  lastDate: string;
}
interface Summary {
  datasets: Record<string, DatasetFigures & { missingUserDays: number; manifest: { missingFiles: string[] }; perUser: Array<{ user: string; missingDays: string[] }> }>;
  reconciliation: { compared: number; mismatches: number; rows: Array<{ user: string; date: string; source: string; intradaySteps: number; dayTotal: number; difference: number }> };
  runs: Array<{ runId: string; requests: number; rateLimited: number; retries: number; rateLimitWaitMs: number | null }>;
}

async function cli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await main(args, { env, cwd, stdout: (s) => stdout.push(s), stderr: (s) => stderr.push(s) });
  return { code, stdout: stdout.join(''), stderr: stderr.join('') };
}

const readSummary = async (out: string): Promise<Summary> => JSON.parse(await fs.readFile(path.join(out, '_report', 'summary.json'), 'utf8')) as Summary;

/** What DuckDB counts in a dataset's files: the contract's summary.json figures. */
async function duckdbFigures(out: string, dataset: string): Promise<DatasetFigures> {
  const glob = path.join(out, dataset, '**', '*.parquet');
  const [r] = await query(
    `SELECT count(*) AS rows, count(DISTINCT filename) AS partitions, count(DISTINCT "user") AS users,
            CAST(min("date") AS VARCHAR) AS firstDate, CAST(max("date") AS VARCHAR) AS lastDate
     FROM read_parquet('${glob}', hive_partitioning = true, hive_types_autocast = false, filename = true)`,
  );
  return { rows: Number(r!.rows), partitions: Number(r!.partitions), users: Number(r!.users), firstDate: String(r!.firstDate), lastDate: String(r!.lastDate) };
}

/** User-days where DuckDB's sum of minute steps differs from the daily_summaries steps. */
async function duckdbMismatches(out: string): Promise<Array<{ user: string; date: string; difference: number }>> {
  const rows = await query(
    `WITH m AS (SELECT "user", "date", sum(value) AS s FROM read_parquet('${path.join(out, 'intraday', '**', '*.parquet')}', hive_partitioning = true, hive_types_autocast = false) WHERE type = 'steps' GROUP BY ALL),
          d AS (SELECT "user", "date", steps FROM read_parquet('${path.join(out, 'daily_summaries', '**', '*.parquet')}', hive_partitioning = true, hive_types_autocast = false) WHERE steps IS NOT NULL)
     SELECT m."user" AS "user", m."date" AS "date", m.s - d.steps AS difference FROM m JOIN d USING ("user", "date") WHERE m.s <> d.steps ORDER BY ALL`,
  );
  return rows.map((r) => ({ user: String(r.user), date: String(r.date), difference: Number(r.difference) }));
}

let root = '';
let out = '';
let usersDone: Promise<void> | null = null;

/** One run shared by the tests of this file (each test copies it before damaging anything). */
function prepare(): Promise<void> {
  usersDone ??= (async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-report-'));
    const api = await startFixtureApi();
    try {
      const users = await writeUsersFile(api, path.join(root, 'users.json'), api.fitbit.userIds().slice(0, USERS));
      out = path.join(root, 'out');
      const run = await cli(['run', 'fitbit-intraday', '--users', users, '--out', out, '--since', SINCE, '--until', UNTIL, '--resources', 'steps,calories', '--report'], root, fixtureEnv(api));
      if (run.code !== 0) throw new Error(`run failed (${run.code}): ${run.stderr}`);
    } finally {
      await api.close();
    }
  })();
  return usersDone;
}

test.after.always(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

test.serial('after a run, `report` exits 0 and summary.json counts what DuckDB counts in the files', async (t) => {
  t.timeout(120_000);
  await prepare();
  // `run … --report` wrote it at the end of the run, its own run included.
  const atRunEnd = await readSummary(out);
  t.is(atRunEnd.runs.length, 1);
  t.is(atRunEnd.datasets['intraday']!.users, USERS);
  await fs.rm(path.join(out, '_report'), { recursive: true });

  const report = await cli(['report', '--out', out], root);
  t.is(report.code, 0, report.stderr);
  t.regex(report.stdout, /_report\/index\.html/);
  const summary = await readSummary(out);
  t.deepEqual(Object.keys(summary.datasets).sort(), ['daily_summaries', 'intraday']);
  for (const dataset of ['intraday', 'daily_summaries']) {
    const d = summary.datasets[dataset]!;
    t.deepEqual({ rows: d.rows, partitions: d.partitions, users: d.users, firstDate: d.firstDate, lastDate: d.lastDate }, await duckdbFigures(out, dataset), dataset);
  }
  t.is(summary.datasets['intraday']!.users, USERS);

  // Reconciliation: what DuckDB finds by joining the two datasets, and every user-day compared.
  const [pairs] = await query(
    `SELECT count(*) AS n FROM (SELECT DISTINCT "user", "date" FROM read_parquet('${path.join(out, 'intraday', '**', '*.parquet')}', hive_partitioning = true, hive_types_autocast = false) WHERE type = 'steps') m
     JOIN (SELECT "user", "date" FROM read_parquet('${path.join(out, 'daily_summaries', '**', '*.parquet')}', hive_partitioning = true, hive_types_autocast = false) WHERE steps IS NOT NULL) d USING ("user", "date")`,
  );
  t.true(Number(pairs!.n) > 0);
  t.is(summary.reconciliation.compared, Number(pairs!.n));
  const expected = await duckdbMismatches(out);
  t.is(summary.reconciliation.mismatches, expected.length);

  // Run health: the run summary the run wrote, read here on its own.
  const runFiles = (await fs.readdir(path.join(out, '_runs'))).filter((f) => f.endsWith('.json'));
  t.is(runFiles.length, 1);
  const run = JSON.parse(await fs.readFile(path.join(out, '_runs', runFiles[0]!), 'utf8')) as { runId: string; http: { requests: number; rateLimited: number; rateLimitWaitMs: number } };
  t.is(summary.runs.length, 1);
  t.is(summary.runs[0]!.runId, run.runId);
  t.is(summary.runs[0]!.requests, run.http.requests);
  t.true(run.http.requests >= USERS * 4 * 2);
  t.is(typeof run.http.rateLimitWaitMs, 'number');
  t.is(summary.runs[0]!.rateLimitWaitMs, run.http.rateLimitWaitMs);

  // The page: one file, no reference to anything outside it.
  const html = await fs.readFile(path.join(out, '_report', 'index.html'), 'utf8');
  // (SVG namespaces are names, not requests; url(#…) points inside the page.)
  t.notRegex(html, /<script|<link|<img|@import|url\((?!#)|https?:\/\/(?!www\.w3\.org\/)/i);
  t.regex(html, /<svg/);
});

test.serial('a removed day partition and a changed minute show in summary.json and on the page', async (t) => {
  t.timeout(120_000);
  await prepare();
  const damaged = path.join(root, 'damaged');
  await fs.cp(out, damaged, { recursive: true });
  await fs.rm(path.join(damaged, '_report'), { recursive: true, force: true });

  // The users, as DuckDB sees them; damage the first user's second day and the second user's third.
  const users = (await query(`SELECT DISTINCT "user" FROM read_parquet('${path.join(damaged, 'intraday', '**', '*.parquet')}', hive_partitioning = true, hive_types_autocast = false) ORDER BY 1`)).map((r) => String(r.user));
  t.is(users.length, USERS);
  const removedDay = '2016-04-14';
  const removedUser = users[0]!;
  await fs.rm(path.join(damaged, 'intraday', `date=${removedDay}`, `user=${removedUser}`), { recursive: true });

  // Rewrite one partition file with one steps minute 7 higher (DuckDB writes the new file).
  const changedDay = '2016-04-15';
  const changedUser = users[1]!;
  const file = path.join(damaged, 'intraday', `date=${changedDay}`, `user=${changedUser}`, 'data.parquet');
  const [minute] = await query(`SELECT id FROM read_parquet('${file}') WHERE type = 'steps' ORDER BY "timestamp" LIMIT 1 OFFSET 600`);
  t.truthy(minute);
  const tmp = `${file}.rewrite.parquet`;
  await query(`COPY (SELECT * REPLACE (CASE WHEN id = '${String(minute!.id)}' THEN value + 7 ELSE value END AS value) FROM read_parquet('${file}')) TO '${tmp}' (FORMAT parquet)`);
  await fs.rename(tmp, file);

  const report = await cli(['report', '--out', damaged], root);
  t.is(report.code, 0, report.stderr);
  const summary = await readSummary(damaged);
  const intraday = summary.datasets['intraday']!;
  t.deepEqual({ rows: intraday.rows, partitions: intraday.partitions, users: intraday.users, firstDate: intraday.firstDate, lastDate: intraday.lastDate }, await duckdbFigures(damaged, 'intraday'));
  // The missing day: named for its user, counted, and the manifest still lists its file.
  t.true(intraday.perUser.find((u) => u.user === removedUser)!.missingDays.includes(removedDay));
  t.true(intraday.missingUserDays >= 1);
  t.deepEqual(intraday.manifest.missingFiles, [`date=${removedDay}/user=${removedUser}/data.parquet`]);
  // The reconciliation mismatch: exactly DuckDB's, and the changed minute among them.
  const expected = await duckdbMismatches(damaged);
  t.true(expected.some((m) => m.user === changedUser && m.date === changedDay && m.difference === 7));
  t.is(summary.reconciliation.mismatches, expected.length);
  t.deepEqual(
    summary.reconciliation.rows.map((r) => ({ user: r.user, date: r.date, difference: r.difference })).sort((a, b) => (a.user + a.date < b.user + b.date ? -1 : 1)),
    expected.sort((a, b) => (a.user + a.date < b.user + b.date ? -1 : 1)),
  );
  t.is(summary.reconciliation.rows.find((r) => r.user === changedUser && r.date === changedDay)!.source, 'fitbit');

  const html = await fs.readFile(path.join(damaged, '_report', 'index.html'), 'utf8');
  t.regex(html, new RegExp(`<td>${changedUser}</td><td>${changedDay}</td><td>fitbit</td>.*\\+7`));
  t.regex(html, new RegExp(`date=${removedDay}/user=${removedUser}/data.parquet`));
  t.regex(html, new RegExp(`<td>${removedUser}</td>.*${removedDay}`));
});

test.serial('the page opens in headless Chromium with no network request and no console error, and draws the heatmap', async (t) => {
  t.timeout(120_000);
  await prepare();
  const report = await cli(['report', '--out', out], root);
  t.is(report.code, 0, report.stderr);
  const page = path.join(out, '_report', 'index.html');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  tab.on('request', (r) => requests.push(r.url()));
  tab.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  tab.on('pageerror', (e) => consoleErrors.push(e.message));
  const url = `file://${page}`;
  await tab.goto(url, { waitUntil: 'load' });
  t.deepEqual(requests.filter((r) => r !== url), []);
  t.deepEqual(consoleErrors, []);

  // One heatmap per intraday type; each draws (users + the all-users row) × local dates cells.
  const { firstDate, lastDate } = await duckdbFigures(out, 'intraday');
  const days = (Date.parse(lastDate) - Date.parse(firstDate)) / 86_400_000 + 1;
  t.is(days, 4);
  for (const type of ['steps', 'calories']) {
    const cells = await tab.locator(`figure.heatmap[data-dataset="intraday"][data-type="${type}"] svg path[ecmeta_series_index="0"][ecmeta_data_index]`).count();
    t.is(cells, (USERS + 1) * days, type);
  }
  const summaryCells = await tab.locator('figure.heatmap[data-dataset="daily_summaries"] svg path[ecmeta_series_index="0"][ecmeta_data_index]').count();
  t.is(summaryCells, (USERS + 1) * days);
  // The heatmap is really painted: its box has a size on the page.
  const box = await tab.locator('figure.heatmap[data-type="steps"] svg').boundingBox();
  t.true(box !== null && box.width > 200 && box.height > 80);
  const shot = path.join(root, 'report.png');
  await tab.screenshot({ path: shot, fullPage: true });
  t.true((await fs.stat(shot)).size > 10_000);
  if (process.env['WEARABLE_ETL_KEEP_SCREENSHOT']) await fs.copyFile(shot, process.env['WEARABLE_ETL_KEEP_SCREENSHOT']);
});

test.serial('report on a folder that is not an output root is a usage error', async (t) => {
  const result = await cli(['report', '--out', path.join(os.tmpdir(), 'wetl-report-no-such-folder')], os.tmpdir());
  t.is(result.code, 2);
  t.regex(result.stderr, /is not a folder/);
});

test.serial("the sink writes each partition's report facts into its metadata, as DuckDB counts them from the rows", async (t) => {
  t.timeout(120_000);
  await prepare();
  const intraday = path.join(out, 'intraday', '**', '*.parquet');
  const written = await query(`SELECT file_name AS f, decode(value) AS v FROM parquet_kv_metadata('${intraday}') WHERE decode(key) = '${FACTS_KEY}' ORDER BY 1`);
  const counted = await query(
    `SELECT filename AS f, sum(n) AS rows,
            json_group_object(type, json_array(n, i)) AS points,
            sum(s) AS steps
     FROM (SELECT filename, type, count(*) AS n, min("interval") AS i, sum(CASE WHEN type = 'steps' THEN value END) AS s
           FROM read_parquet('${intraday}', filename = true) GROUP BY ALL)
     GROUP BY ALL ORDER BY 1`,
  );
  t.true(counted.length >= USERS * 4);
  t.deepEqual(written.map((r) => r.f), counted.map((r) => r.f), 'every file carries its facts');
  // The report's own walk of a footer finds what DuckDB finds there.
  for (const r of written) {
    const bytes = await fs.readFile(String(r.f));
    t.deepEqual(footerFacts(bytes), { rows: (JSON.parse(String(r.v)) as PartitionFacts).rows, createdBy: 'wearable-etl', facts: String(r.v) });
  }
  for (const [i, row] of counted.entries()) {
    const facts = JSON.parse(String(written[i]!.v)) as PartitionFacts;
    const rows = Number(row.rows);
    t.deepEqual(facts, { rows, points: JSON.parse(String(row.points)) as Record<string, [number, number]>, steps: Number(row.steps) }, String(row.f));
  }
  const summaries = path.join(out, 'daily_summaries', '**', '*.parquet');
  const summaryFacts = await query(`SELECT file_name AS f, decode(value) AS v FROM parquet_kv_metadata('${summaries}') WHERE decode(key) = '${FACTS_KEY}' ORDER BY 1`);
  const summaryRows = await query(`SELECT filename AS f, count(*) AS rows, list([source, CAST(steps AS VARCHAR)] ORDER BY id) FILTER (WHERE steps IS NOT NULL) AS s FROM read_parquet('${summaries}', filename = true) GROUP BY ALL ORDER BY 1`);
  t.is(summaryFacts.length, summaryRows.length);
  for (const [i, row] of summaryRows.entries()) {
    const facts = JSON.parse(String(summaryFacts[i]!.v)) as PartitionFacts;
    const expected = ((row.s ?? []) as string[][]).map(([source, steps]) => [source, Number(steps)]);
    t.deepEqual(facts, { rows: Number(row.rows), summaries: expected }, String(row.f));
  }
});

/** summary.json without the moment it was written. */
const figures = (s: ReportSummary): Omit<ReportSummary, 'generatedAt'> => {
  const { generatedAt: _, ...rest } = s;
  return rest;
};

test.serial('the cache in _report/ gives the same report without reading the files, and does not hide a changed or removed file', async (t) => {
  t.timeout(120_000);
  await prepare();
  const copy = path.join(root, 'cached');
  await fs.cp(out, copy, { recursive: true });
  await fs.rm(path.join(copy, '_report'), { recursive: true, force: true });
  const files = (await query(`SELECT count(*) AS n FROM glob('${path.join(copy, '*', '**', '*.parquet')}')`))[0]!.n;

  // Cold, on two worker threads; then warm, on this thread: the same figures, no file read.
  const cold = await writeReport({ outDir: copy, threads: 2 });
  t.deepEqual(cold.reading, { filesRead: Number(files), filesCached: 0, threads: 2 });
  const warm = await writeReport({ outDir: copy, threads: 0 });
  t.deepEqual(warm.reading, { filesRead: 0, filesCached: Number(files), threads: 0 });
  t.deepEqual(figures(warm.summary), figures(cold.summary));
  t.is(warm.summary.reconciliation.mismatches, 0);

  // One minute changed by another tool, the file's mtime then set back to what it was: its
  // inode and ctime still tell, so it is read again and the mismatch shows, as DuckDB finds it.
  const users = warm.summary.datasets.intraday!.perUser.map((u) => u.user);
  const file = path.join(copy, 'intraday', `date=2016-04-15`, `user=${users[1]!}`, 'data.parquet');
  const before = await fs.stat(file);
  const [minute] = await query(`SELECT id FROM read_parquet('${file}') WHERE type = 'steps' ORDER BY "timestamp" LIMIT 1 OFFSET 700`);
  await query(`COPY (SELECT * REPLACE (CASE WHEN id = '${String(minute!.id)}' THEN value + 3 ELSE value END AS value) FROM read_parquet('${file}')) TO '${file}.new.parquet' (FORMAT parquet)`);
  await fs.rename(`${file}.new.parquet`, file);
  await fs.utimes(file, before.atime, before.mtime);
  // A day's partition removed: the cache must not keep it.
  await fs.rm(path.join(copy, 'intraday', 'date=2016-04-14', `user=${users[0]!}`), { recursive: true });

  const after = await writeReport({ outDir: copy });
  t.deepEqual(after.reading, { filesRead: 1, filesCached: Number(files) - 2, threads: 0 });
  const expected = await duckdbMismatches(copy);
  t.deepEqual(expected.map((m) => [m.user, m.date, m.difference]), [[users[1]!, '2016-04-15', 3]]);
  t.deepEqual(after.summary.reconciliation.rows.map((m) => [m.user, m.date, m.difference]), [[users[1]!, '2016-04-15', 3]]);
  const intraday = after.summary.datasets.intraday!;
  t.deepEqual({ rows: intraday.rows, partitions: intraday.partitions, users: intraday.users, firstDate: intraday.firstDate, lastDate: intraday.lastDate }, await duckdbFigures(copy, 'intraday'));
  t.deepEqual(intraday.perUser.find((u) => u.user === users[0]!)!.missingDays, ['2016-04-14']);

  // A date gone entirely: its cache goes with it.
  await fs.rm(path.join(copy, 'intraday', 'date=2016-04-16'), { recursive: true });
  const last = await writeReport({ outDir: copy });
  t.is(last.reading.filesRead, 0);
  t.is(last.summary.datasets.intraday!.lastDate, '2016-04-15');
  t.deepEqual((await fs.readdir(path.join(copy, '_report', 'cache', 'intraday'))).sort(), ['date=2016-04-13.json', 'date=2016-04-14.json', 'date=2016-04-15.json']);
});
