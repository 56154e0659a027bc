#!/usr/bin/env node
// The reader's side of the commit protocol (README "Loading in batches"): the files that
// finished runs committed, from their run records in <out>/_runs/. A run still `running` is in
// progress or was killed: its files are not listed here until a later run takes them over.
//
//   node scripts/committed-files.mjs OUT DATASET [AFTER_RUN_ID]
// prints {"lastRunId": ..., "files": [...]} (paths relative to the current folder): the files
// of runs newer than AFTER_RUN_ID. Keep lastRunId for the next load.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const FINISHED = new Set(['complete', 'partial', 'failed', 'stopped', 'interrupted']);

/** Finished runs after `afterRunId` (run ids sort by start time), oldest first, and their files of `dataset`. */
export async function committedFiles(outDir, dataset, afterRunId = '') {
  const names = (await readdir(path.join(outDir, '_runs')).catch(() => [])).filter((n) => n.endsWith('.json')).sort();
  const files = new Set();
  let lastRunId = afterRunId || null;
  for (const name of names) {
    const runId = name.slice(0, -'.json'.length);
    if (afterRunId && runId <= afterRunId) continue;
    let record;
    try {
      record = JSON.parse(await readFile(path.join(outDir, '_runs', name), 'utf8'));
    } catch {
      break; // being replaced right now: stop here, load it next time
    }
    if (!FINISHED.has(record.status)) break; // a run in progress: nothing after it is final yet
    for (const f of record.files?.[dataset] ?? []) files.add(path.join(outDir, dataset, f));
    lastRunId = runId;
  }
  return { lastRunId, files: [...files].sort() };
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const [outDir, dataset, after] = process.argv.slice(2);
  if (!outDir || !dataset) {
    process.stderr.write('usage: node scripts/committed-files.mjs OUT DATASET [AFTER_RUN_ID]\n');
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(await committedFiles(outDir, dataset, after)) + '\n');
}
