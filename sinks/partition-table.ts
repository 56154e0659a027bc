// A partition's rows as they go into its file: the incoming rows (packed, in arrival order)
// merged with the partition's existing file if there is one (newest updatedAt per id wins, see
// merge.ts), and sorted (a step of write-partition.ts). The common case (a new partition without
// repeated ids) stays column-wise: no row objects are built.
import type { ColumnSpec, Dataset } from '../lib/schema.js';
import { unpackTables } from '../lib/batch.js';
import type { ColumnData, ColumnTable, PackedTable } from '../lib/batch.js';
import { fromColumns, sortKeys, sortRows, toColumns } from './columns.js';
import type { Row } from './columns.js';
import type { FileFormat } from './formats.js';
import { mergeAligned, mergeById } from './merge.js';
import type { MergeCounts } from './merge.js';

/** Characters hashed per value, from its end (where ids of one partition differ: time, counter). */
const HASHED_CHARS = 12;

/**
 * Whether a string column holds a value twice (nulls count as values, as in a Set of ids).
 * Values are hashed on their length and last characters only, and compared whole when hashes
 * meet; if they meet too often (values that differ only early on), a Set decides instead.
 */
export function hasDuplicates(values: readonly (string | null)[]): boolean {
  const n = values.length;
  let size = 16;
  while (size < n * 2) size <<= 1;
  const mask = size - 1;
  const slots = new Int32Array(size).fill(-1); // row of the value in the slot
  let collisions = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i] ?? null;
    const len = v === null ? -1 : v.length;
    let h = 0x811c9dc5 ^ len;
    for (let c = Math.max(0, len - HASHED_CHARS); c < len; c++) h = Math.imul(h ^ v!.charCodeAt(c), 0x01000193);
    let slot = (h ^ (h >>> 15)) & mask;
    for (;;) {
      const j = slots[slot]!;
      if (j < 0) {
        slots[slot] = i;
        break;
      }
      if ((values[j] ?? null) === v) return true;
      if (++collisions > n) return new Set(values.map((x) => x ?? null)).size !== n;
      slot = (slot + 1) & mask;
    }
  }
  return false;
}

interface SortKey {
  /** Number column values (null for a string column). */
  readonly numbers: Float64Array | Int32Array | null;
  readonly valid: Uint8Array | null;
  readonly strings: readonly (string | null)[] | null;
}

function sortKey(col: ColumnData): SortKey {
  return col.type === 'string' ? { numbers: null, valid: null, strings: col.values } : { numbers: col.values, valid: col.valid, strings: null };
}

/**
 * compareValues (columns.ts) over the sort keys of rows i and j, reading the columns instead
 * of row objects: equal → next key; null first; else `<` decides (NaN compares as greater).
 */
function compareRows(keys: readonly SortKey[], i: number, j: number): number {
  // The first key is a time column without nulls in every dataset: compared inline, as below.
  const first = keys[0]!;
  let k = 0;
  if (first.numbers !== null && first.valid === null) {
    const a = first.numbers[i]!;
    const b = first.numbers[j]!;
    if (a !== b) return a < b ? -1 : 1;
    k = 1;
  }
  for (; k < keys.length; k++) {
    const key = keys[k]!;
    let a: number | string | null;
    let b: number | string | null;
    if (key.numbers !== null) {
      const valid = key.valid;
      a = valid !== null && valid[i] === 0 ? null : key.numbers[i]!;
      b = valid !== null && valid[j] === 0 ? null : key.numbers[j]!;
    } else {
      a = key.strings![i] ?? null;
      b = key.strings![j] ?? null;
    }
    if (a === b) continue;
    if (a === null) return -1;
    if (b === null) return 1;
    return a < b ? -1 : 1;
  }
  return 0;
}

