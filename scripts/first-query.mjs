#!/usr/bin/env node
// The first query after `npx wearable-etl demo`, with the DuckDB that `npm ci` installed
// (@duckdb/node-api; no duckdb command needed): daily steps per user, read from the files the
// committed runs list (scripts/committed-files.mjs), never from a run still going.
//
//   node scripts/first-query.mjs [OUT] [SQL]    SQL may use the view `intraday`
import { DuckDBInstance } from '@duckdb/node-api';
import { committedFiles } from './committed-files.mjs';

const outDir = process.argv[2] ?? 'out';
const sql = process.argv[3] ?? "SELECT user, date, sum(value) AS steps FROM intraday WHERE type = 'steps' GROUP BY ALL ORDER BY ALL LIMIT 10";
const { files } = await committedFiles(outDir, 'intraday');
if (files.length === 0) {
  process.stderr.write(`no committed intraday files under ${outDir}; run npx wearable-etl demo first\n`);
  process.exit(1);
}
const con = await (await DuckDBInstance.create(':memory:')).connect();
await con.run("SET TimeZone = 'UTC'");
const list = files.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ');
await con.run(`CREATE VIEW intraday AS SELECT * FROM read_parquet([${list}], hive_partitioning = true)`);
const reader = await con.runAndReadAll(sql);
const rows = reader.getRowObjectsJson();
const columns = reader.columnNames();
process.stdout.write(columns.join('\t') + '\n');
for (const row of rows) process.stdout.write(columns.map((c) => String(row[c])).join('\t') + '\n');
