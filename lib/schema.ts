// The normalized records and the column layout of every dataset (../shared/CONTRACTS.md).
// Each dataset is declared once, as its column table: sinks encode from COLUMNS, and the
// record types transforms produce are derived from the same table, so a record and its file
// can never disagree about a column.

// 2: intraday gained `estimated` (nullable; files of version 1 read it as null).
export const SCHEMA_VERSION = 2;

/** UTC instant in milliseconds since the epoch (an integer). */
export type EpochMs = number;

export type ColumnType = 'string' | 'timestamp' | 'double' | 'int64' | 'int32' | 'boolean';

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  nullable: boolean;
  /** Physical unit, recorded in the file's key-value metadata. */
  unit?: string;
}

/** The value a column type holds in a record (int64 stays a JS number: counts, never ids). */
interface ColumnValue {
  string: string;
  timestamp: EpochMs;
  double: number;
  int64: number;
  int32: number;
  boolean: boolean;
}

/** Marks (in types only) a string column whose values come from a vocabulary. */
declare const VOCABULARY: unique symbol;

/** A column spec that keeps its name, type and nullability in its type, so records can be derived from it. */
interface Column<N extends string = string, T extends ColumnType = ColumnType, Nl extends boolean = boolean> extends ColumnSpec {
  readonly name: N;
  readonly type: T;
  readonly nullable: Nl;
}

function c<const N extends string, const T extends ColumnType, const Nl extends boolean = false>(name: N, type: T, nullable?: Nl, unit?: string): Column<N, T, Nl> {
  const spec = { name, type, nullable: (nullable ?? false) as Nl };
  return unit === undefined ? spec : { ...spec, unit };
}

/** A string column whose values are one of V (the files still hold plain strings). */
const oneOf = <V extends string>() => <C extends Column<string, 'string'>>(column: C): C & { readonly [VOCABULARY]?: V } => column;

export type IntradayType = 'steps' | 'calories' | 'distance' | 'elevation' | 'floors' | 'swimming-strokes';
export const INTRADAY_TYPES: readonly IntradayType[] = ['steps', 'calories', 'distance', 'elevation', 'floors', 'swimming-strokes'];
/**
 * Every `type` an intraday row can have: the Fitbit resources above (IntradayType), and the
 * Google Health types that have no Fitbit twin (`active-calories` has no basal burn, so it is
 * not `calories`; `heart-rate` in bpm).
 */
export type IntradayRowType = IntradayType | 'active-calories' | 'heart-rate';
export const INTRADAY_ROW_TYPES: readonly IntradayRowType[] = [...INTRADAY_TYPES, 'active-calories', 'heart-rate'];

/** Every dataset's first columns: the row's id (unique in its partition) and whose row it is. */
const OWNER = [c('id', 'string'), c('humanId', 'string'), c('userId', 'string')] as const;
/** What an activity and a day add up to (activities, daily_summaries). */
const TOTALS = [c('distance', 'double', true, 'm'), c('steps', 'int64', true, 'count'), c('calories', 'double', true, 'kcal')] as const;
/** A day's minutes at each activity intensity, most intense first (daily_summaries). */
const INTENSITY_MINUTES = (['vigorous', 'moderate', 'light', 'sedentary'] as const).map((name) => c(name, 'double', true, 'min'));
/** Every dataset's last columns: when the row was first written and last changed. */
const STAMPS = [c('createdAt', 'timestamp', false, 'ms UTC'), c('updatedAt', 'timestamp', false, 'ms UTC')] as const;

/**
 * Every dataset, declared once: its columns in file order. The record types below are derived
 * from this table, so a column added here is a field every transform must fill.
 */