function permute(col: ColumnData, order: ArrayLike<number>): ColumnData {
  const n = order.length;
  if (col.type === 'string') {
    const out = new Array<string | null>(n);
    for (let i = 0; i < n; i++) out[i] = col.values[order[i]!]!;
    return { type: 'string', values: out };
  }
  const values = col.values instanceof Int32Array ? new Int32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = col.values[order[i]!]!;
  let valid: Uint8Array | null = null;
  if (col.valid !== null) {
    valid = new Uint8Array(n);
    for (let i = 0; i < n; i++) valid[i] = col.valid[order[i]!]!;
  }
  return { type: col.type, values, valid };
}

/** Past this many ascending runs a partition is sorted whole rather than merged run by run. */
const MAX_MERGED_RUNS = 16;

/** Merges two ascending index runs; on ties the left one first (as a stable sort). */
function mergeRuns(keys: readonly SortKey[], a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < a.length && j < b.length) out[o++] = compareRows(keys, a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!;
  while (i < a.length) out[o++] = a[i++]!;
  while (j < b.length) out[o++] = b[j++]!;
  return out;
}

/**
 * sortRows (columns.ts) on a column table. Sorting the row indices with the same comparator
 * makes the same comparisons and moves as sorting the rows, so the order is the same. A
 * partition usually arrives as a few ascending runs (one per resource of a day): those are
 * merged in linear time, which gives the order a stable sort gives.
 */
export function sortTable(dataset: Dataset, specs: readonly ColumnSpec[], table: ColumnTable): ColumnTable {
  const keys = sortKeys(dataset).map((name) => sortKey(table.columns[specs.findIndex((s) => s.name === name)]!));
  const n = table.rowCount;
  const starts = [0];
  for (let i = 1; i < n && starts.length <= MAX_MERGED_RUNS; i++) if (compareRows(keys, i - 1, i) > 0) starts.push(i);
  if (starts.length === 1) return table;
  let order: ArrayLike<number>;
  if (starts.length <= MAX_MERGED_RUNS) {
    let runs: Int32Array[] = starts.map((start, r) => {
      const run = new Int32Array((starts[r + 1] ?? n) - start);
      for (let k = 0; k < run.length; k++) run[k] = start + k;
      return run;
    });
    while (runs.length > 1) {
      const next: Int32Array[] = [];
      for (let r = 0; r < runs.length; r += 2) next.push(r + 1 < runs.length ? mergeRuns(keys, runs[r]!, runs[r + 1]!) : runs[r]!);
      runs = next;
    }
    order = runs[0]!;
  } else {
    order = Array.from({ length: n }, (_, i) => i).sort((i, j) => compareRows(keys, i, j));
  }
  return { rowCount: n, columns: table.columns.map((col) => permute(col, order)) };
}

/** A partition's file as it is now, to merge with. */
export interface ExistingFile {
  bytes: Uint8Array;
  /** Names the file in errors. */
  label: string;
}

/**
 * The table to encode for a partition, from its incoming rows (packed chunks in arrival order). `existing`: the partition's file to merge with, or
 * null when it has none. Adds what happened to each incoming row to `counts`.
 */
export async function partitionTable(
  dataset: Dataset,
  specs: readonly ColumnSpec[],
  format: FileFormat,
  tables: readonly PackedTable[],
  existing: ExistingFile | null,
  counts: MergeCounts,
): Promise<ColumnTable> {
  const incoming = unpackTables(tables);
  const ids = incoming.columns[specs.findIndex((s) => s.name === 'id')];
  if (existing === null && ids?.type === 'string' && !hasDuplicates(ids.values)) {
    counts.added += incoming.rowCount;
    return sortTable(dataset, specs, incoming);
  }
  // Existing files are sorted; when a re-run brings exactly their ids, versions pair up by
  // position. Otherwise merge by id. Either way the result is sorted (again). sortRows sorts in
  // place, so mergeById sees the incoming rows sorted exactly when the aligned test sorted them.
  const stored: Row[] = existing !== null ? await format.read(existing.bytes, specs, existing.label) : [];
  const rows = fromColumns(specs, incoming);
  const aligned = stored.length === rows.length ? mergeAligned(specs, stored, sortRows(dataset, rows), counts) : null;
  return toColumns(specs, sortRows(dataset, aligned ?? mergeById(specs, stored, rows, counts)));
}
