// The batch a stage hands to the sink when it already has its rows in columns: one partition's
// rows as column buffers, packed so that a worker thread can take them without one
// serialisation per value. Strings are packed as a small dictionary and an Int32Array of
// indices (near-constant columns: humanId, type, tzOffset, …) or as one joined text and the
// lengths (mostly-unique columns: id, sourceData); numbers as typed arrays. A transform
// builds one without importing the sink (transforms/intraday.ts); the sink checks and encodes
// it (sinks/).
import { COLUMNS } from './schema.js';
import type { ColumnSpec, ColumnType, Dataset, RecordOf } from './schema.js';

export interface StringColumn {
  readonly type: 'string';
  readonly values: readonly (string | null)[];
}
export interface NumberColumn {
  readonly type: Exclude<ColumnType, 'string'>;
  /** double, and int64/timestamp as exact integers (|v| < 2^53); int32 and boolean (0/1) in an Int32Array. */
  readonly values: Float64Array | Int32Array;
  /** 1 = value present, 0 = null; null when the column has no nulls. */
  readonly valid: Uint8Array | null;
}
export type ColumnData = StringColumn | NumberColumn;

/** Rows as columns, aligned with the ColumnSpec list the table was built for. */
export interface ColumnTable {
  readonly rowCount: number;
  readonly columns: readonly ColumnData[];
}

export type PackedStrings =
  | { readonly kind: 'dict'; readonly dict: readonly string[]; /** -1 = null */ readonly index: Int32Array }
  | { readonly kind: 'joined'; readonly text: string; /** UTF-16 length of each value; -1 = null */ readonly lengths: Int32Array };

export type PackedColumn = { readonly type: 'string'; readonly strings: PackedStrings } | NumberColumn;

export interface PackedTable {
  readonly rowCount: number;
  /** Aligned with COLUMNS[dataset]. */
  readonly columns: readonly PackedColumn[];
}

/**
 * Rows of one partition already laid out in columns, as a normalizer can build them without
 * a row object per point (transforms/intraday.ts: one intraday answer is one partition). The
 * sink checks them as it checks records; rows it cannot write go to the dead letters as the
 * same records would.
 */
export interface PartitionColumns {
  readonly kind: 'columns';
  /** The partition: the rows' local date (YYYY-MM-DD) and humanId. */
  readonly date: string;
  readonly humanId: string;
  /** Aligned with COLUMNS[dataset]. Its buffers become the sink's: do not touch them after. */
  readonly table: PackedTable;
}

/** int32 and boolean columns hold their values in an Int32Array (booleans as 0/1). */
export function isInt32Backed(type: ColumnType): boolean {
  return type === 'int32' || type === 'boolean';
}

/** Column names become property names in compiled row code: only plain identifiers. */
export function assertPlainNames(names: readonly string[]): void {
  for (const name of names) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`column name ${JSON.stringify(name)} is not a plain identifier`);
}

/** Generated code that reads rows out of columns: one object literal per row, `date` first when given. */
type RowBuilder<R> = (columns: readonly ColumnData[], n: number, date?: string) => R[];

function compileRowBuilder<R>(specs: readonly ColumnSpec[], withDate: boolean): RowBuilder<R> {
  assertPlainNames(specs.map((s) => s.name));
  // One object literal per row: every row gets the same hidden class (fast to read later).
  const fields = specs.map((spec, c) =>
    spec.type === 'string'
      ? `${spec.name}: v${c}[i] ?? null`
      : `${spec.name}: m${c} === null || m${c}[i] ? ${spec.type === 'boolean' ? `v${c}[i] === 1` : `v${c}[i]`} : null`,
  );
  if (withDate) fields.unshift('date');
  const locals = specs.map((spec, c) => `const v${c} = columns[${c}].values;` + (spec.type === 'string' ? '' : ` const m${c} = columns[${c}].valid;`)).join('\n');
  return new Function('columns', 'n', 'date', `${locals}\nconst rows = new Array(n);\nfor (let i = 0; i < n; i++) rows[i] = { ${fields.join(', ')} };\nreturn rows;`) as RowBuilder<R>;
}

