// The output root on S3-compatible storage (sinks/object-store/s3.ts) against s3rver behind the
// proxy of test/s3.ts, which gives s3rver S3's whole-PUT guarantee and AbortMultipartUpload
// and injects faults. Objects are read back through the S3 API and, for Parquet, by DuckDB.
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COLUMNS } from '../lib/schema.js';
import type { RetryPolicy } from '../lib/http.js';
import { sortRows, toColumns, type Row } from '../sinks/columns.js';
import { fileFormat } from '../sinks/formats.js';
import { mergeById } from '../sinks/merge.js';
import { Staging, type ObjectInfo } from '../sinks/object-store/index.js';
import { S3Store, s3ClientFromEnv, type S3StoreOptions } from '../sinks/object-store/s3.js';
import { query } from './duckdb.js';
import { on, startTestS3, type TestS3 } from './s3.js';

const FAST_RETRY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 20_000 };
const MiB = 1024 * 1024;

let s3: TestS3;
let work: string;
test.before(async () => {
  s3 = await startTestS3();
  work = await mkdtemp(join(tmpdir(), 's3-store-'));
});
test.after.always(async () => {
  await s3?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

function store(extra: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store({ client: s3ClientFromEnv(s3.env), bucket: s3.bucket, prefix: 'out', retry: FAST_RETRY, partBytes: 5 * MiB, multipartThresholdBytes: 5 * MiB, ...extra });
}

async function keys(st: S3Store, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of st.list(prefix)) out.push(o.key);
  return out;
}

function pattern(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE(((i + seed) * 2654435761) >>> 0, i);
  return data;
}

test.serial('bytes, parts and staged files round-trip whole; a staged file is consumed', async (t) => {
  const st = store();
  const small = randomBytes(1000);
  await st.put('a/date=2026-01-01/user=u1/data.parquet', small);
  t.deepEqual(Buffer.from((await st.get('a/date=2026-01-01/user=u1/data.parquet'))!), small);

  // Several buffers in order make one object.
  await st.put('a/parts.bin', [Buffer.from('ab'), Buffer.from('cd'), Buffer.from('e')]);
  t.is(Buffer.from((await st.get('a/parts.bin'))!).toString(), 'abcde');

  // Over the threshold: a multipart upload (11 MiB → three parts of ≤ 5 MiB).
  const big = pattern(11 * MiB + 3, 7);
  const before = s3.seen.length;
  await st.put('a/big.bin', big);
  const partPuts = s3.seen.slice(before).filter((r) => r.method === 'PUT' && r.query.has('partNumber'));
  t.is(partPuts.length, 3);
  t.true(Buffer.from((await st.get('a/big.bin'))!).equals(big));

  // From a staged file, multipart too; the file is gone afterwards.
  const file = join(work, 'staged.bin');
  await writeFile(file, big);
  await st.put('a/from-file.bin', { file });
  t.true(Buffer.from((await st.get('a/from-file.bin'))!).equals(big));
  t.false((await readdir(work)).includes('staged.bin'));
  t.is(await st.get('a/missing.bin'), null);
});

test.serial('list pages through continuation tokens, in key order, relative to the prefix; delete', async (t) => {
  const st = store({ listPageSize: 2 });
  const names = ['l/x=1/f', 'l/x=2/f', 'l/x=3/f', 'l/y', 'l/z/0'];
  for (const n of [...names].reverse()) await st.put(n, Buffer.from(n));
  const before = s3.seen.length;
  const listed: ObjectInfo[] = [];
  for await (const o of st.list('l/')) listed.push(o);
  t.deepEqual(listed.map((o) => o.key), names);
  t.deepEqual(listed.map((o) => o.size), names.map((n) => n.length));
  t.true(s3.seen.slice(before).filter((r) => r.method === 'GET').length >= 3, 'five keys at two per page take three pages');
  t.deepEqual(await keys(st, 'l/x='), names.slice(0, 3));
  await st.delete('l/y');
  await st.delete('l/y'); // already gone: no error
  t.deepEqual(await keys(st, 'l/'), names.filter((n) => n !== 'l/y'));
  await t.throwsAsync(async () => {
    for await (const o of st.list('../escape')) t.fail(o.key);
  }, { message: /not a relative path/ });
  await t.throwsAsync(() => st.put('../escape', Buffer.from('x')), { message: /not a relative path/ });
});

test.serial('500, 503 and SlowDown are retried with backoff for PUT, part uploads, GET and LIST', async (t) => {
  const st = store();
  const key = 'r/data.parquet';
  s3.fail(on(s3.bucket, `out/${key}`, 'PUT'), 500, 'InternalError');
  s3.fail(on(s3.bucket, `out/${key}`, 'PUT'), 503, 'SlowDown');
  s3.fail(on(s3.bucket, `out/${key}`, 'PUT'), 503, 'ServiceUnavailable');
  const body = randomBytes(4096);
  await st.put(key, body);
  t.is(st.stats.retries, 3);
  t.deepEqual(s3.seen.filter((r) => r.path === `/${s3.bucket}/out/${key}` && r.method === 'PUT').map((r) => r.status), [500, 503, 503, 200]);

  s3.fail(on(s3.bucket, `out/${key}`, 'GET'), 500, 'InternalError', 2);
  t.true(Buffer.from((await st.get(key))!).equals(body));

  s3.fail((m, path, q) => m === 'GET' && path.replace(/\/$/, '') === `/${s3.bucket}` && q.has('list-type'), 503, 'SlowDown');
  t.deepEqual(await keys(st, 'r/'), [key]);

  const big = pattern(6 * MiB, 3);
  s3.fail(on(s3.bucket, 'out/r/big.bin', 'PUT', 'partNumber'), 500, 'InternalError');
  await st.put('r/big.bin', big);
  t.true(Buffer.from((await st.get('r/big.bin'))!).equals(big));
  t.is(st.stats.retries, 3 + 2 + 1 + 1);
  s3.clearFaults();
});

test.serial('past its attempts a PUT fails with one line naming the object, not the keys; the old object stays', async (t) => {
  const st = store();
  const key = 'f/data.parquet';
  const old = Buffer.from('the old, whole object');
  await st.put(key, old);
  s3.fail(on(s3.bucket, `out/${key}`, 'PUT'), 503, 'SlowDown', Infinity);
  const err = await t.throwsAsync(() => st.put(key, randomBytes(100)));
  s3.clearFaults();
  t.regex(err!.message, /could not write s3:\/\/etl-test\/out\/f\/data\.parquet: SlowDown: .* \(HTTP 503\) after 4 attempts/);
  t.false(err!.message.includes('S3RVER'));
  t.false(err!.message.includes('\n'));
  t.true(Buffer.from((await st.get(key))!).equals(old));
  // A 4xx other than throttling is not retried.
  s3.fail(on(s3.bucket, 'out/f/x', 'PUT'), 403, 'AccessDenied', Infinity);
  const requests = s3.seen.length;
  await t.throwsAsync(() => st.put('f/x', Buffer.from('x')), { message: /could not write .*AccessDenied.*HTTP 403\)$/ });
  s3.clearFaults();
  t.is(s3.seen.length - requests, 1);
});

