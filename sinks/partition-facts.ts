// The few facts of a partition the run report needs (pipelines/report.ts): its rows, points per
// intraday type with their interval, the sum of its steps, and the daily summaries' steps. The
// sink computes them from the table it encodes and writes them into the file's key-value
// metadata (Parquet) or schema metadata (Arrow) under FACTS_KEY, so that the report reads a
// footer instead of columns; for a file without them (written by another tool) the report
// computes the same from the columns, with the same function.
import type { ColumnData, ColumnTable } from '../lib/batch.js';
import type { ColumnSpec, Dataset } from '../lib/schema.js';

export const FACTS_KEY = 'wearable-etl.report_facts';

export interface PartitionFacts {
  rows: number;
  /** intraday: per type, [points, smallest interval in seconds]. */
  points?: Record<string, [number, number]>;
  /** intraday: the sum of the steps values, null when the partition has no steps. */
  steps?: number | null;
  /** daily_summaries: [source, steps] of each row with steps. */
  summaries?: [string, number][];
}

/** The columns partitionFacts reads, per dataset (none: the row count is all). */
export const FACTS_COLUMNS: { readonly [D in Dataset]: readonly string[] } = {
  intraday: ['type', 'value', 'interval'],
  daily_summaries: ['source', 'steps'],
  activities: [],
  readings: [],
};

type Column = ArrayLike<unknown> | null;

/** The facts of a partition from its columns (nulls as null or undefined). */
export function partitionFacts(dataset: Dataset, rows: number, get: (name: string) => Column): PartitionFacts {
  const facts: PartitionFacts = { rows };
  if (dataset === 'intraday') {
    const types = get('type');
    const values = get('value');
    const intervals = get('interval');
    if (!types || !values || !intervals) return facts;
    const points: Record<string, [number, number]> = {};
    let steps = 0;
    let hasSteps = false;
    for (let i = 0; i < rows; i++) {
      const type = String(types[i]);
      const interval = Number(intervals[i]);
      const p = points[type];
      if (p) {
        p[0]++;
        if (interval > 0 && interval < p[1]) p[1] = interval;
      } else points[type] = [1, interval > 0 ? interval : 60];
      if (type === 'steps') {
        const v = Number(values[i]);
        if (Number.isFinite(v)) {
          steps += v;
          hasSteps = true;
        }
      }
    }
    facts.points = points;
    facts.steps = hasSteps ? steps : null;
  } else if (dataset === 'daily_summaries') {
    const sources = get('source');
    const steps = get('steps');
    if (!sources || !steps) return facts;
    facts.summaries = [];
    for (let i = 0; i < rows; i++) {
      const v = steps[i];
      if (v === null || v === undefined) continue;
      const n = Number(v);
      if (Number.isFinite(n)) facts.summaries.push([String(sources[i]), n]);
    }
  }
  return facts;
}

function columnValues(col: ColumnData): Column {
  if (col.type === 'string' || col.valid === null) return col.values;
  const { values, valid } = col;
  return Array.from(values, (v, i) => (valid[i] === 0 ? null : v));
}

/** The facts of a table about to be encoded. */
export function tableFacts(dataset: Dataset, specs: readonly ColumnSpec[], table: ColumnTable): PartitionFacts {
  return partitionFacts(dataset, table.rowCount, (name) => {
    const i = specs.findIndex((s) => s.name === name);
    return i < 0 ? null : columnValues(table.columns[i]!);
  });
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * The facts written under FACTS_KEY, or null when the text is not facts of this shape or
 * counts other rows than the file has (the file was changed by something that kept its
 * metadata): then the report reads the columns.
 */
export function parseFacts(text: string, rows: number): PartitionFacts | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (o['rows'] !== rows) return null;
  const facts: PartitionFacts = { rows };
  const points = o['points'];
  if (points !== undefined) {
    if (points === null || typeof points !== 'object' || Array.isArray(points)) return null;
    facts.points = {};
    for (const [type, p] of Object.entries(points)) {
      if (!Array.isArray(p) || p.length !== 2 || !isCount(p[0]) || !isCount(p[1])) return null;
      facts.points[type] = [p[0], p[1]];
    }
  }
  const steps = o['steps'];
  if (steps !== undefined) {
    if (steps !== null && !isCount(steps)) return null;
    facts.steps = steps;
  }
  const summaries = o['summaries'];
  if (summaries !== undefined) {
    if (!Array.isArray(summaries)) return null;
    facts.summaries = [];
    for (const s of summaries) {
      if (!Array.isArray(s) || s.length !== 2 || typeof s[0] !== 'string' || !isCount(s[1])) return null;
      facts.summaries.push([s[0], s[1]]);
    }
  }
  return facts;
}
