// Which JSON parser for response bodies? JSON.parse over the whole body (the anchor) against
// stream-json (parser + StreamArray / Assembler) on real-shaped bodies of the sizes the APIs
// send: an intraday day (1,440 points), an activity-list page (100 records), a Human API batch
// page (500 records). Run: npx tsx bench/json-parse.ts
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import StreamJson from 'stream-json';
import StreamArray from 'stream-json/streamers/StreamArray.js';
import Pick from 'stream-json/filters/Pick.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = path.resolve(root, '..', 'shared', 'data');

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
}

function intradayBody(): string {
  const sample = readJson(path.join(shared, 'fitbit-api-samples', 'IntradayActivitiesCalories.json')) as Record<string, unknown>;
  return JSON.stringify(sample);
}

function activityPageBody(): string {
  const page = readJson(path.join(shared, 'fitbit-api-samples', 'GetActivityLogsList2.json')) as { activities: unknown[]; pagination: unknown };
  const activities = Array.from({ length: 100 }, (_, i) => page.activities[i % page.activities.length]);
  return JSON.stringify({ activities, pagination: page.pagination });
}

function humanPageBody(): string {
  const text = readFileSync(path.join(root, 'fixtures', 'data', 'humanapi', 'activities.json'), 'utf8');
  const records = JSON.parse(text) as unknown[];
  return JSON.stringify(Array.from({ length: 500 }, (_, i) => records[i % records.length]));
}

function timeSync(fn: () => void, minMs = 400): number {
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < minMs) {
    fn();
    n++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return elapsed / n;
}

async function timeAsync(fn: () => Promise<void>, minMs = 400): Promise<number> {
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < minMs) {
    await fn();
    n++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return elapsed / n;
}

async function streamArrayCount(body: string, pick?: string): Promise<number> {
  let count = 0;
  const source = Readable.from([Buffer.from(body)]);
  const parser = StreamJson.parser();
  const stages = pick ? source.pipe(parser).pipe(Pick.pick({ filter: pick })).pipe(StreamArray.streamArray()) : source.pipe(parser).pipe(StreamArray.streamArray());
  for await (const item of stages) {
    if (item) count++;
  }
  return count;
}

const cases = [
  { name: 'intraday day (1,440 points)', body: intradayBody(), pick: 'activities-calories-intraday.dataset' },
  { name: 'activity list page (100)', body: activityPageBody(), pick: 'activities' },
  { name: 'Human API page (500)', body: humanPageBody(), pick: undefined },
];

const results = [];
for (const c of cases) {
  const bytes = Buffer.byteLength(c.body);
  const parseMs = timeSync(() => {
    JSON.parse(c.body);
  });
  const streamMs = await timeAsync(async () => {
    await streamArrayCount(c.body, c.pick);
  });
  results.push({ case: c.name, bytes, jsonParseMs: +parseMs.toFixed(3), streamJsonMs: +streamMs.toFixed(3), streamJsonVsJsonParse: +(streamMs / parseMs).toFixed(1) });
}
console.log('anchor: JSON.parse of the whole body, measured in this run');
console.table(results);
await fs.mkdir(path.join(root, 'bench', 'results'), { recursive: true });
await fs.writeFile(path.join(root, 'bench', 'results', 'json-parse.json'), JSON.stringify({ measuredAt: new Date().toISOString(), node: process.version, results }, null, 2) + '\n');
