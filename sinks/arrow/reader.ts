// Reads an Arrow IPC partition file back (to merge a re-run with it) through apache-arrow.
import { tableFromIPC } from 'apache-arrow';
import type { ColumnSpec } from '../../lib/schema.js';
import { loadCodec } from '../compression.js';
import { compatibleColumns, type Row } from '../columns.js';
import { registerArrowZstd } from './encoder.js';

/** Reads every row of an Arrow partition file (`path` names it in errors). */
export async function readArrowRows(bytes: Uint8Array, specs: readonly ColumnSpec[], path: string): Promise<Row[]> {
  // A compressed file needs the codec registered before it is decoded.
  await loadCodec('zstd');
  registerArrowZstd();
  const table = tableFromIPC(bytes);
  const missing = compatibleColumns(table.schema.fields.map((f) => f.name), specs, path);
  const rows: Record<string, unknown>[] = new Array(table.numRows);
  for (let i = 0; i < table.numRows; i++) rows[i] = {};
  for (const spec of specs) {
    if (missing.has(spec.name)) {
      for (const row of rows) row[spec.name] = null;
      continue;
    }
    const vector = table.getChild(spec.name)!;
    let i = 0;
    for (const value of vector) {
      let v: unknown = value;
      if (typeof v === 'bigint') v = Number(v);
      rows[i++]![spec.name] = v === undefined ? null : v;
    }
  }
  return rows;
}
