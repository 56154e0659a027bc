// The normalized records and the column layout of every dataset (../shared/CONTRACTS.md).
// Sinks encode from COLUMNS; transforms produce the record types. One place for both so
// that Parquet and Arrow files can never disagree about a column.

// 2: intraday gained `estimated` (nullable; files of version 1 read it as null).
export const SCHEMA_VERSION = 2;

export type Dataset = 'activities' | 'intraday' | 'daily_summaries' | 'readings';
export const DATASETS: readonly Dataset[] = ['activities', 'intraday', 'daily_summaries', 'readings'];

/** UTC instant in milliseconds since the epoch (an integer). */
export type EpochMs = number;

/**
 * Every record carries its partition: `date` is the user's local calendar date
 * (YYYY-MM-DD) and the user partition is `humanId`. `date` is not a column in the files.
 */
export interface PartitionedRecord {
  date: string;
  id: string;
  humanId: string;
  updatedAt: EpochMs;
  createdAt: EpochMs;
}

export interface ActivityRecord extends PartitionedRecord {
  userId: string;
  source: string;
  type: string;
  startTime: EpochMs;
  endTime: EpochMs;
  tzOffset: string;
  timeZone: string | null;
  duration: number;
  distance: number | null;
  steps: number | null;
  calories: number | null;
  pace: number | null;
  speed: number | null;
  sourceData: string;
}

export type IntradayType = 'steps' | 'calories' | 'distance' | 'elevation' | 'floors' | 'swimming-strokes';
export const INTRADAY_TYPES: readonly IntradayType[] = ['steps', 'calories', 'distance', 'elevation', 'floors', 'swimming-strokes'];
/**
 * Every `type` an intraday row can have: the Fitbit resources above (IntradayType), and the
 * Google Health types that have no Fitbit twin (`active-calories` has no basal burn, so it is
 * not `calories`; `heart-rate` in bpm).
 */
export type IntradayRowType = IntradayType | 'active-calories' | 'heart-rate';
export const INTRADAY_ROW_TYPES: readonly IntradayRowType[] = [...INTRADAY_TYPES, 'active-calories', 'heart-rate'];

export interface IntradayRecord extends PartitionedRecord {
  userId: string;
  source: string;
  type: IntradayRowType;
  timestamp: EpochMs;
  tzOffset: string;
  timeZone: string;
  value: number;
  unit: string;
  interval: number;
  level: number | null;
  mets: number | null;
  /** Calories only: true on a day whose calories are a flat BMR estimate (no tracker data). */
  estimated: boolean | null;
}

export interface DailySummaryRecord extends PartitionedRecord {
  userId: string;
  source: string;
  duration: number | null;
  distance: number | null;
  steps: number | null;
  calories: number | null;
  vigorous: number | null;
  moderate: number | null;
  light: number | null;
  sedentary: number | null;
  sourceData: string;
}

export interface ReadingRecord extends PartitionedRecord {
  userId: string;
  type: string;
  timestamp: EpochMs;
  tzOffset: string | null;
  value: number | null;
  unit: string | null;
  source: string;
  sourceData: string;
}

export interface DatasetRecords {
  activities: ActivityRecord;
  intraday: IntradayRecord;
  daily_summaries: DailySummaryRecord;
  readings: ReadingRecord;
}
export type AnyRecord = DatasetRecords[Dataset];

export type ColumnType = 'string' | 'timestamp' | 'double' | 'int64' | 'int32' | 'boolean';

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  nullable: boolean;
  /** Physical unit, recorded in the file's key-value metadata. */
  unit?: string;
}

const c = (name: string, type: ColumnType, nullable = false, unit?: string): ColumnSpec =>
  unit === undefined ? { name, type, nullable } : { name, type, nullable, unit };

export const COLUMNS: { readonly [D in Dataset]: readonly ColumnSpec[] } = {
  activities: [
    c('id', 'string'),
    c('humanId', 'string'),
    c('userId', 'string'),
    c('source', 'string'),
    c('type', 'string'),
    c('startTime', 'timestamp', false, 'ms UTC'),
    c('endTime', 'timestamp', false, 'ms UTC'),
    c('tzOffset', 'string'),
    c('timeZone', 'string', true),
    c('duration', 'double', false, 's'),
    c('distance', 'double', true, 'm'),
    c('steps', 'int64', true, 'count'),
    c('calories', 'double', true, 'kcal'),
    c('pace', 'double', true, 's/km'),
    c('speed', 'double', true, 'km/h'),
    c('sourceData', 'string'),
    c('createdAt', 'timestamp', false, 'ms UTC'),
    c('updatedAt', 'timestamp', false, 'ms UTC'),
  ],
  intraday: [
    c('id', 'string'),
    c('humanId', 'string'),
    c('userId', 'string'),
    c('source', 'string'),
    c('type', 'string'),
    c('timestamp', 'timestamp', false, 'ms UTC'),
    c('tzOffset', 'string'),
    c('timeZone', 'string'),
    c('value', 'double'),
    c('unit', 'string'),
    c('interval', 'int32', false, 's'),
    c('level', 'int32', true),
    c('mets', 'double', true),
    c('estimated', 'boolean', true),
    c('createdAt', 'timestamp', false, 'ms UTC'),
    c('updatedAt', 'timestamp', false, 'ms UTC'),
  ],
  daily_summaries: [
    c('id', 'string'),
    c('humanId', 'string'),
    c('userId', 'string'),
    c('source', 'string'),
    c('duration', 'double', true, 's'),
    c('distance', 'double', true, 'm'),
    c('steps', 'int64', true, 'count'),
    c('calories', 'double', true, 'kcal'),
    c('vigorous', 'double', true, 'min'),
    c('moderate', 'double', true, 'min'),
    c('light', 'double', true, 'min'),
    c('sedentary', 'double', true, 'min'),
    c('sourceData', 'string'),
    c('createdAt', 'timestamp', false, 'ms UTC'),
    c('updatedAt', 'timestamp', false, 'ms UTC'),
  ],
  readings: [
    c('id', 'string'),
    c('humanId', 'string'),
    c('userId', 'string'),
    c('type', 'string'),
    c('timestamp', 'timestamp', false, 'ms UTC'),
    c('tzOffset', 'string', true),
    c('value', 'double', true),
    c('unit', 'string', true),
    c('source', 'string'),
    c('sourceData', 'string'),
    c('createdAt', 'timestamp', false, 'ms UTC'),
    c('updatedAt', 'timestamp', false, 'ms UTC'),
  ],
};

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