test.serial('a multipart upload with a failing part is aborted: nothing new is visible, the old object stays whole', async (t) => {
  const st = store({ partConcurrency: 1 });
  const key = 'm/data.parquet';
  const old = pattern(1000, 1);
  await st.put(key, old);
  s3.fail((m, path, q) => m === 'PUT' && path === `/${s3.bucket}/out/${key}` && q.get('partNumber') === '2', 500, 'InternalError', Infinity);
  await t.throwsAsync(() => st.put(key, pattern(12 * MiB, 2)), { message: /could not upload part 2 of 3 of s3:\/\/etl-test\/out\/m\/data\.parquet/ });
  s3.clearFaults();
  const started = s3.seen.filter((r) => r.method === 'POST' && r.path === `/${s3.bucket}/out/${key}` && r.query.has('uploads'));
  t.is(started.length, 1);
  t.is(s3.aborted.length, 1, 'AbortMultipartUpload was sent (the proxy answers it as S3 does)');
  t.is(st.stats.aborted, 1);
  t.false(s3.seen.some((r) => r.method === 'POST' && r.path === `/${s3.bucket}/out/${key}` && r.query.has('uploadId')), 'never completed');
  t.true(Buffer.from((await st.get(key))!).equals(old));
  t.deepEqual(await keys(st, 'm/'), [key]);
});

/** Starts test/s3-upload-child.ts, waits until `ready()` says it is mid-upload, kills it with SIGKILL. */
async function killMidUpload(key: string, size: number, threshold: number, ready: () => boolean): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./s3-upload-child.ts', import.meta.url)), s3.bucket, key, String(size), String(threshold)], {
    env: { ...process.env, ...s3.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let ended = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => ((ended = true), resolve())));
  const deadline = Date.now() + 30_000;
  while (!ready()) {
    if (ended) throw new Error(`the upload child ended before it was killed: ${stderr}`);
    if (Date.now() > deadline) throw new Error('the upload never got going');
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGKILL');
  await exited;
}

