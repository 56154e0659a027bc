// Reads every data file of an output folder with the readers analysts use and checks that they
// agree: Parquet by DuckDB, polars (nodejs-polars, the Rust engine Python's polars wraps) and
// hyparquet; Arrow IPC by polars and apache-arrow. Per dataset, each reader must count the same
// rows and see every column with the type the dataset's column table declares (lib/schema.ts).
// pyarrow and pandas are not among the readers: no PyPI here, and Debian has no pyarrow.
//
//   npx tsx scripts/check-readers.ts OUT      (after `npm run demo`: OUT is ./out)
// prints one JSON line per dataset and format; exits 1 when any reader disagrees.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pl from 'nodejs-polars';
import { parquetMetadata } from 'hyparquet';
import { tableFromIPC } from 'apache-arrow';
import { DuckDBInstance } from '@duckdb/node-api';
import { COLUMNS, DATASETS, type ColumnType, type Dataset } from '../lib/schema.js';
import { loadCodec } from '../sinks/compression.js';
import { registerArrowZstd } from '../sinks/arrow/encoder.js';

/** The declared type as each reader names it. */
const TYPE_NAMES: Record<'duckdb' | 'polars' | 'apache-arrow', Record<ColumnType, string>> = {
  duckdb: { string: 'VARCHAR', timestamp: 'TIMESTAMP WITH TIME ZONE', double: 'DOUBLE', int64: 'BIGINT', int32: 'INTEGER', boolean: 'BOOLEAN' },
  polars: { string: 'String', timestamp: 'Datetime(ms,UTC)', double: 'Float64', int64: 'Int64', int32: 'Int32', boolean: 'Bool' },
  'apache-arrow': { string: 'Utf8', timestamp: 'Timestamp<MILLISECOND, UTC>', double: 'Float64', int64: 'Int64', int32: 'Int32', boolean: 'Bool' },
};

export interface ReaderCheck {
  dataset: Dataset;
  format: 'parquet' | 'arrow';
  files: number;
  /** Rows per reader. */
  rows: Record<string, number>;
  problems: string[];
}

const declared = (dataset: Dataset, reader: keyof typeof TYPE_NAMES): string => COLUMNS[dataset].map((c) => `${c.name}: ${TYPE_NAMES[reader][c.type]}`).join(', ');

/** polars names a type "DataType(String)". */
const polarsName = (t: unknown): string => String(t).replace(/^DataType\((.*)\)$/, '$1').replace(/\s+/g, '');

async function dataFiles(out: string, dataset: Dataset, ext: string): Promise<string[]> {
  const entries = await fs.readdir(path.join(out, dataset), { recursive: true }).catch(() => [] as string[]);
  // Partition files only: manifests, dead letters and _tmp are not data.
  return entries.filter((f) => f.startsWith('date=') && f.endsWith(`.${ext}`)).sort().map((f) => path.join(out, dataset, f));
}

function typesProblem(reader: string, dataset: Dataset, file: string, seen: string, expected: string): string | null {
  return seen === expected ? null : `${dataset}: ${reader} reads ${file} as {${seen}}, declared {${expected}}`;
}

export async function checkReaders(out: string): Promise<ReaderCheck[]> {
  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  await loadCodec('zstd');
  registerArrowZstd();
  const checks: ReaderCheck[] = [];
  for (const dataset of DATASETS) {
    for (const format of ['parquet', 'arrow'] as const) {
      const files = await dataFiles(out, dataset, format);
      if (files.length === 0) continue;
      const check: ReaderCheck = { dataset, format, files: files.length, rows: {}, problems: [] };
      const note = (p: string | null): void => void (p && check.problems.length < 20 && check.problems.push(p));
      const count = (reader: string, n: number): void => void (check.rows[reader] = (check.rows[reader] ?? 0) + n);
      if (format === 'parquet') {
        const glob = path.join(out, dataset, 'date=*', 'user=*', '*.parquet').replace(/'/g, "''");
        const source = `read_parquet('${glob}', hive_partitioning = false)`;
        const [n] = (await duck.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM ${source}`)).getRowObjectsJson();
        count('duckdb', Number(n!.n));
        const described = (await duck.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRowObjectsJson();
        note(typesProblem('DuckDB', dataset, '*', described.map((r) => `${String(r.column_name)}: ${String(r.column_type)}`).join(', '), declared(dataset, 'duckdb')));
      }
      for (const file of files) {
        const rel = path.relative(out, file);
        const bytes = await fs.readFile(file);
        const df = format === 'parquet' ? pl.readParquet(bytes) : pl.readIPC(bytes);
        count('polars', df.height);
        note(typesProblem('polars', dataset, rel, Object.entries(df.schema).map(([name, type]) => `${name}: ${polarsName(type)}`).join(', '), declared(dataset, 'polars')));
        if (format === 'parquet') {
          count('hyparquet', Number(parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)).num_rows));
        } else {
          const table = tableFromIPC(bytes);
          count('apache-arrow', table.numRows);
          note(typesProblem('apache-arrow', dataset, rel, table.schema.fields.map((f) => `${f.name}: ${String(f.type).replace(/"/g, '')}`).join(', '), declared(dataset, 'apache-arrow')));
        }
      }
      const counts = Object.entries(check.rows);
      if (new Set(counts.map(([, n]) => n)).size !== 1) note(`${dataset} (${format}): readers count different rows: ${counts.map(([r, n]) => `${r} ${n}`).join(', ')}`);
      checks.push(check);
    }
  }
  duck.closeSync();
  return checks;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('usage: npx tsx scripts/check-readers.ts OUT\n');
    process.exit(2);
  }
  const checks = await checkReaders(out);
  for (const c of checks) process.stdout.write(JSON.stringify(c) + '\n');
  const problems = checks.flatMap((c) => c.problems);
  if (checks.length === 0) problems.push(`no Parquet or Arrow data files under ${out}`);
  for (const p of problems) process.stderr.write(`check-readers: ${p}\n`);
  process.exit(problems.length > 0 ? 1 : 0);
}
