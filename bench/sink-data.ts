// Deterministic records for the sink bench and tests: the shapes the transforms produce.
import type { ActivityRecord, IntradayRecord } from '../lib/schema.js';

export interface IntradayShape {
  users: number;
  days: number;
  /** Points per user-day (1440 = one day of 1-minute steps). */
  points: number;
  /** First local date, YYYY-MM-DD (UTC zone, so local date = UTC date). */
  start?: string;
  humanIdPrefix?: string;
  updatedAt?: number;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

function addDays(date: string, days: number): string {
  const ms = Date.parse(`${date}T00:00:00Z`) + days * 86_400_000;
  return new Date(ms).toISOString().slice(0, 10);
}

/** One day of 1-minute steps per user-day, user by user, as batches of `batchSize` records. */
export function* intradayBatches(shape: IntradayShape, batchSize = 10_000): Generator<IntradayRecord[]> {
  const start = shape.start ?? '2024-01-01';
  const updatedAt = shape.updatedAt ?? 1_704_153_600_000;
  let batch: IntradayRecord[] = [];
  for (let u = 0; u < shape.users; u++) {
    const humanId = `${shape.humanIdPrefix ?? 'h-'}${u}`;
    const userId = `2ABC${pad(u, 3)}`;
    for (let d = 0; d < shape.days; d++) {
      const date = addDays(start, d);
      const dayStart = Date.parse(`${date}T00:00:00Z`);
      for (let m = 0; m < shape.points; m++) {
        const hh = pad(Math.floor(m / 60));
        const mm = pad(m % 60);
        batch.push({
          date,
          id: `fitbit:${userId}:steps:${date}T${hh}:${mm}`,
          humanId,
          userId,
          source: 'fitbit',
          type: 'steps',
          timestamp: dayStart + m * 60_000,
          tzOffset: '+00:00',
          timeZone: 'UTC',
          value: (m * 7919) % 97 < 50 ? 0 : (m * 31) % 130,
          unit: 'count',
          interval: 60,
          level: null,
          mets: null,
          estimated: null,
          createdAt: updatedAt,
          updatedAt,
        });
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
  }
  if (batch.length > 0) yield batch;
}

export function intradayRecords(shape: IntradayShape): IntradayRecord[] {
  return [...intradayBatches(shape)].flat();
}

export async function* asAsync<T>(batches: Iterable<T>): AsyncGenerator<T> {
  for (const batch of batches) yield batch;
}

/** Activities with every nullable column null somewhere, unicode, and 64-bit ids and steps. */
export function activityRecords(): ActivityRecord[] {
  const base = Date.UTC(2024, 4, 6, 7, 30);
  const make = (i: number, over: Partial<ActivityRecord>): ActivityRecord => ({
    date: '2024-05-06',
    id: `fitbit-${1000 + i}`,
    humanId: 'h-1',
    userId: '2ABC3D',
    source: 'fitbit',
    type: 'running',
    startTime: base + i * 3_600_000,
    endTime: base + i * 3_600_000 + 1_800_000,
    tzOffset: '+02:00',
    timeZone: 'Europe/Berlin',
    duration: 1800,
    distance: 5012.5,
    steps: 6123,
    calories: 412.25,
    pace: 359.1,
    speed: 10.02,
    sourceData: '{"logType":"auto_detected"}',
    createdAt: 1_715_000_000_000 + i,
    updatedAt: 1_715_000_000_000 + i,
    ...over,
  });
  return [
    make(0, { id: 'fitbit-9223372036854775807' }),
    make(1, { id: 'fitbit-9223372036854775806', timeZone: null, distance: null, steps: null, calories: null, pace: null, speed: null }),
    make(2, { id: 'fitbit-18014398509481985', steps: 9_007_199_254_740_991, type: 'walking', sourceData: '{"name":"Spaziergang über die Brücke 🚶"}' }),
    make(3, { id: 'humanapi-5f1e-ü', humanId: 'Zoë 🏃', userId: 'ユーザー', source: 'garmin', type: 'cycling', date: '2024-05-07' }),
    make(4, { id: 'fitbit-4', humanId: 'h-2', date: '2024-05-06', startTime: Date.UTC(1969, 11, 31, 23, 0), endTime: Date.UTC(1970, 0, 1, 0, 0), duration: 3600 }),
  ];
}
