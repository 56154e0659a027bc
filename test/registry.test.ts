// The pipeline registry is the one place a pipeline is declared: help, option checks,
// `run all`, the dry run and the demo come from it. These tests fail when an entry is
// incomplete or when a piece of the CLI stops being derived from the list.
import test from 'ava';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DATASETS } from '../lib/schema.js';
import { EtlError } from '../lib/errors.js';
import { ENV_HELP, PIPELINE_FLAGS } from '../pipelines/config.js';
import { demoHelp } from '../pipelines/demo.js';
import { choosePipelines, parseRunArgs, PIPELINES, planRun, runHelp } from '../pipelines/registry.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function usersFile(t: { teardown(fn: () => Promise<void>): void }, entries: unknown[]): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-registry-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'users.json');
  await fs.writeFile(file, JSON.stringify(entries));
  return file;
}

const FITBIT_USER = { userId: 'AAA111', humanId: 'h-a', accessToken: 'at', refreshToken: 'rt' };

test('every registered pipeline is complete: name, summary, datasets, flags, check, plan, run', (t) => {
  const names = new Set<string>();
  for (const p of PIPELINES) {
    t.regex(p.name, /^[a-z][a-z0-9-]+$/, 'a name to type');
    t.false(names.has(p.name), `${p.name} is registered once`);
    names.add(p.name);
    t.true(p.summary.trim().length > 10, `${p.name} has a help line`);
    t.true(p.datasets.length > 0, `${p.name} writes at least one dataset`);
    for (const d of p.datasets) t.true(DATASETS.includes(d), `${p.name}: ${d} is a dataset`);
    for (const f of p.flags) t.true((PIPELINE_FLAGS as readonly string[]).includes(f), `${p.name}: --${f} is a run option`);
    t.is(typeof p.check, 'function');
    t.is(typeof p.plan, 'function');
    t.is(typeof p.run, 'function');
  }
});

test('help is made from the registry: every pipeline, every option, every environment variable the code reads', (t) => {
  const help = runHelp();
  for (const p of PIPELINES) {
    t.true(help.includes(p.name), p.name);
    t.true(help.includes(p.summary), `${p.name}'s summary`);
  }
  for (const f of PIPELINE_FLAGS) t.regex(help, new RegExp(`--${f}\\b`));
  // Every variable read from the environment anywhere in the product is in the help.
  const read = new Set<string>();
  for (const dir of ['lib', 'sources', 'transforms', 'sinks', 'pipelines']) {
    for (const file of readdirDeep(path.join(root, dir))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/env(?:\.|\[')([A-Z][A-Z0-9_]{3,})/g)) read.add(m[1] as string);
    }
  }
  t.true(read.size >= 6, `found the environment reads (${[...read].join(', ')})`);
  const listed = ENV_HELP.map(([names]) => names).join(' ');
  for (const name of read) {
    if (name === 'WEARABLE_ETL_DEBUG') continue; // a developer switch (stack traces), documented in the README
    t.true(listed.includes(name), `${name} is in the help`);
  }
  const demo = demoHelp();
  for (const p of PIPELINES.filter((d) => d.demo)) t.true(demo.includes(p.name), `demo help names ${p.name}`);
});

function readdirDeep(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return readdirDeep(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

test('a named pipeline that misses what it needs is a usage error naming it; `all` skips it and says why', async (t) => {
  const none = t.throws(() => parseRunArgs(['fitbit-intraday'], {}), { instanceOf: EtlError });
  t.is(none?.code, 'USAGE');
  t.regex(none?.message ?? '', /^fitbit-intraday: needs --users FILE/);

  const file = await usersFile(t, [FITBIT_USER]);
  const all = parseRunArgs(['all', '--users', file], {});
  t.deepEqual(all?.pipelines, PIPELINES.filter((p) => p.check({ ...(all as NonNullable<typeof all>) }) === null).map((p) => p.name));
  t.true(all?.pipelines.includes('fitbit-intraday'));
  t.false(all?.pipelines.includes('humanapi'), 'no Human API credentials');
  t.regex(all?.skipped.find((s) => s.pipeline === 'humanapi')?.reason ?? '', /HUMANAPI_CLIENT_ID/);

  const nothing = t.throws(() => parseRunArgs(['all'], {}), { instanceOf: EtlError });
  t.regex(nothing?.message ?? '', /nothing is configured for `run all`: fitbit-intraday: needs --users/);
});

test('an option the named pipeline does not read is a usage error; bad values are checked by the pipeline that reads them', async (t) => {
  const file = await usersFile(t, [FITBIT_USER]);
  const types = t.throws(() => parseRunArgs(['fitbit-intraday', '--users', file, '--types', 'activities'], {}), { instanceOf: EtlError });
  t.regex(types?.message ?? '', /^--types is not read by fitbit-intraday \(it is read by humanapi\)/);
  const resource = t.throws(() => parseRunArgs(['fitbit-intraday', '--users', file, '--resources', 'steps,naps'], {}), { instanceOf: EtlError });
  t.regex(resource?.message ?? '', /^fitbit-intraday: unknown intraday resource "naps"/);
  const detail = t.throws(() => parseRunArgs(['fitbit-intraday', '--users', file, '--detail', '2min'], {}), { instanceOf: EtlError });
  t.regex(detail?.message ?? '', /--detail must be one of 1min, 5min, 15min/);
  const humanTypes = t.throws(() => parseRunArgs(['humanapi', '--types', 'sleep_naps'], { HUMANAPI_CLIENT_ID: 'c', HUMANAPI_APP_KEY: 'k' }), { instanceOf: EtlError });
  t.regex(humanTypes?.message ?? '', /^humanapi: --types: Human API batch type "sleep_naps"/);
});

test('one users file for every provider: an unknown provider is a usage error; a file without Fitbit users does not run Fitbit', async (t) => {
  const unknown = await usersFile(t, [FITBIT_USER, { provider: 'garmin', humanId: 'g' }]);
  const err = t.throws(() => parseRunArgs(['fitbit-intraday', '--users', unknown], {}), { instanceOf: EtlError });
  t.regex(err?.message ?? '', /unknown provider "garmin"/);

  const other = await usersFile(t, [{ provider: 'humanapi', humanId: 'x' }]);
  const r = choosePipelines('all', { ...(parseRunArgs(['all', '--users', other], { HUMANAPI_CLIENT_ID: 'c', HUMANAPI_APP_KEY: 'k' }) as NonNullable<ReturnType<typeof parseRunArgs>>) });
  t.false(r.run.some((p) => p.provider === 'fitbit'));
  t.regex(r.skipped.find((s) => s.pipeline === 'fitbit-intraday')?.reason ?? '', /has no Fitbit users/);
});

test('the dry run is every chosen pipeline\'s own plan and touches nothing', async (t) => {
  const file = await usersFile(t, [FITBIT_USER]);
  const out = path.join(path.dirname(file), 'out');
  const config = parseRunArgs(['all', '--users', file, '--out', out, '--until', '2016-04-20'], { HUMANAPI_CLIENT_ID: 'c', HUMANAPI_APP_KEY: 'k' });
  const text = await planRun(config as NonNullable<typeof config>, Date.parse('2016-04-21T12:00:00Z'));
  for (const p of config?.pipelines ?? []) t.regex(text, new RegExp(`^${p}: `, 'm'));
  t.regex(text, /fitbit-intraday: user h-a: 2016-04-14 \.\. 2016-04-20 × steps,calories,distance \(1min\), 22 request\(s\)/);
  await t.throwsAsync(fs.access(out), undefined, 'nothing written');
});
