// Partition paths: <dataset>/date=YYYY-MM-DD/user=<escaped humanId>.
// Values are percent-encoded outside [A-Za-z0-9._-], so a value can never add a path
// separator or climb out of the output root; values that cannot name a user at all
// (empty, control characters, unpaired surrogates, too long) are rejected.
import { EtlError } from '../lib/errors.js';
import type { Dataset } from '../lib/schema.js';
import { DATASETS } from '../lib/schema.js';

/** Longest escaped value we accept: leaves room for `user=` within NAME_MAX (255 bytes). */
const MAX_ESCAPED_LENGTH = 200;
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** Throws EtlError('PARTITION') unless `date` is a real calendar date written YYYY-MM-DD. */
export function validateDate(date: unknown): string {
  if (typeof date !== 'string') {
    throw new EtlError('PARTITION', `partition date must be a string YYYY-MM-DD, got ${typeof date}`, { date: String(date) });
  }
  const m = DATE_RE.exec(date);
  if (m) {
    const year = Number(m[1]);
    const month = Number(m[2]);
    const day = Number(m[3]);
    const probe = new Date(Date.UTC(year, month - 1, day));
    if (month >= 1 && month <= 12 && day >= 1 && probe.getUTCFullYear() === year && probe.getUTCMonth() === month - 1 && probe.getUTCDate() === day) {
      return date;
    }
  }
  throw new EtlError('PARTITION', `partition date ${JSON.stringify(date.slice(0, 40))} is not a calendar date written YYYY-MM-DD`, { date: date.slice(0, 40) });
}

/**
 * Percent-encodes every UTF-8 byte outside [A-Za-z0-9._-]. Throws EtlError('PARTITION')
 * for values that cannot be placed: not a string, empty, control characters (NUL included),
 * unpaired surrogates, or longer than 200 characters once escaped.
 */
export function escapePartitionValue(value: unknown, what = 'user'): string {
  if (typeof value !== 'string') {
    throw new EtlError('PARTITION', `${what} partition value must be a string, got ${typeof value}`, { partition: what });
  }
  if (value.length === 0) {
    throw new EtlError('PARTITION', `${what} partition value is empty; every record needs a ${what} to be placed`, { partition: what });
  }
  if (CONTROL_RE.test(value)) {
    throw new EtlError('PARTITION', `${what} partition value contains a control character (NUL included); fix the ${what} id at its source`, {
      partition: what,
      value: JSON.stringify(value).slice(0, 80),
    });
  }
  let escaped: string;
  try {
    // encodeURIComponent leaves !'()*~ alone; the contract allows only [A-Za-z0-9._-].
    escaped = encodeURIComponent(value).replace(/[!'()*~]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase());
  } catch {
    throw new EtlError('PARTITION', `${what} partition value is not valid Unicode (unpaired surrogate)`, { partition: what });
  }
  // "." and ".." are directory names with a meaning of their own: never use them bare.
  if (/^\.+$/.test(escaped)) escaped = escaped.replace(/\./g, '%2E');
  if (escaped.length > MAX_ESCAPED_LENGTH) {
    throw new EtlError('PARTITION', `${what} partition value is too long (${escaped.length} characters escaped, at most ${MAX_ESCAPED_LENGTH})`, {
      partition: what,
      value: value.slice(0, 40),
    });
  }
  return escaped;
}

/** Reverses escapePartitionValue (for readers that want the humanId back from a path). */
export function unescapePartitionValue(escaped: string): string {
  return decodeURIComponent(escaped);
}

export function assertDataset(dataset: unknown): Dataset {
  if (typeof dataset === 'string' && (DATASETS as readonly string[]).includes(dataset)) return dataset as Dataset;
  throw new EtlError('USAGE', `unknown dataset ${JSON.stringify(dataset)}; expected one of ${DATASETS.join(', ')}`);
}

/**
 * The partition folder of a record, relative to the output root, always with '/' separators:
 * `<dataset>/date=YYYY-MM-DD/user=<escaped user>`.
 */
export function partitionPath(dataset: Dataset, date: string, user: string): string {
  return `${assertDataset(dataset)}/date=${validateDate(date)}/user=${escapePartitionValue(user)}`;
}
