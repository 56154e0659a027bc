// `--out`: a local folder (the default) or s3://bucket/prefix. Any other scheme is a usage
// error, so `--out gs://…` can never quietly become a local folder named `gs:`.
import path from 'node:path';
import { EtlError } from '../../lib/errors.js';
import type { S3Location } from './s3.js';

export type OutputTarget = { kind: 'folder'; dir: string } | ({ kind: 's3' } & S3Location);

/** A scheme as URLs spell it; one letter is a Windows drive (C:\out), not a scheme. */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]+):/;

/** S3 bucket names: 3–63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function parseOutTarget(value: string, cwd = process.cwd()): OutputTarget {
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'folder', dir: path.resolve(cwd, value) };
  if (scheme === 'file') {
    let dir: string;
    try {
      dir = new URL(value).pathname;
    } catch {
      throw new EtlError('USAGE', `--out ${JSON.stringify(value)} is not a valid file:// URL`);
    }
    return { kind: 'folder', dir: decodeURIComponent(dir) };
  }
  if (scheme !== 's3') {
    throw new EtlError('USAGE', `--out takes a folder or s3://bucket/prefix; the scheme ${scheme}:// is not supported (${JSON.stringify(value)})`);
  }
  const rest = value.slice('s3://'.length);
  if (!value.slice(0, 5).toLowerCase().startsWith('s3://')) throw new EtlError('USAGE', `--out ${JSON.stringify(value)}: write s3://bucket/prefix`);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = (slash < 0 ? '' : rest.slice(slash + 1)).replace(/\/+$/, '');
  if (!BUCKET.test(bucket) || bucket.includes('..')) {
    throw new EtlError('USAGE', `--out ${JSON.stringify(value)}: "${bucket}" is not an S3 bucket name (3–63 characters: a-z, 0-9, dots, hyphens)`);
  }
  if (prefix !== '' && prefix.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new EtlError('USAGE', `--out ${JSON.stringify(value)}: the prefix must not hold empty, "." or ".." segments`);
  }
  if (/[?#\\\0]/.test(prefix)) throw new EtlError('USAGE', `--out ${JSON.stringify(value)}: the prefix must not hold ?, #, \\ or NUL`);
  return { kind: 's3', bucket, prefix };
}

/** The one string that names a target everywhere (RunConfig.outDir): a folder path, or s3://bucket/prefix. */
export function outLocation(target: OutputTarget): string {
  return target.kind === 'folder' ? target.dir : `s3://${target.bucket}${target.prefix ? '/' + target.prefix : ''}`;
}
