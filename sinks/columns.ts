// Column-wise batches built from records, and the value checks done once on intake: of records
// (batchChecker) and of a partition's packed columns (packedValuesFit), the one place for both.
// Encoders (Parquet, Arrow) take a ColumnTable: typed arrays for numbers, plain arrays
// for strings, and a validity mask for nullable columns.
import { assertPlainNames, isInt32Backed } from '../lib/batch.js';
import type { ColumnData, ColumnTable, PackedTable } from '../lib/batch.js';
import { EtlError } from '../lib/errors.js';
import type { ColumnSpec, Dataset } from '../lib/schema.js';
import { DATASET_ORDER } from '../lib/schema.js';

export { fromColumns, isInt32Backed } from '../lib/batch.js';
export type { ColumnData, ColumnTable, NumberColumn, StringColumn } from '../lib/batch.js';

/** A record as the sink sees it: column values by name (plus `date`, the partition). */
export type Row = Readonly<Record<string, unknown>>;

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** Why a value does not fit its column, or null when it fits. */
function checkValue(spec: ColumnSpec, value: unknown): string | null {
  if (value === null || value === undefined) {
    return spec.nullable ? null : `column ${spec.name} is required but the record has ${value === null ? 'null' : 'no value'}`;
  }
  switch (spec.type) {
    case 'string':
      return typeof value === 'string' ? null : `column ${spec.name} must be a string, got ${typeof value}`;
    case 'double':
      return typeof value === 'number' ? null : `column ${spec.name} must be a number, got ${typeof value}`;
    case 'int32':
      return typeof value === 'number' && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX
        ? null
        : `column ${spec.name} must be a 32-bit integer, got ${String(value).slice(0, 40)}`;
    case 'boolean':
      return typeof value === 'boolean' ? null : `column ${spec.name} must be true or false, got ${String(value).slice(0, 40)}`;
    case 'int64':
    case 'timestamp':
      return typeof value === 'number' && Number.isSafeInteger(value)
        ? null
        : `column ${spec.name} must be an integer${spec.type === 'timestamp' ? ' (ms since the epoch)' : ''} within ±2^53, got ${String(value).slice(0, 40)}`;
  }
}

// Row access is compiled per column layout: code that names each property literally lets
// V8 read a record's fields with inline caches in one pass over the record, which measured
// ~15x faster than `row[name]` in a loop over names (that site goes megamorphic). Column
// names come from lib/schema.ts COLUMNS and are checked to be plain identifiers.

type Compiled = {
  check: (batch: readonly unknown[], fail: (i: number, c: number, v: unknown) => boolean) => void;
  extract: (rows: readonly Row[], out: unknown[], valid: (Uint8Array | null)[], nulls: Int32Array) => void;
};

const compiled = new WeakMap<readonly ColumnSpec[], Compiled>();

function compile(specs: readonly ColumnSpec[]): Compiled {
  const cached = compiled.get(specs);
  if (cached) return cached;
  assertPlainNames(specs.map((s) => s.name));
  const checks = specs
    .map((spec, c) => {
      const v = `v${c}`;
      const read = `const ${v} = r.${spec.name};`;
      const absent = `(${v} === null || ${v} === undefined)`;
      let ok: string;
      switch (spec.type) {
        case 'string':
          ok = `typeof ${v} === 'string'`;
          break;
        case 'double':
          ok = `typeof ${v} === 'number'`;
          break;
        case 'int32':
          ok = `typeof ${v} === 'number' && (${v} | 0) === ${v}`;
          break;
        case 'boolean':
          ok = `typeof ${v} === 'boolean'`;
          break;
        default:
          ok = `Number.isSafeInteger(${v})`;
      }
      if (spec.nullable) ok = `${absent} || (${ok})`;
      return `${read}\n      if (!(${ok}) && fail(i, ${c}, ${v})) continue;`;
    })
    .join('\n      ');
  const check = new Function(
    'batch',
    'fail',
    `for (let i = 0; i < batch.length; i++) {
      const r = batch[i];
      if (r === null || typeof r !== 'object' || Array.isArray(r)) { fail(i, -1, r); continue; }
      ${checks}
    }`,
  ) as Compiled['check'];
  const extracts = specs
    .map((spec, c) => {
      if (spec.type === 'string') return `const v${c} = r.${spec.name}; o${c}[i] = v${c} === undefined ? null : v${c};`;
      const value = spec.type === 'boolean' ? `(v${c} ? 1 : 0)` : `v${c}`;
      if (!spec.nullable) return `const v${c} = r.${spec.name}; o${c}[i] = ${value};`;
      return `const v${c} = r.${spec.name}; if (v${c} === null || v${c} === undefined) { m${c}[i] = 0; nulls[${c}]++; } else o${c}[i] = ${value};`;
    })
    .join('\n      ');
  const locals = specs.map((spec, c) => `const o${c} = out[${c}];` + (spec.nullable && spec.type !== 'string' ? ` const m${c} = valid[${c}];` : '')).join('\n    ');
  const extract = new Function(
    'rows',
    'out',
    'valid',
    'nulls',
    `${locals}
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      ${extracts}
    }`,
  ) as Compiled['extract'];
  const result = { check, extract };
  compiled.set(specs, result);
  return result;
}