test.serial('a single PUT killed mid-body leaves no object (S3 semantics given to s3rver by the proxy)', async (t) => {
  // This depends on S3's guarantee that a PUT is visible only when complete: s3rver alone would
  // keep the bytes it got. The proxy forwards a body only when it is whole (test/s3.ts). What
  // the test proves about our code: the object goes as one PUT, and nothing else names the key.
  const key = 'k/single.parquet';
  s3.stallAfter(on(s3.bucket, `out/${key}`, 'PUT'), 1 * MiB);
  const dropped = s3.dropped;
  let stalled = false;
  s3.events.once('stalled', () => (stalled = true));
  await killMidUpload(key, 15 * MiB, 16 * MiB, () => stalled); // more than the socket buffers hold
  s3.clearFaults();
  for (let i = 0; i < 100 && s3.dropped === dropped; i++) await new Promise((r) => setTimeout(r, 10));
  t.is(s3.dropped, dropped + 1);
  const st = store();
  t.is(await st.get(key), null);
  t.deepEqual(await keys(st, 'k/'), []);
});

test.serial('a multipart upload killed between parts leaves no object (no Complete was sent)', async (t) => {
  // Parts are invisible until CompleteMultipartUpload on s3rver as on S3: this holds without
  // the proxy's help. The parts stay until a lifecycle rule removes them (README).
  const key = 'k/multi.parquet';
  const path = `/${s3.bucket}/out/${key}`;
  await killMidUpload(key, 14 * MiB, 5 * MiB, () => s3.seen.some((r) => r.path === path && r.query.has('partNumber') && r.status === 200));
  s3.clearFaults();
  const st = store();
  t.is(await st.get(key), null);
  t.deepEqual(await keys(st, 'k/'), []);
  t.false(s3.seen.some((r) => r.path === `/${s3.bucket}/out/${key}` && r.method === 'POST' && r.query.has('uploadId')));
});

test.serial('merge by id against the bucket: read the existing file, merge, replace it whole', async (t) => {
  const staging = new Staging(join(work, 'staging'), 64 * MiB);
  const st = store({ staging });
  const specs = COLUMNS.activities;
  const format = fileFormat('parquet', 'snappy', 'fast', 1_000_000);
  const key = 'activities/date=2026-01-02/user=u1/data.parquet';
  const row = (id: string, start: number, calories: number | null, updatedAt: number): Row => ({
    id, humanId: 'u1', userId: 'U1', source: 'fitbit', type: 'walking', startTime: start, endTime: start + 60_000, tzOffset: '+00:00',
    timeZone: null, duration: 60, distance: null, steps: 100, calories, pace: null, speed: null, sourceData: '{}', createdAt: 1_000, updatedAt,
  });
  const t0 = Date.UTC(2026, 0, 2, 8);
  const first = [row('a1', t0, 10, 1_000), row('a2', t0 + 1, 20, 1_000), row('a3', t0 + 2, null, 1_000)];
  const encode = (rows: Row[]) => format.encode(specs, toColumns(specs, sortRows('activities', rows)), { keyValueMetadata: [], sortedBy: ['startTime'] });
  await st.put(key, await encode(first));

  const incoming = [row('a2', t0 + 1, 25, 2_000), row('a4', t0 + 3, 40, 2_000), row('a3', t0 + 2, 99, 500)];
  // As the sink's write seam does it (sinks/storage.ts: read, then commit whole).
  const existing = await format.read((await st.get(key))!, specs, key);
  await st.put(key, await encode(mergeById(specs, existing, incoming)));

  // A reader that needs a file gets a staged download, removed when released.
  const copy = await st.open(key);
  t.true((await readFile(copy!.path)).equals(Buffer.from((await st.get(key))!)));
  t.true(staging.peakBytes > 0);
  await copy!.release();
  t.deepEqual(await readdir(join(work, 'staging')), [], 'the staged download is removed');

  const local = join(work, 'merged.parquet');
  await writeFile(local, (await st.get(key))!);
  const rows = await query(`SELECT id, calories, epoch_ms(updatedAt)::INTEGER AS updated FROM read_parquet('${local}') ORDER BY id`);
  t.deepEqual(rows, [
    { id: 'a1', calories: 10, updated: 1_000 },
    { id: 'a2', calories: 25, updated: 2_000 }, // newer updatedAt wins
    { id: 'a3', calories: null, updated: 1_000 }, // an older version does not replace
    { id: 'a4', calories: 40, updated: 2_000 },
  ]);
  t.is(await st.open('activities/date=2026-01-02/user=nobody/data.parquet'), null);
});

test.serial('staging waits for room: downloads never hold more than the cap at once', async (t) => {
  const staging = new Staging(join(work, 'cap'), 10);
  const a = await staging.reserve(6, 'a');
  let bGot = false;
  const b = staging.reserve(6, 'b').then((f) => {
    bGot = true;
    return f;
  });
  await new Promise((r) => setTimeout(r, 20));
  t.false(bGot);
  await a.release();
  await (await b).release();
  t.true(bGot);
  t.is(staging.peakBytes, 6);
  // A file larger than the cap goes alone.
  const huge = await staging.reserve(50, 'huge');
  t.is(staging.peakBytes, 50);
  await huge.release();
});
