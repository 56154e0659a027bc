// The output root's local back end (sinks/object-store/local.ts) and `--out` parsing (url.ts).
import test from 'ava';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalStore, parseOutTarget } from '../sinks/object-store/index.js';
import { parseRunOptions } from '../pipelines/config.js';

test('local store: put writes whole files via _tmp, get/list/delete, staged files are moved', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'local-store-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const st = new LocalStore(root);
  await st.put('intraday/date=2026-01-02/user=u1/data.parquet', Buffer.from('one'));
  await st.put('intraday/date=2026-01-01/user=u2/data.parquet', [Buffer.from('t'), Buffer.from('wo')]);
  await st.put('intraday/_manifest.json', Buffer.from('{}'));
  const staged = join(root, 'staged.bin');
  await writeFile(staged, 'three');
  await st.put('intraday-x/file', { file: staged });
  t.false((await readdir(root)).includes('staged.bin'));
  t.is(await readFile(join(root, 'intraday', 'date=2026-01-02', 'user=u1', 'data.parquet'), 'utf8'), 'one');
  t.is(Buffer.from((await st.get('intraday/date=2026-01-01/user=u2/data.parquet'))!).toString(), 'two');
  t.is(await st.get('intraday/nothing'), null);

  const listed: string[] = [];
  for await (const o of st.list('intraday')) listed.push(`${o.key}:${o.size}`);
  // S3's order: by key, "/" compared as a character ('-' < '/' < '_').
  t.deepEqual(listed, ['intraday-x/file:5', 'intraday/_manifest.json:2', 'intraday/date=2026-01-01/user=u2/data.parquet:3', 'intraday/date=2026-01-02/user=u1/data.parquet:3']);
  const all: string[] = [];
  for await (const o of st.list('')) all.push(o.key);
  t.false(all.some((k) => k.startsWith('_tmp')), 'temporary files are never listed');

  const copy = await st.open('intraday/_manifest.json');
  t.is(await readFile(copy!.path, 'utf8'), '{}');
  await st.delete('intraday/_manifest.json');
  await st.delete('intraday/_manifest.json');
  t.is(await st.open('intraday/_manifest.json'), null);
  for (const bad of ['../x', '/abs', 'a//b', 'a/./b', 'a\\b', '']) {
    await t.throwsAsync(() => st.put(bad, Buffer.from('x')), { message: /not a relative path/ }, bad);
  }
});

test('--out: folders, file:// and s3://bucket/prefix; other schemes are usage errors', (t) => {
  t.deepEqual(parseOutTarget('out', '/home/me'), { kind: 'folder', dir: '/home/me/out' });
  t.deepEqual(parseOutTarget('/data/out', '/x'), { kind: 'folder', dir: '/data/out' });
  t.deepEqual(parseOutTarget('file:///data/my%20out', '/x'), { kind: 'folder', dir: '/data/my out' });
  t.deepEqual(parseOutTarget('s3://my-bucket'), { kind: 's3', bucket: 'my-bucket', prefix: '' });
  t.deepEqual(parseOutTarget('s3://my-bucket/'), { kind: 's3', bucket: 'my-bucket', prefix: '' });
  t.deepEqual(parseOutTarget('s3://my.bucket/etl/fitbit/'), { kind: 's3', bucket: 'my.bucket', prefix: 'etl/fitbit' });
  t.deepEqual(parseOutTarget('S3://b12/p'), { kind: 's3', bucket: 'b12', prefix: 'p' });
  for (const [value, message] of [
    ['gs://bucket/x', /scheme gs:\/\/ is not supported/],
    ['https://example.com/out', /scheme https:\/\/ is not supported/],
    ['s3://Bad_Bucket/x', /not an S3 bucket name/],
    ['s3://ab', /not an S3 bucket name/],
    ['s3://bucket/a/../b', /must not hold empty/],
    ['s3://bucket/a//b', /must not hold empty/],
    ['s3:bucket', /write s3:\/\/bucket\/prefix/],
  ] as const) {
    const err = t.throws(() => parseOutTarget(value), undefined, value);
    t.regex(err!.message, message, value);
    t.is((err as { code?: string }).code, 'USAGE');
  }
});

test('run: --out s3:// names the bucket (never a folder named s3:) and needs --state; --state takes a file or postgres://', (t) => {
  const parse = (args: string[], env: NodeJS.ProcessEnv = {}) => parseRunOptions(['fitbit-intraday', ...args], env, '/w');
  t.is(parse(['--out', 'o', '--state', 's.json'])!.config.outDir, '/w/o');
  t.is(parse(['--out', 'o', '--state', 's.json'])!.config.stateFile, '/w/s.json');
  t.is(parse(['--out', 's3://bucket/a/prefix/', '--state', 's.json'])!.config.outDir, 's3://bucket/a/prefix');
  t.is(parse(['--out', 's3://bucket', '--state', 's.json'])!.config.outDir, 's3://bucket');
  t.is(parse(['--out', 's3://bucket', '--state', 'postgres://etl@db/etl'])!.config.stateUrl, 'postgres://etl@db/etl');
  t.is(parse(['--out', 'o'], { WEARABLE_ETL_STATE_URL: 'postgres://etl@db/etl' })!.config.stateUrl, 'postgres://etl@db/etl');
  for (const [args, env, message] of [
    [['--out', 's3://bucket/prefix'], {}, /^--out s3:\/\/bucket\/prefix needs --state FILE or --state postgres:\/\/… \(a bucket holds no state files\)$/],
    [['--out', 's3://bucket/prefix', '--state', 's.json', '--report'], {}, /--report reads a local folder/],
    [['--out', 'gs://bucket/prefix'], {}, /scheme gs:\/\/ is not supported/],
    [['--state', 'redis://db'], {}, /scheme redis:\/\/ is not supported/],
  ] as const) {
    const err = t.throws(() => parse([...args], env));
    t.regex(err!.message, message);
    t.is((err as { code?: string }).code, 'USAGE');
  }
});