/**
 * Checks a batch of records of one column layout. Returns the problem of each bad record
 * by its index in the batch (the first problem found), or null when every record can be written.
 */
export function batchChecker(specs: readonly ColumnSpec[]): (batch: readonly unknown[]) => Map<number, string> | null {
  const { check } = compile(specs);
  return (batch: readonly unknown[]): Map<number, string> | null => {
    let problems: Map<number, string> | null = null;
    check(batch, (i, c, v) => {
      const problem = c < 0 ? 'record is not an object' : checkValue(specs[c]!, v);
      if (problem === null) return false; // the fast test was stricter than needed: go on
      (problems ??= new Map()).set(i, problem);
      return true;
    });
    return problems;
  };
}

/**
 * True when every value of a well-shaped packed table fits its column as the record checks above would
 * have it: no nulls where the schema has none, exact integers, booleans as 0/1.
 */
export function packedValuesFit(specs: readonly ColumnSpec[], table: PackedTable): boolean {
  const n = table.rowCount;
  for (let c = 0; c < specs.length; c++) {
    const spec = specs[c]!;
    const col = table.columns[c]!;
    if (col.type === 'string') {
      if (spec.nullable) continue;
      const marks = col.strings.kind === 'dict' ? col.strings.index : col.strings.lengths;
      for (let i = 0; i < n; i++) if (marks[i]! < 0) return false;
      continue;
    }
    const { values, valid } = col;
    if (valid !== null && !spec.nullable) {
      for (let i = 0; i < n; i++) if (valid[i] !== 1) return false;
    }
    if (spec.type === 'boolean') {
      for (let i = 0; i < n; i++) if ((valid === null || valid[i] === 1) && values[i] !== 0 && values[i] !== 1) return false;
    } else if (spec.type === 'int64' || spec.type === 'timestamp') {
      for (let i = 0; i < n; i++) if ((valid === null || valid[i] === 1) && !Number.isSafeInteger(values[i]!)) return false;
    }
  }
  return true;
}

/** Returns why the record cannot be written (first problem found), or null if it can. */
export function checkRecord(specs: readonly ColumnSpec[], record: unknown): string | null {
  return batchChecker(specs)([record])?.get(0) ?? null;
}

/** Builds the column buffers of rows already checked with checkRecord / batchChecker. */
export function toColumns(specs: readonly ColumnSpec[], rows: readonly Row[]): ColumnTable {
  const n = rows.length;
  const out: unknown[] = specs.map((spec) => (spec.type === 'string' ? new Array<string | null>(n) : isInt32Backed(spec.type) ? new Int32Array(n) : new Float64Array(n)));
  const valid = specs.map((spec) => (spec.nullable && spec.type !== 'string' ? new Uint8Array(n).fill(1) : null));
  const nulls = new Int32Array(specs.length);
  compile(specs).extract(rows, out, valid, nulls);
  const columns = specs.map((spec, c): ColumnData => {
    if (spec.type === 'string') return { type: 'string', values: out[c] as (string | null)[] };
    return { type: spec.type, values: out[c] as Float64Array | Int32Array, valid: nulls[c] === 0 ? null : valid[c]! };
  });
  return { rowCount: n, columns };
}

/**
 * Checks that a file written earlier can be merged with `specs`: same columns in the same
 * order, except that columns added later as nullable may be missing (they read as null).
 * Returns the names missing from the file.
 */
export function compatibleColumns(fileColumns: readonly string[], specs: readonly ColumnSpec[], path: string): Set<string> {
  const missing = new Set<string>();
  let k = 0;
  for (const spec of specs) {
    if (fileColumns[k] === spec.name) {
      k++;
      continue;
    }
    if (!spec.nullable || fileColumns.includes(spec.name)) {
      k = -1;
      break;
    }
    missing.add(spec.name);
  }
  if (k !== fileColumns.length) {
    throw new EtlError('SINK', `${path} has columns [${fileColumns.join(', ')}], not this schema's [${specs.map((s) => s.name).join(', ')}]; move the old output away or write to another --out`, {
      path,
    });
  }
  return missing;
}

/** Sort keys per dataset (lib/schema.ts DATASET_ORDER): intraday (timestamp, type, id); others (their time column, id). */
export function sortKeys(dataset: Dataset): readonly string[] {
  return DATASET_ORDER[dataset].sortBy;
}

function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  return (a as number | string) < (b as number | string) ? -1 : 1;
}

/** Sorts rows in place, deterministically (ids are unique within a partition file). */
export function sortRows(dataset: Dataset, rows: Row[]): Row[] {
  const keys = sortKeys(dataset);
  if (keys.length === 3) {
    const [k0, k1, k2] = keys as [string, string, string];
    return rows.sort((a, b) => compareValues(a[k0], b[k0]) || compareValues(a[k1], b[k1]) || compareValues(a[k2], b[k2]));
  }
  if (keys.length === 2) {
    const [k0, k1] = keys as [string, string];
    return rows.sort((a, b) => compareValues(a[k0], b[k0]) || compareValues(a[k1], b[k1]));
  }
  const k0 = keys[0]!;
  return rows.sort((a, b) => compareValues(a[k0], b[k0]));
}
