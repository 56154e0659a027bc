// Writes a large intraday dataset through the Parquet sink; test/sinks-crash.test.ts kills
// it with SIGKILL mid-write. Usage: node --import tsx bench/sink-crash-child.ts <out> <runId> <users>
import { createSink } from '../sinks/index.js';
import { asAsync, intradayBatches } from './sink-data.js';

const [out, runId, users] = process.argv.slice(2);
if (!out || !runId || !users) {
  console.error('usage: sink-crash-child.ts <out> <runId> <users>');
  process.exit(2);
}
const sink = createSink('intraday', { outDir: out, format: 'parquet', runId, highWaterRows: 5000 });
const summary = await sink(asAsync(intradayBatches({ users: Number(users), days: 4, points: 1440 }, 2000)));
process.stdout.write(JSON.stringify(summary) + '\n');
