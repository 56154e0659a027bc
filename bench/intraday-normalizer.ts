// Micro-benchmark of normalizeIntradayColumns, the hot path: `npx tsx bench/intraday-normalizer.ts`.
// Normalizes ~2M generated 1-minute points (whole days in America/Los_Angeles, DST days
// included) and, in the same run as the anchor, converts a sample of the same points the naive
// way: one luxon DateTime per point. Prints points/s and the ratio, and writes
// bench/results/intraday-normalizer.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DateTime } from 'luxon';
import { normalizeIntradayColumns, parseTimeOfDay } from '../transforms/intraday.js';
import type { NumberColumn } from '../sinks/columns.js';
import { buildDayHourTable } from '../transforms/time.js';
import type { FitbitUserContext, IntradayDay, IntradayPoint } from '../sources/fitbit/types.js';

const ZONE = 'America/Los_Angeles';
const SEEN_AT = Date.UTC(2024, 0, 1);

export interface IntradayBenchResult {
  benchmark: 'intraday-normalizer';
  node: string;
  zone: string;
  days: number;
  transitionDays: number;
  points: number;
  runs: number;
  normalizer: { bestSeconds: number; medianSeconds: number; pointsPerSecond: number; nsPerPoint: number };
  /** The time conversion alone (hour table per day + char-code parse + delta), no records. */
  conversionOnly: { bestSeconds: number; pointsPerSecond: number; nsPerPoint: number };
  naiveLuxon: { points: number; seconds: number; pointsPerSecond: number; nsPerPoint: number };
  /** normalizeIntradayColumns points/s ÷ naive luxon points/s. */
  ratio: number;
  checksum: number;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function makeDays(count: number): IntradayDay[] {
  const times: string[] = [];
  for (let m = 0; m < 1440; m++) times.push(`${pad(Math.floor(m / 60))}:${pad(m % 60)}:00`);
  const days: IntradayDay[] = [];
  const start = Date.UTC(2016, 0, 1);
  for (let d = 0; d < count; d++) {
    const date = new Date(start + d * 86_400_000).toISOString().slice(0, 10);
    const dataset: IntradayPoint[] = times.map((time, i) => ({ time, value: (i * 7 + d) % 113 }));
    days.push({ resource: 'steps', date, detail: '1min', datasetInterval: 1, datasetType: 'minute', dataset, units: 'metric' });
  }
  return days;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function runIntradayBench(totalPoints = 2_000_000, runs = 3, naivePoints = 50_000): IntradayBenchResult {
  const dayCount = Math.ceil(totalPoints / 1440);
  const days = makeDays(dayCount);
  const points = dayCount * 1440;
  const transitionDays = days.filter((d) => buildDayHourTable(ZONE, d.date)!.hasTransition).length;
  const user: FitbitUserContext = { userId: 'BENCH1', humanId: 'bench', timeZone: ZONE, profileUnits: 'metric', profile: { timezone: ZONE, offsetFromUTCMillis: 0 } };

  let checksum = 0;
  const pass = (): number => {
    const t0 = performance.now();
    for (const day of days) {
      const { columns, deadLetters } = normalizeIntradayColumns(day, user, SEEN_AT);
      if (deadLetters.length !== 0 || columns === null) throw new Error(`unexpected dead letters on ${day.date}`);
      // Touch the output so that nothing is optimised away.
      const timestamps = (columns.table.columns[5] as NumberColumn).values;
      checksum = (checksum + columns.table.rowCount + timestamps[columns.table.rowCount - 1]! / 1000) % 1e9;
    }
    return (performance.now() - t0) / 1000;
  };
  pass(); // warm-up (JIT, luxon's formatter cache)
  const seconds: number[] = [];
  for (let i = 0; i < runs; i++) seconds.push(pass());
  const best = Math.min(...seconds);

  // The conversion alone, as the normalizer does it for uniform hours.
  const convert = (): number => {
    const t0 = performance.now();
    let sum = 0;
    for (const day of days) {
      const table = buildDayHourTable(ZONE, day.date)!;
      for (const p of day.dataset) {
        const sec = parseTimeOfDay(p.time);
        const hour = (sec / 3600) | 0;
        sum += table.wallMidnightMs + sec * 1000 - table.deltaMs[hour]! + table.tzOffset[hour]!.length;
      }
    }
    checksum = (checksum + sum / 1e12) % 1e9;
    return (performance.now() - t0) / 1000;
  };
  convert();
  const conversionSeconds = Math.min(convert(), convert(), convert());

  // Anchor: a luxon DateTime per point, and its offset text, over a sample of the same days.
  const sampleDays = days.slice(0, Math.ceil(naivePoints / 1440));
  const warm = (limit: number): number => {
    let n = 0;
    let sink = 0;
    const t0 = performance.now();
    outer: for (const day of sampleDays) {
      const [year, month, dayOfMonth] = day.date.split('-').map(Number) as [number, number, number];
      for (const p of day.dataset) {
        const [hour, minute, second] = p.time.split(':').map(Number) as [number, number, number];
        const dt = DateTime.fromObject({ year, month, day: dayOfMonth, hour, minute, second }, { zone: ZONE });
        sink += dt.toMillis() + dt.toFormat('ZZ').length;
        if (++n >= limit) break outer;
      }
    }
    checksum = (checksum + sink / 1e6) % 1e9;
    return (performance.now() - t0) / 1000;
  };
  warm(5_000);
  const naiveSeconds = warm(naivePoints);
  const naiveCount = Math.min(naivePoints, sampleDays.length * 1440);

  const pointsPerSecond = points / best;
  const naivePerSecond = naiveCount / naiveSeconds;
  return {
    benchmark: 'intraday-normalizer',
    node: process.version,
    zone: ZONE,
    days: dayCount,
    transitionDays,
    points,
    runs,
    normalizer: { bestSeconds: best, medianSeconds: median(seconds), pointsPerSecond, nsPerPoint: (best * 1e9) / points },
    conversionOnly: { bestSeconds: conversionSeconds, pointsPerSecond: points / conversionSeconds, nsPerPoint: (conversionSeconds * 1e9) / points },
    naiveLuxon: { points: naiveCount, seconds: naiveSeconds, pointsPerSecond: naivePerSecond, nsPerPoint: (naiveSeconds * 1e9) / naiveCount },
    ratio: pointsPerSecond / naivePerSecond,
    checksum,
  };
}

function main(): void {
  const result = runIntradayBench();
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  console.log(`intraday normalizer: ${fmt(result.points)} points (${result.days} days in ${result.zone}, ${result.transitionDays} DST days)`);
  console.log(`  normalizeIntradayColumns: ${fmt(result.normalizer.pointsPerSecond)} points/s (best of ${result.runs}: ${result.normalizer.bestSeconds.toFixed(3)} s, ${result.normalizer.nsPerPoint.toFixed(0)} ns/point; median ${result.normalizer.medianSeconds.toFixed(3)} s)`);
  console.log(`  conversion only (hour table + char-code parse): ${fmt(result.conversionOnly.pointsPerSecond)} points/s (${result.conversionOnly.nsPerPoint.toFixed(1)} ns/point)`);
  console.log(`  naive luxon per point: ${fmt(result.naiveLuxon.pointsPerSecond)} points/s (${fmt(result.naiveLuxon.points)} points, ${result.naiveLuxon.nsPerPoint.toFixed(0)} ns/point)`);
  console.log(`  ratio: ${result.ratio.toFixed(1)}×`);
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}intraday-normalizer.json`, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`  written: ${dir}intraday-normalizer.json`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
