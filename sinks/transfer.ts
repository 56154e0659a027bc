// A ColumnTable as a message for a worker thread, and back. Structured cloning an array of
// strings costs one serialisation per value (8 string columns × every row), so strings are
// packed first: near-constant columns (humanId, type, tzOffset, …) as a small dictionary and
// an Int32Array of indices, mostly-unique ones (id, sourceData) as one joined string and the
// lengths. Number columns move as they are: their buffers are transferred, not copied.
// unpackTable(packTable(t)) holds the same values in the same places, so the encoders write
// the same bytes from either.
import type { ColumnData, ColumnTable, NumberColumn } from './columns.js';

export type PackedStrings =
  | { readonly kind: 'dict'; readonly dict: readonly string[]; /** -1 = null */ readonly index: Int32Array }
  | { readonly kind: 'joined'; readonly text: string; /** UTF-16 length of each value; -1 = null */ readonly lengths: Int32Array };

export type PackedColumn = { readonly type: 'string'; readonly strings: PackedStrings } | NumberColumn;

export interface PackedTable {
  readonly rowCount: number;
  readonly columns: readonly PackedColumn[];
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

function unpackStrings(p: PackedStrings, n: number): (string | null)[] {
  const out = new Array<string | null>(n);
  if (p.kind === 'dict') {
    const { dict, index } = p;
    for (let i = 0; i < n; i++) {
      const k = index[i]!;
      out[i] = k < 0 ? null : dict[k]!;
    }
    return out;
  }
  const { text, lengths } = p;
  let at = 0;
  for (let i = 0; i < n; i++) {
    const len = lengths[i]!;
    if (len < 0) out[i] = null;
    else {
      out[i] = text.slice(at, at + len);
      at += len;
    }
  }
  return out;
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
export function packTable(table: ColumnTable): { packed: PackedTable; transfer: ArrayBuffer[] } {
  const seen = new Set<ArrayBufferLike>();
  const columns = table.columns.map((col: ColumnData): PackedColumn => {
    if (col.type === 'string') return { type: 'string', strings: packStrings(col.values, table.rowCount) };
    return { type: col.type, values: ownBuffer(col.values, seen), valid: col.valid === null ? null : ownBuffer(col.valid, seen) };
  });
  for (const col of columns) {
    if (col.type === 'string') seen.add(col.strings.kind === 'dict' ? col.strings.index.buffer : col.strings.lengths.buffer);
  }
  return { packed: { rowCount: table.rowCount, columns }, transfer: [...seen] as ArrayBuffer[] };
}

export function unpackTable(packed: PackedTable): ColumnTable {
  const n = packed.rowCount;
  const columns = packed.columns.map((col): ColumnData => (col.type === 'string' ? { type: 'string', values: unpackStrings(col.strings, n) } : col));
  return { rowCount: n, columns };
}
