// A sink killed mid-write (SIGKILL) leaves only complete files where readers look;
// prepareOutput and the next run complete the output as a clean run would have.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { DuckDBInstance } from '@duckdb/node-api';
import { createSink, prepareOutput } from '../sinks/index.js';
import { asAsync, intradayBatches } from '../bench/sink-data.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHILD = join(ROOT, 'bench', 'sink-crash-child.ts');
const USERS = 24;
const DAYS = 4;
const POINTS = 1440;

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  const reader = await con.runAndReadAll(sql);
  return reader.getRowObjectsJson() as Record<string, unknown>[];
}

function checksums(out: string): Promise<Record<string, unknown>[]> {
  return query(`
    SELECT CAST(date AS VARCHAR) AS d, CAST("user" AS VARCHAR) AS u, count(*) AS n,
           md5(string_agg(CAST(t AS VARCHAR), '|' ORDER BY id)) AS checksum
    FROM read_parquet('${out}/intraday/**/*.parquet', hive_partitioning=true) t GROUP BY ALL ORDER BY ALL`);
}

/** Starts the child and kills it with SIGKILL once `killAfterFiles` data files are visible. */
async function runAndKill(out: string, runId: string, killAfterFiles: number): Promise<{ signal: NodeJS.Signals | null; code: number | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, out, runId, String(USERS)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ signal: NodeJS.Signals | null; code: number | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    const files = (await listFiles(join(out, 'intraday'))).filter((f) => f.endsWith('.parquet'));
    if (files.length >= killAfterFiles) {
      child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const result = await exited;
  if (result.signal === null && result.code !== 0) throw new Error(`child failed: ${stderr}`);
  return result;
}

test('a run killed mid-write leaves only complete files; prepareOutput + the next run equal a clean run', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'sinks-crash-'));
  await prepareOutput(out);
  const killed = await runAndKill(out, 'run-crash', 20);
  t.is(killed.signal, 'SIGKILL', 'the child was killed before it finished (make the dataset larger if not)');

  // Every *.parquet file anywhere below <out> (temporary folder included) is complete.
  const visible = (await listFiles(out)).filter((f) => f.endsWith('.parquet'));
  t.true(visible.length >= 20);
  const perFile = await query(`SELECT filename, count(*) AS n FROM read_parquet('${out}/**/*.parquet', filename=true) GROUP BY ALL`);
  t.is(perFile.length, visible.length);
  for (const f of perFile) t.is(Number(f['n']), POINTS, `${String(f['filename'])} holds a whole partition`);
  const leftovers = await listFiles(join(out, '_tmp'));
  t.true(leftovers.every((f) => f.endsWith('.tmp')), 'temporary files are never named like data files');

  await prepareOutput(out);
  t.is(await stat(join(out, '_tmp')).then(() => 'exists', () => 'gone'), 'gone');
  const rerun = await runAndKill(out, 'run-after-crash', Number.POSITIVE_INFINITY);
  t.is(rerun.code, 0);

  const clean = await mkdtemp(join(tmpdir(), 'sinks-clean-'));
  await prepareOutput(clean);
  await createSink('intraday', { outDir: clean, format: 'parquet', runId: 'run-clean' })(asAsync(intradayBatches({ users: USERS, days: DAYS, points: POINTS }, 5000)));
  const [after, expected] = await Promise.all([checksums(out), checksums(clean)]);
  t.is(after.length, USERS * DAYS);
  t.deepEqual(after, expected);
});
