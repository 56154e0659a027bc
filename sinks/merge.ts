// Merging a partition's incoming rows with what its file already holds, by id.
//  - an incoming row equal to the existing one in every column but createdAt/updatedAt
//    leaves the existing row as it is (re-fetching the same window changes nothing);
//  - otherwise the row with the newest updatedAt wins (a tie goes to the incoming row),
//    and it keeps the older createdAt of the two.
import type { ColumnSpec } from '../lib/schema.js';
import type { Row } from './columns.js';

const VOLATILE = new Set(['createdAt', 'updatedAt']);

export interface MergeCounts {
  /** Rows whose id was new to the partition. */
  added: number;
  /** Rows that replaced another row with the same id. */
  replaced: number;
  /** Incoming rows that matched what was there and changed nothing. */
  unchanged: number;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || a === null) return b === undefined || b === null;
  return typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
}

type SameRow = (a: Row, b: Row) => boolean;
const sameRowFns = new WeakMap<readonly string[], SameRow>();

/**
 * Whether two rows hold the same values in the given columns (null and undefined alike,
 * NaN equal to NaN). Compiled per column list, like the row access in columns.ts.
 */
function sameRowFn(compare: readonly string[]): SameRow {
  let fn = sameRowFns.get(compare);
  if (fn === undefined) {
    for (const name of compare) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`column name ${JSON.stringify(name)} is not a plain identifier`);
    const body = compare.map((name) => `if (a.${name} !== b.${name} && !same(a.${name}, b.${name})) return false;`).join('\n');
    const compiled = new Function('same', `return (a, b) => {\n${body}\nreturn true;\n};`) as (same: (x: unknown, y: unknown) => boolean) => SameRow;
    fn = compiled(sameValue);
    sameRowFns.set(compare, fn);
  }
  return fn;
}

/** Resolves two versions of one id: returns the row to keep. */
export function resolveVersions(compare: readonly string[], older: Row, incoming: Row): Row {
  if (sameRowFn(compare)(older, incoming)) return older;
  const incomingWins = (incoming['updatedAt'] as number) >= (older['updatedAt'] as number);
  const winner = incomingWins ? incoming : older;
  const loser = incomingWins ? older : incoming;
  if ((loser['createdAt'] as number) < (winner['createdAt'] as number)) {
    return { ...winner, createdAt: loser['createdAt'] };
  }
  return winner;
}

const comparedBySpecs = new WeakMap<readonly ColumnSpec[], readonly string[]>();

/** The columns compared to decide whether an incoming row changes anything. */
export function comparedColumns(specs: readonly ColumnSpec[]): readonly string[] {
  let names = comparedBySpecs.get(specs);
  if (names === undefined) {
    names = specs.map((s) => s.name).filter((name) => !VOLATILE.has(name));
    comparedBySpecs.set(specs, names);
  }
  return names;
}

/** Whether two rows share an id (a Set of ids: cheaper than building the merge Map). */
export function hasDuplicateIds(rows: readonly Row[]): boolean {
  const ids = new Set<unknown>();
  for (const row of rows) ids.add(row['id']);
  return ids.size !== rows.length;
}

/**
 * The common re-run: incoming rows (sorted like the file) carry exactly the ids of the
 * existing rows, in the same order. Then versions pair up by position, without a Map.
 * Returns null when the ids do not line up.
 */
export function mergeAligned(specs: readonly ColumnSpec[], existing: readonly Row[], incomingSorted: readonly Row[], counts?: MergeCounts): Row[] | null {
  const n = existing.length;
  if (n === 0 || incomingSorted.length !== n) return null;
  for (let i = 0; i < n; i++) if (existing[i]!['id'] !== incomingSorted[i]!['id']) return null;
  const compare = comparedColumns(specs);
  const merged = new Array<Row>(n);
  let unchanged = 0;
  for (let i = 0; i < n; i++) {
    const kept = resolveVersions(compare, existing[i]!, incomingSorted[i]!);
    if (kept === existing[i]) unchanged++;
    merged[i] = kept;
  }
  if (counts) {
    counts.unchanged += unchanged;
    counts.replaced += n - unchanged;
  }
  return merged;
}

/**
 * Merges incoming rows (in arrival order) into existing rows. Returns one row per id;
 * the order is unspecified (callers sort).
 */
export function mergeById(specs: readonly ColumnSpec[], existing: readonly Row[], incoming: readonly Row[], counts?: MergeCounts): Row[] {
  if (existing.length === 0 && !hasDuplicateIds(incoming)) {
    if (counts) counts.added += incoming.length;
    return incoming.slice();
  }
  const compare = comparedColumns(specs);
  const byId = new Map<string, Row>();
  for (const row of existing) byId.set(row['id'] as string, row);
  let added = 0;
  let replaced = 0;
  let unchanged = 0;
  for (const row of incoming) {
    const id = row['id'] as string;
    const prev = byId.get(id);
    if (prev === undefined) {
      byId.set(id, row);
      added++;
      continue;
    }
    const kept = resolveVersions(compare, prev, row);
    if (kept === prev) unchanged++;
    else replaced++;
    byId.set(id, kept);
  }
  if (counts) {
    counts.added += added;
    counts.replaced += replaced;
    counts.unchanged += unchanged;
  }
  return [...byId.values()];
}
