#!/usr/bin/env node
// The `wearable-etl` command. The CLI (cli.ts) runs on a worker thread whose young generation
// is capped at 4 MB semi-spaces; this thread only starts it, tells it about the terminal and
// exits with its code. Imports nothing heavy, so it adds ~1 MB to the process.
//
// Why: V8 grows the new space of a busy isolate to 16 MB semi-spaces. For this streaming job
// that only keeps dead objects, and the buffers they hold, around longer (what it costs in
// peak RSS: lib/worker.ts YOUNG_GENERATION_MB). `node --max-semi-space-size=4` says the same
// for the main thread, but a bin cannot pass node flags to itself; a worker's resourceLimits can.
import { startCliThread } from './cli-thread.js';

startCliThread(process.argv.slice(2));
