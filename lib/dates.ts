// Calendar dates as YYYY-MM-DD strings; arithmetic in UTC so no local zone leaks in.

export function addDays(date: string, days: number): string {
  const t = Date.parse(date + 'T00:00:00Z') + days * 86_400_000;
  return new Date(t).toISOString().slice(0, 10);
}

/** Dates from `first` to `last`, both included (empty when first > last). */
export function* dateRange(first: string, last: string): Generator<string> {
  for (let d = first; d <= last; d = addDays(d, 1)) yield d;
}

export function daysInclusive(first: string, last: string): number {
  if (first > last) return 0;
  return Math.round((Date.parse(last + 'T00:00:00Z') - Date.parse(first + 'T00:00:00Z')) / 86_400_000) + 1;
}

/** Today's calendar date in an IANA zone. */
export function todayIn(zone: string, now: number = Date.now()): string {
  // en-CA formats as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(now));
}

export function yesterdayIn(zone: string, now: number = Date.now()): string {
  return addDays(todayIn(zone, now), -1);
}

export const minDate = (a: string, b: string): string => (a < b ? a : b);
export const maxDate = (a: string, b: string): string => (a > b ? a : b);

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A real calendar date written YYYY-MM-DD. */
export function isValidDate(value: string): boolean {
  if (!DATE.test(value)) return false;
  const d = new Date(value + 'T00:00:00Z');
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === value;
}

/** A time zone name this runtime's Intl knows (IANA). */
export function isValidZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
