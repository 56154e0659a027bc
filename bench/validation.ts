// What validating raw API records costs, per record, on the real raw shapes: valibot (the
// sources' schemas, as they run) against the same schemas written in zod, and, for intraday
// points, the hand-written check the source uses. `npx tsx bench/validation.ts`; writes
// bench/results/validation.json. The intraday rows also give each check's cost as a share of
// normalizeIntradayColumns on the same days (the 10 % budget of issue #14).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as v from 'valibot';
import { z } from 'zod';
import { NUMERIC_TEXT } from '../lib/validate.js';
import { checkIntradayPoints } from '../sources/fitbit/index.js';
import { activitySchema as fitbitActivity, intradayPointSchema, type FitbitUserContext, type IntradayDay } from '../sources/fitbit/types.js';
import { activitySchema as humanActivity, readingSchema as humanReading } from '../sources/humanapi/types.js';
import { normalizeIntradayColumns } from '../transforms/intraday.js';

const SHARED = fileURLToPath(new URL('../../shared/data/', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/data/', import.meta.url));

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8').replace(/^\uFEFF/, ''));
}

/** Field of a JSON object, for reading the sample files (not API data in the pipeline). */
function field(o: unknown, key: string): unknown {
  return typeof o === 'object' && o !== null && key in o ? (o as Record<string, unknown>)[key] : undefined;
}

function array(x: unknown): unknown[] {
  if (!Array.isArray(x)) throw new Error('sample is not an array');
  return x;
}

// ---------------------------------------------------------------- the same schemas in zod

const zNumberish = z.union([z.number(), z.string().regex(NUMERIC_TEXT).transform(Number)]);
const zAbsentOr = <S extends z.ZodType>(schema: S) => z.union([schema, z.union([z.undefined(), z.null(), z.literal('')]).transform(() => undefined)]).optional();
const zNonNegative = zNumberish.pipe(z.number().min(0));
const zCount = zNumberish.pipe(z.number().int().min(0));
const zNonBlank = z.string().refine((s) => s.trim() !== '');
const UNITS = new Set(['kilometer', 'kilometers', 'kilometre', 'kilometres', 'km', 'mile', 'miles', 'mi', 'meter', 'meters', 'metre', 'metres', 'm', 'yard', 'yards', 'yd', 'steps', 'step']);

const zFitbitActivity = z.looseObject({
  logId: z.string().regex(/^\d{1,20}$/).refine((s) => BigInt(s) <= 0xffff_ffff_ffff_ffffn).transform((s) => BigInt(s).toString()),
  activityName: zAbsentOr(z.string()),
  activityTypeId: zAbsentOr(z.number()),
  startTime: z.string().min(1),
  duration: zNonNegative,
  activeDuration: zAbsentOr(zNonNegative),
  distance: zAbsentOr(zNumberish),
  distanceUnit: zAbsentOr(z.string().refine((s) => UNITS.has(s.trim().toLowerCase()))),
  steps: zAbsentOr(zCount),
  calories: zAbsentOr(zNumberish),
  elevationGain: zAbsentOr(zNumberish),
  lastModified: zAbsentOr(z.string()),
});

const zCommon = {
  id: zNonBlank,
  humanId: zNonBlank,
  userId: zAbsentOr(z.string()),
  source: zAbsentOr(z.string()),
  createdAt: zAbsentOr(z.string()),
  updatedAt: zAbsentOr(z.string()),
  sourceData: z.unknown().optional(),
};
const zHumanActivity = z.looseObject({
  ...zCommon,
  startTime: z.string().min(1),
  endTime: zAbsentOr(z.string()),
  tzOffset: zAbsentOr(z.string()),
  timeZone: zAbsentOr(z.string()),
  type: zAbsentOr(z.string()),
  duration: zAbsentOr(zNumberish),
  distance: zAbsentOr(zNumberish),
  steps: zAbsentOr(zCount),
  calories: zAbsentOr(zNumberish),
});
const zHumanReading = z.looseObject({ ...zCommon, timestamp: z.string().min(1), tzOffset: zAbsentOr(z.string()), unit: zAbsentOr(z.string()), value: zAbsentOr(zNumberish) });
const zPoint = z.looseObject({ time: z.string(), value: zNumberish, level: zAbsentOr(z.number()), mets: zAbsentOr(z.number()) });

// ---------------------------------------------------------------- the real records

function fitbitActivities(): unknown[] {
  const page = (name: string): unknown[] =>
    array(field(JSON.parse(readFileSync(`${SHARED}fitbit-api-samples/${name}`, 'utf8').replace(/^\uFEFF/, '').replace(/"logId"\s*:\s*(\d+)/g, '"logId":"$1"')), 'activities'));
  return [...page('GetActivityLogsList.json'), ...page('GetActivityLogsList2.json')];
}

/** The JSON bodies of a VCR cassette (single-quoted YAML scalars, one line each). */
function cassetteRecords(file: string): unknown[] {
  const out: unknown[] = [];
  for (const line of readFileSync(`${SHARED}humanapi-samples/${file}`, 'utf8').split('\n')) {
    const m = /^\s+string: '(.*)'$/.exec(line);
    if (m && m[1] !== '') out.push(...array(JSON.parse(m[1]!.replace(/''/g, "'"))));
  }
  return out;
}

function humanReadings(): unknown[] {
  // The fixture's heart rates carry the batch humanId (the demo files have none).
  return array(readJson(`${FIXTURES}humanapi/heart_rates.json`));
}

/** Real intraday days: the steps (1,084 points) and calories (1,440, with level and mets) samples. */
function intradayDatasets(): Array<{ resource: 'steps' | 'calories'; dataset: unknown[] }> {
  const steps = array(field(field(readJson(`${FIXTURES}fitbit/IntradayActivitiesSteps.json`), 'activities-steps-intraday'), 'dataset'));
  const calories = array(field(field(readJson(`${FIXTURES}fitbit/IntradayActivitiesCalories.json`), 'activities-calories-intraday'), 'dataset'));
  return [{ resource: 'steps', dataset: steps }, { resource: 'calories', dataset: calories }];
}

// ---------------------------------------------------------------- measuring

/** Best ns per record over `runs` passes of `records` repeated to about `target` records. */
function nsPerRecord(records: readonly unknown[], check: (raw: unknown) => boolean, target = 20_000, runs = 5): number {
  const reps = Math.max(1, Math.ceil(target / records.length));
  const pass = (): number => {
    const t0 = performance.now();
    let ok = 0;
    for (let r = 0; r < reps; r++) for (let i = 0; i < records.length; i++) if (check(records[i])) ok++;
    const ms = performance.now() - t0;
    if (ok !== reps * records.length) throw new Error(`a real record failed validation (${ok} of ${reps * records.length})`);
    return (ms * 1e6) / (reps * records.length);
  };
  pass();
  pass();
  return Math.min(...Array.from({ length: runs }, pass));
}

/** Best ns per point for a whole-day operation over the days repeated to about `target` points. */
function nsPerPoint(days: readonly unknown[][], run: (dataset: unknown[], i: number) => void, target = 200_000, runs = 5): number {
  const points = days.reduce((n, d) => n + d.length, 0);
  const reps = Math.max(1, Math.ceil(target / points));
  const pass = (): number => {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) days.forEach(run);
    return ((performance.now() - t0) * 1e6) / (reps * points);
  };
  pass();
  pass();
  return Math.min(...Array.from({ length: runs }, pass));
}

