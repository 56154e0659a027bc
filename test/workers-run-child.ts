// One worker for test/workers-run.test.ts: `wearable-etl run fitbit-intraday … --state postgres://…`
// as the CLI runs it (parseRunArgs, runPipelines, failureLine), with the test's short retry and
// rate-limit jitter (the CLI's are minutes). Log lines go to stderr; the exit code is the run's.
import { parseRunArgs } from '../pipelines/registry.js';
import { failureLine, runPipelines } from '../pipelines/run.js';
import { createLogger } from '../lib/log.js';
import { FAST_RATE, FAST_RETRY } from './fitbit-helpers.js';

const config = parseRunArgs(process.argv.slice(2), process.env, process.cwd());
if (config === null) throw new Error('no config');
const stop = new AbortController();
process.on('SIGTERM', () => stop.abort('SIGTERM'));
const summary = await runPipelines(config, {
  log: createLogger({ json: true, write: (line) => process.stderr.write(line + '\n') }),
  tuning: { retry: FAST_RETRY, fitbitRateLimit: FAST_RATE },
  stop: stop.signal,
});
const line = failureLine(summary);
if (line) process.stderr.write(line + '\n');
process.exit(summary.exitCode);
