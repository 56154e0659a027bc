// Raw API records are validated once, at the source, record by record (valibot: chosen over
// zod by measured cost, bench/validation.ts). A record that fails is not an error for its page:
// it comes back as Rejected with a one-line reason, and the pipeline writes it as a dead letter.
import * as v from 'valibot';

export interface Accepted<T> {
  readonly ok: true;
  /** The record as validated: numbers read, absent fields undefined. */
  readonly value: T;
  /** The record as the API sent it (what a dead letter of it carries). */
  readonly raw: unknown;
}

export interface Rejected {
  readonly ok: false;
  /** One line: the path of the failing field and what was expected, e.g. `duration: expected a number ≥ 0, received -5`. */
  readonly reason: string;
  /** The record as the API sent it. */
  readonly raw: unknown;
}

export type Checked<T> = Accepted<T> | Rejected;

export function rejected(reason: string, raw: unknown): Rejected {
  return { ok: false, reason, raw };
}

/** The first issue as one line: where, and what was expected there. */
export function issueReason(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0]!;
  const path = v.getDotPath(issue) ?? '';
  const where = path === '' ? 'record' : path;
  if (issue.kind === 'schema' && issue.received === 'undefined') return `${where} is missing`;
  // The schemas give what they expect as the message; valibot's own messages start "Invalid ".
  const expected = !issue.message.startsWith('Invalid ') ? issue.message : (issue.expected ?? issue.message);
  return `${where}: expected ${expected}, received ${issue.received}`;
}

/** A value as a reason shows it, the way valibot's issues do: text quoted, objects by kind. */
export function received(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'Array' : 'Object';
}

/** A function that validates one record against `schema`, never throwing for bad data. */
export function checker<S extends v.GenericSchema>(schema: S): (raw: unknown) => Checked<v.InferOutput<S>> {
  // abortEarly: the first issue is the reason; reading on would only cost time.
  const config = { abortEarly: true } as const;
  return (raw) => {
    // Arrays pass valibot's object check; a record is never one.
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return rejected(`record: expected a JSON object, received ${received(raw)}`, raw);
    const result = v.safeParse(schema, raw, config);
    return result.success ? { ok: true, value: result.output, raw } : rejected(issueReason(result.issues), raw);
  };
}

// Pieces the sources' schemas share.

/** Numeric text: what `numberish` reads as a number. */
export const NUMERIC_TEXT = /^\s*-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/** A finite number, or numeric text (some endpoints send numbers as strings), as a number. */
export const numberish = v.union(
  [v.pipe(v.number(), v.finite('a finite number')), v.pipe(v.string(), v.regex(NUMERIC_TEXT, 'a number'), v.transform(Number))],
  'a number',
);

/** A number ≥ 0 (durations). */
export const nonNegative = v.pipe(numberish, v.minValue(0, 'a number ≥ 0'));

/** A whole number ≥ 0 (counts). */
export const count = v.pipe(numberish, v.integer('a whole number ≥ 0'), v.minValue(0, 'a whole number ≥ 0'));

/** A string that is not blank (ids). */
export const nonBlank = v.pipe(v.string(), v.check((s) => s.trim() !== '', 'a non-empty string'));

const ABSENT = v.pipe(v.union([v.undefined(), v.null(), v.literal('')]), v.transform(() => undefined));

/**
 * An optional field: absent, null or "" all mean "not given" (the APIs send each) and become
 * undefined; anything else must match `schema`. `expected` says what, for the reason. The
 * schema is tried first: a field that is there is the common case, and a failed branch costs
 * an issue object (bench/validation.ts).
 */
export function absentOr<S extends v.GenericSchema>(schema: S, expected: string) {
  return v.optional(v.union([schema, ABSENT], expected));
}

/** Optional text: absent, null or "" become undefined. */
export const optionalText = v.optional(
  v.union([v.pipe(v.string(), v.transform((s) => (s === '' ? undefined : s))), v.pipe(v.null(), v.transform(() => undefined))], 'a string'),
);