const TABLE = {
  activities: [
    ...OWNER,
    c('source', 'string'),
    c('type', 'string'),
    c('startTime', 'timestamp', false, 'ms UTC'),
    c('endTime', 'timestamp', false, 'ms UTC'),
    c('tzOffset', 'string'),
    c('timeZone', 'string', true),
    c('duration', 'double', false, 's'),
    ...TOTALS,
    c('pace', 'double', true, 's/km'),
    c('speed', 'double', true, 'km/h'),
    c('sourceData', 'string'),
    ...STAMPS,
  ],
  intraday: [
    ...OWNER,
    c('source', 'string'),
    oneOf<IntradayRowType>()(c('type', 'string')),
    c('timestamp', 'timestamp', false, 'ms UTC'),
    c('tzOffset', 'string'),
    c('timeZone', 'string'),
    c('value', 'double'),
    c('unit', 'string'),
    c('interval', 'int32', false, 's'),
    c('level', 'int32', true),
    c('mets', 'double', true),
    // Calories only: true on a day whose calories are a flat BMR estimate (no tracker data).
    c('estimated', 'boolean', true),
    ...STAMPS,
  ],
  daily_summaries: [
    ...OWNER,
    c('source', 'string'),
    c('duration', 'double', true, 's'),
    ...TOTALS,
    ...INTENSITY_MINUTES,
    c('sourceData', 'string'),
    ...STAMPS,
  ],
  readings: [
    ...OWNER,
    c('type', 'string'),
    c('timestamp', 'timestamp', false, 'ms UTC'),
    c('tzOffset', 'string', true),
    c('value', 'double', true),
    c('unit', 'string', true),
    c('source', 'string'),
    c('sourceData', 'string'),
    ...STAMPS,
  ],
} as const;

export type Dataset = keyof typeof TABLE;
export const DATASETS: readonly Dataset[] = ['activities', 'intraday', 'daily_summaries', 'readings'];

export const COLUMNS: { readonly [D in Dataset]: readonly ColumnSpec[] } = TABLE;

/** What one column holds in a record: its vocabulary or its type's value, null when nullable. */
type FieldOf<C> = C extends Column<string, infer T, infer Nl>
  ? (C extends { readonly [VOCABULARY]?: infer V } ? (unknown extends V ? ColumnValue[T] : V) : ColumnValue[T]) | (Nl extends true ? null : never)
  : never;

/**
 * The record of a dataset: one field per column, plus its partition. `date` is the user's
 * local calendar date (YYYY-MM-DD) and the user partition is `humanId`; `date` is not a column
 * in the files.
 */
export type RecordOf<D extends Dataset> = { date: string } & { -readonly [C in (typeof TABLE)[D][number] as C['name']]: FieldOf<C> };

export type ActivityRecord = RecordOf<'activities'>;
export type IntradayRecord = RecordOf<'intraday'>;
export type DailySummaryRecord = RecordOf<'daily_summaries'>;
export type ReadingRecord = RecordOf<'readings'>;

/** What every dataset's record has: its partition, its id and its times. */
export type PartitionedRecord = Pick<RecordOf<Dataset>, 'date' | 'id' | 'humanId' | 'updatedAt' | 'createdAt'>;

export interface DatasetRecords {
  activities: ActivityRecord;
  intraday: IntradayRecord;
  daily_summaries: DailySummaryRecord;
  readings: ReadingRecord;
}
export type AnyRecord = DatasetRecords[Dataset];

/** A column of dataset D, by name (checked against its record type). */
type ColumnOf<D extends Dataset> = keyof DatasetRecords[D] & string;

/**
 * How each dataset's files are ordered: rows sorted by `sortBy` (ids are unique within a
 * partition, so the order is total), and `timeColumn` (the first sort key, numeric, so Parquet's
 * order and ours agree) declared as the files' sort order; null when the rows have no time.
 */
export const DATASET_ORDER: { readonly [D in Dataset]: { readonly timeColumn: ColumnOf<D> | null; readonly sortBy: readonly ColumnOf<D>[] } } = {
  activities: { timeColumn: 'startTime', sortBy: ['startTime', 'id'] },
  intraday: { timeColumn: 'timestamp', sortBy: ['timestamp', 'type', 'id'] },
  daily_summaries: { timeColumn: null, sortBy: ['id'] },
  readings: { timeColumn: 'timestamp', sortBy: ['timestamp', 'id'] },
};

/** A record that could not be normalized or placed; written to <out>/_dead_letter/. */
export interface DeadLetter {
  dataset: Dataset;
  reason: string;
  /** Where it came from: stream, user, URL without credentials, page. */
  context: Record<string, string | number>;
  raw: unknown;
}