const builders = new WeakMap<readonly ColumnSpec[], RowBuilder<Record<string, unknown>>>();

/** Reads rows back out of a ColumnTable (decoded files become records to merge with). */
export function fromColumns(specs: readonly ColumnSpec[], table: ColumnTable): Record<string, unknown>[] {
  let build = builders.get(specs);
  if (build === undefined) builders.set(specs, (build = compileRowBuilder(specs, false)));
  return build(table.columns, table.rowCount);
}

// Per dataset: its records are built from COLUMNS[dataset], the table RecordOf is derived from.
const recordBuilder = <D extends Dataset>(dataset: D): RowBuilder<RecordOf<D>> => compileRowBuilder(COLUMNS[dataset], true);
const recordBuilders: { readonly [D in Dataset]: RowBuilder<RecordOf<D>> } = {
  activities: recordBuilder('activities'),
  intraday: recordBuilder('intraday'),
  daily_summaries: recordBuilder('daily_summaries'),
  readings: recordBuilder('readings'),
};

/** Unpacks the first n values of packed strings into out[at, at + n). */
function unpackStringsInto(p: PackedStrings, n: number, out: (string | null)[], at: number): void {
  if (p.kind === 'dict') {
    const { dict, index } = p;
    for (let i = 0; i < n; i++) {
      const k = index[i]!;
      out[at + i] = k < 0 ? null : dict[k]!;
    }
    return;
  }
  const { text, lengths } = p;
  let from = 0;
  for (let i = 0; i < n; i++) {
    const len = lengths[i]!;
    if (len < 0) out[at + i] = null;
    else {
      out[at + i] = text.slice(from, from + len);
      from += len;
    }
  }
}

export function unpackTable(packed: PackedTable): ColumnTable {
  return unpackTables([packed]);
}

/**
 * The rows of packed tables (each for the same columns) as one table, one after another. Each
 * table's strings are unpacked on their own, never joined first: a partition's ids as one text
 * (a day of steps and calories: ~150 KB) would be a string in V8's large-object space, which
 * cost about 1 ms of CPU a partition to allocate and free (bench/api-bound, writer thread).
 */
export function unpackTables(tables: readonly PackedTable[]): ColumnTable {
  if (tables.length === 0) throw new Error('unpackTables: no table');
  const n = tables.reduce((sum, t) => sum + t.rowCount, 0);
  const columns = tables[0]!.columns.map((first, c): ColumnData => {
    if (first.type === 'string') {
      const values = new Array<string | null>(n);
      let at = 0;
      for (const t of tables) {
        unpackStringsInto((t.columns[c] as Extract<PackedColumn, { type: 'string' }>).strings, t.rowCount, values, at);
        at += t.rowCount;
      }
      return { type: 'string', values };
    }
    if (tables.length === 1) return first;
    const parts = tables.map((t) => t.columns[c] as NumberColumn);
    const values = first.values instanceof Int32Array ? new Int32Array(n) : new Float64Array(n);
    const valid = parts.some((p) => p.valid !== null) ? new Uint8Array(n).fill(1) : null;
    let at = 0;
    parts.forEach((p, k) => {
      const count = tables[k]!.rowCount;
      values.set(p.values.subarray(0, count), at);
      if (valid !== null && p.valid !== null) valid.set(p.valid.subarray(0, count), at);
      at += count;
    });
    return { type: first.type, values, valid };
  });
  return { rowCount: n, columns };
}

/** The rows of a well-shaped packed table of `dataset` as its records, in partition `date`. */
export function packedRecords<D extends Dataset>(dataset: D, date: string, table: PackedTable): RecordOf<D>[] {
  const { columns, rowCount } = unpackTable(table);
  return recordBuilders[dataset](columns, rowCount, date);
}
