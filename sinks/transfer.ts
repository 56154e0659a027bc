// A ColumnTable as a message for a worker thread (lib/batch.ts PackedTable), and the checks
// of a packed table that a stage hands in. Structured cloning an array of strings costs one
// serialisation per value (8 string columns × every row), so strings are packed first.
// Number columns move as they are: their buffers are transferred, not copied.
// unpackTable(packTable(t)) holds the same values in the same places, so the encoders write
// the same bytes from either.
import { isInt32Backed } from '../lib/batch.js';
import type { ColumnData, ColumnTable, PackedColumn, PackedStrings, PackedTable } from '../lib/batch.js';
import type { ColumnSpec } from '../lib/schema.js';

export { packedRecords, unpackTable } from '../lib/batch.js';
export type { PackedColumn, PackedStrings, PackedTable } from '../lib/batch.js';

/** A packed table and the buffers to transfer with it (all of them its own). */
export interface Packed {
  packed: PackedTable;
  transfer: ArrayBuffer[];
}

/** Distinct values seen in the first SAMPLE values beyond which a column is packed joined. */
const SAMPLE = 64;
const MAX_DICT_IN_SAMPLE = 16;
/** A dictionary larger than this share of the rows is not worth it. */
const MAX_DICT_SHARE = 0.25;

function packStrings(values: readonly (string | null)[], n: number): PackedStrings {
  const index = new Int32Array(n);
  const dict: string[] = [];
  const map = new Map<string, number>();
  let prev: string | null = null;
  let prevIndex = -1;
  let i = 0;
  for (; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      index[i] = -1;
      continue;
    }
    if (v === prev) {
      index[i] = prevIndex;
      continue;
    }
    let k = map.get(v);
    if (k === undefined) {
      k = dict.length;
      dict.push(v);
      map.set(v, k);
      if ((i < SAMPLE && dict.length > MAX_DICT_IN_SAMPLE) || dict.length > n * MAX_DICT_SHARE + 16) break;
    }
    prev = v;
    prevIndex = k;
    index[i] = k;
  }
  if (i === n) return { kind: 'dict', dict, index };
  const lengths = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const v = values[r];
    lengths[r] = v === null || v === undefined ? -1 : v.length;
  }
  // join() writes null and undefined as '', so the text holds the non-null values back to back.
  return { kind: 'joined', text: values.join(''), lengths };
}

/** The buffer of a typed array to transfer, or a copy when the array shares its buffer. */
function ownBuffer<T extends Float64Array | Int32Array | Uint8Array>(array: T, seen: Set<ArrayBufferLike>): T {
  const whole = array.byteOffset === 0 && array.byteLength === array.buffer.byteLength && !seen.has(array.buffer);
  const own = whole ? array : (array.slice() as T);
  seen.add(own.buffer);
  return own;
}

/**
 * Packs a table for postMessage. The returned buffers are to be transferred: after the
 * message is sent, the table's number columns must not be used again.
 */
export function packTable(table: ColumnTable): Packed {
  const seen = new Set<ArrayBufferLike>();
  const columns = table.columns.map((col: ColumnData): PackedColumn => {
    if (col.type === 'string') return { type: 'string', strings: packStrings(col.values, table.rowCount) };
    return { type: col.type, values: ownBuffer(col.values, seen), valid: col.valid === null ? null : ownBuffer(col.valid, seen) };
  });
  const packed = { rowCount: table.rowCount, columns };
  return { packed, transfer: transferList(packed) };
}

/** The buffers a packed table holds (each once), to transfer with it. */
export function transferList(table: PackedTable): ArrayBuffer[] {
  const seen = new Set<ArrayBufferLike>();
  for (const col of table.columns) {
    if (col.type === 'string') seen.add(col.strings.kind === 'dict' ? col.strings.index.buffer : col.strings.lengths.buffer);
    else {
      seen.add(col.values.buffer);
      if (col.valid !== null) seen.add(col.valid.buffer);
    }
  }
  return [...seen] as ArrayBuffer[];
}

/**
 * Why a packed table cannot be read as rows of `specs` at all (a producer's mistake, not bad
 * data), or null when it can: the columns, their kinds and lengths, and the string layouts.
 */
export function packedShapeProblem(specs: readonly ColumnSpec[], table: PackedTable): string | null {
  const n = table.rowCount;
  if (!Number.isInteger(n) || n < 0) return `row count ${String(n)} is not a count`;
  if (!Array.isArray(table.columns)) return 'it has no list of columns';
  if (table.columns.length !== specs.length) return `${table.columns.length} columns, the schema has ${specs.length}`;
  for (let c = 0; c < specs.length; c++) {
    const spec = specs[c]!;
    const col = table.columns[c];
    if (typeof col !== 'object' || col === null) return `column ${spec.name} is missing`;
    if ((col.type === 'string') !== (spec.type === 'string') || (col.type !== 'string' && col.type !== spec.type)) return `column ${spec.name} is ${col.type}, the schema says ${spec.type}`;
    if (col.type === 'string') {
      const p = col.strings;
      if (p.kind === 'dict') {
        if (p.index.length < n) return `column ${spec.name} has ${p.index.length} values for ${n} rows`;
        for (let i = 0; i < n; i++) if (p.index[i]! >= p.dict.length) return `column ${spec.name} row ${i} points past its dictionary`;
      } else {
        if (p.lengths.length < n) return `column ${spec.name} has ${p.lengths.length} values for ${n} rows`;
        let total = 0;
        for (let i = 0; i < n; i++) total += Math.max(0, p.lengths[i]!);
        if (total !== p.text.length) return `column ${spec.name}'s lengths add up to ${total}, its text has ${p.text.length}`;
      }
      continue;
    }
    const int32 = isInt32Backed(spec.type);
    if (int32 !== col.values instanceof Int32Array) return `column ${spec.name} must be held in ${int32 ? 'an Int32Array' : 'a Float64Array'}`;
    if (col.values.length < n || (col.valid !== null && col.valid.length < n)) return `column ${spec.name} is shorter than ${n} rows`;
  }
  return null;
}

/** True when each of the first n values of a packed string column is `value`. */
export function packedAllEqual(p: PackedStrings, n: number, value: string): boolean {
  if (p.kind === 'dict') {
    const same = p.dict.map((v) => v === value);
    for (let i = 0; i < n; i++) if (same[p.index[i]!] !== true) return false;
    return true;
  }
  for (let i = 0; i < n; i++) if (p.lengths[i] !== value.length) return false;
  return p.text === value.repeat(n);
}