export interface ValidationRow {
  shape: string;
  records: number;
  'valibot ns': number;
  'zod ns': number;
  'zod/valibot': number;
  'hand ns'?: number;
  'normalizer ns'?: number;
  'valibot % of normalizer'?: number;
  'zod % of normalizer'?: number;
  'hand % of normalizer'?: number;
}

const round = (x: number, digits = 0): number => Number(x.toFixed(digits));

export function runValidationBench(): { rows: ValidationRow[]; loadAverage: { atStart: number; atEnd: number } } {
  const atStart = round(loadavg()[0]!, 2);
  const rows: ValidationRow[] = [];
  const record = (shape: string, records: unknown[], valibot: v.GenericSchema, zod: z.ZodType): void => {
    const vb = nsPerRecord(records, (raw) => v.safeParse(valibot, raw, { abortEarly: true }).success);
    const zd = nsPerRecord(records, (raw) => zod.safeParse(raw).success);
    rows.push({ shape, records: records.length, 'valibot ns': round(vb), 'zod ns': round(zd), 'zod/valibot': round(zd / vb, 2) });
  };
  record('Fitbit activity log record', fitbitActivities(), fitbitActivity, zFitbitActivity);
  record('Human API activity', cassetteRecords('recorded-pagination/get_activities_fetch_all.yml'), humanActivity, zHumanActivity);
  record('Human API reading (heart rate)', humanReadings(), humanReading, zHumanReading);

  // Intraday: per point, whole days, against the normalizer on the same days.
  const samples = intradayDatasets();
  const datasets = samples.map((s) => s.dataset);
  const user: FitbitUserContext = { userId: 'BENCH', humanId: 'bench', timeZone: 'America/Los_Angeles', profileUnits: 'metric', profile: { timezone: 'America/Los_Angeles', offsetFromUTCMillis: 0 } };
  const days: IntradayDay[] = samples.map((s) => {
    const { points } = checkIntradayPoints(s.dataset);
    return { resource: s.resource, date: '2016-07-01', detail: '1min', datasetInterval: 1, datasetType: 'minute', dataset: points, units: 'metric' };
  });
  const vbDay = v.array(intradayPointSchema);
  const zdDay = z.array(zPoint);
  let sink = 0;
  const vb = nsPerPoint(datasets, (d) => {
    if (!v.safeParse(vbDay, d, { abortEarly: true }).success) throw new Error('a real point failed');
  });
  const zd = nsPerPoint(datasets, (d) => {
    if (!zdDay.safeParse(d).success) throw new Error('a real point failed');
  });
  const hand = nsPerPoint(datasets, (d) => {
    const { points, rejected } = checkIntradayPoints(d);
    if (rejected.length > 0) throw new Error('a real point failed');
    sink += points.length;
  });
  const norm = nsPerPoint(datasets, (_d, i) => {
    const { columns } = normalizeIntradayColumns(days[i]!, user, 0);
    sink += columns?.table.rowCount ?? 0;
  });
  if (sink === 0) throw new Error('nothing was normalized');
  const points = datasets.reduce((n, d) => n + d.length, 0);
  rows.push({
    shape: 'Fitbit intraday point (real steps + calories days)',
    records: points,
    'valibot ns': round(vb, 1),
    'zod ns': round(zd, 1),
    'zod/valibot': round(zd / vb, 2),
    'hand ns': round(hand, 1),
    'normalizer ns': round(norm, 1),
    'valibot % of normalizer': round((100 * vb) / norm, 1),
    'zod % of normalizer': round((100 * zd) / norm, 1),
    'hand % of normalizer': round((100 * hand) / norm, 1),
  });
  return { rows, loadAverage: { atStart, atEnd: round(loadavg()[0]!, 2) } };
}

function main(): void {
  const result = runValidationBench();
  console.log(`validation: ns per record, best of 5 passes (load average ${result.loadAverage.atStart} → ${result.loadAverage.atEnd})`);
  console.table(result.rows);
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const out = { benchmark: 'validation', date: new Date().toISOString().slice(0, 10), node: process.version, valibot: '1.5.0', zod: '4.6.7', ...result };
  writeFileSync(`${dir}validation.json`, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`  written: ${dir}validation.json`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
