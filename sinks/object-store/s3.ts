// The output root as an S3-compatible bucket (AWS SDK v3). Objects appear whole: a body up to
// the multipart threshold goes in one PUT (S3 makes a PUT visible only once it is complete); a
// larger one goes as a multipart upload that is completed only when every part is in, and
// aborted when any part fails, so a failed or killed upload never leaves a visible object.
// Every request is retried with backoff on 5xx, throttling (SlowDown, 503, 429), timeouts and
// dropped connections. Bodies are sent as Buffers, part by part for large files, so memory stays
// bounded by the part size × the parts in flight.
import { createWriteStream } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { EtlError, errorMessage } from '../../lib/errors.js';
import { backoffDelay, sleep, type RetryPolicy } from '../../lib/http.js';
import type { Staging, StagedFile } from './staging.js';
import { bodyParts, bodySize, checkKey, checkPrefix, type LocalCopy, type ObjectBody, type ObjectInfo, type ObjectStore } from './store.js';

/** S3 refuses parts under 5 MiB (all but the last). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const DEFAULT_PART_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MULTIPART_THRESHOLD = 16 * 1024 * 1024;
export const S3_RETRY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 200, maxDelayMs: 20_000, timeoutMs: 120_000 };

export interface S3Location {
  bucket: string;
  /** No leading or trailing `/`; '' for the bucket's root. */
  prefix: string;
}

export interface S3StoreOptions extends S3Location {
  client: S3Client;
  retry?: RetryPolicy;
  /** Bodies larger than this go as multipart uploads (default 16 MiB). */
  multipartThresholdBytes?: number;
  /** Part size of multipart uploads (default 8 MiB, at least 5 MiB). */
  partBytes?: number;
  /** Parts uploaded at once (default 2). */
  partConcurrency?: number;
  /** Keys per listing page (default: the server's, 1,000 on S3). */
  listPageSize?: number;
  /** Where `open` downloads an object that a reader needs as a file. */
  staging?: Staging;
  random?: () => number;
  /** Told about each retry (for logs); never given credentials. */
  onRetry?: (what: string, attempt: number, delayMs: number, reason: string) => void;
}

export interface S3StoreStats {
  requests: number;
  retries: number;
  /** Multipart uploads aborted after a failure. */
  aborted: number;
}

/**
 * An S3 client from the standard AWS variables: AWS_REGION (else AWS_DEFAULT_REGION, else
 * us-east-1), AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for S3-compatible services (then
 * path-style addressing, which MinIO, Ceph and most others need), AWS_ACCESS_KEY_ID +
 * AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); without keys, the SDK's own chain (profile,
 * web identity under Kubernetes, instance role). The SDK's retries are off: the store retries.
 */
export function s3ClientFromEnv(env: NodeJS.ProcessEnv): S3Client {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  if (endpoint !== undefined) {
    let ok = false;
    try {
      const u = new URL(endpoint);
      ok = u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      ok = false;
    }
    if (!ok) throw new EtlError('USAGE', `AWS_ENDPOINT_URL(_S3) must be an http(s) URL, not ${JSON.stringify(endpoint)}`);
  }
  const keyId = env.AWS_ACCESS_KEY_ID;
  const secret = env.AWS_SECRET_ACCESS_KEY;
  if (Boolean(keyId) !== Boolean(secret)) throw new EtlError('USAGE', 'set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (then the AWS SDK looks for credentials itself)');
  return new S3Client({
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    ...(endpoint !== undefined ? { endpoint, forcePathStyle: true } : {}),
    ...(keyId && secret ? { credentials: { accessKeyId: keyId, secretAccessKey: secret, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) } } : {}),
    maxAttempts: 1,
  });
}

const THROTTLING = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'TooManyRequestsException', 'RequestLimitExceeded']);
const TRANSIENT = new Set(['InternalError', 'ServiceUnavailable', 'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'AbortError']);
const NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH']);

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $retryable?: unknown;
}

function shape(err: unknown): SdkErrorShape {
  return typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {};
}

function statusOf(err: unknown): number | undefined {
  const status = shape(err).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** 5xx, 429, throttling and timeout errors, dropped connections: worth another attempt. */
export function isRetryableS3Error(err: unknown): boolean {
  const e = shape(err);
  const status = statusOf(err);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (typeof e.name === 'string' && (THROTTLING.has(e.name) || TRANSIENT.has(e.name))) return true;
  if (typeof e.code === 'string' && NETWORK.has(e.code)) return true;
  return Boolean(e.$retryable);
}

function isNotFound(err: unknown): boolean {
  const name = shape(err).name;
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(err) === 404;
}

function describeS3Error(err: unknown): string {
  const status = statusOf(err);
  const name = shape(err).name;
  const label = typeof name === 'string' && name !== 'Error' ? `${name}: ` : '';
  return `${label}${errorMessage(err)}${status !== undefined ? ` (HTTP ${status})` : ''}`;
}

function contentType(key: string): string {
  if (key.endsWith('.parquet')) return 'application/vnd.apache.parquet';
  if (key.endsWith('.arrow')) return 'application/vnd.apache.arrow.file';
  if (key.endsWith('.json')) return 'application/json';
  if (key.endsWith('.jsonl')) return 'application/x-ndjson';
  if (key.endsWith('.html')) return 'text/html; charset=utf-8';
  return 'application/octet-stream';
}

export class S3Store implements ObjectStore {
  readonly location: string;
  readonly stats: S3StoreStats = { requests: 0, retries: 0, aborted: 0 };
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly retry: RetryPolicy;
  private readonly threshold: number;
  private readonly partBytes: number;
  private readonly partConcurrency: number;
  private readonly options: S3StoreOptions;

  constructor(options: S3StoreOptions) {
    this.options = options;
    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.location = `s3://${options.bucket}${options.prefix ? '/' + options.prefix : ''}`;
    this.retry = options.retry ?? S3_RETRY;
    this.partBytes = Math.max(MIN_PART_BYTES, options.partBytes ?? DEFAULT_PART_BYTES);
    this.threshold = Math.max(this.partBytes, options.multipartThresholdBytes ?? DEFAULT_MULTIPART_THRESHOLD);
    this.partConcurrency = Math.max(1, options.partConcurrency ?? 2);
  }

  private fullKey(key: string): string {
    checkKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private where(key: string): string {
    return `${this.location}/${key}`;
  }

  /** One request with retries; `op` must be repeatable (its body a Buffer, not a stream). */
  private async send<T>(what: string, key: string, op: (signal: AbortSignal) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.stats.requests++;
      try {
        return await op(AbortSignal.timeout(this.retry.timeoutMs));
      } catch (err) {
        if (!isRetryableS3Error(err) || attempt + 1 >= this.retry.maxAttempts) {
          throw new EtlError(
            'SINK',
            `could not ${what} ${this.where(key)}: ${describeS3Error(err)}${attempt > 0 ? ` after ${attempt + 1} attempts` : ''}`,
            { key, ...(statusOf(err) !== undefined ? { status: statusOf(err) as number } : {}) },
            { cause: err },
          );
        }
        const delay = backoffDelay(this.retry, attempt, this.options.random);
        this.stats.retries++;
        this.options.onRetry?.(what, attempt + 1, delay, describeS3Error(err));
        await sleep(delay);
      }
    }
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    const Key = this.fullKey(key);
    if ('file' in body) {
      const size = (await stat(body.file)).size;
      if (size <= this.threshold) await this.putOnce(key, Key, await readFile(body.file));
      else await this.multipart(key, Key, size, (offset, length) => readRange(body.file, offset, length));
      await rm(body.file, { force: true });
      return;
    }
    const parts = bodyParts(body);
    const size = bodySize(body);
    if (size <= this.threshold) {
      await this.putOnce(key, Key, parts.length === 1 ? Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, parts[0]!.byteLength) : Buffer.concat(parts));
      return;
    }
    const whole = parts.length === 1 ? Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, parts[0]!.byteLength) : Buffer.concat(parts);
    await this.multipart(key, Key, size, async (offset, length) => whole.subarray(offset, offset + length));
  }

  private async putOnce(key: string, Key: string, data: Buffer): Promise<void> {
    await this.send('write', key, (abortSignal) =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: data, ContentLength: data.byteLength, ContentType: contentType(key) }), { abortSignal }),
    );
  }

  private async multipart(key: string, Key: string, size: number, readPart: (offset: number, length: number) => Promise<Buffer>): Promise<void> {
    const started = await this.send('start a multipart upload of', key, (abortSignal) =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key, ContentType: contentType(key) }), { abortSignal }),
    );
    const UploadId = started.UploadId;
    if (!UploadId) throw new EtlError('SINK', `could not start a multipart upload of ${this.where(key)}: the server sent no upload id`, { key });
    const count = Math.ceil(size / this.partBytes);
    const etags: string[] = new Array<string>(count);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < count) {
        const index = next++;
        const offset = index * this.partBytes;
        const data = await readPart(offset, Math.min(this.partBytes, size - offset));
        const answer = await this.send(`upload part ${index + 1} of ${count} of`, key, (abortSignal) =>
          this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key, UploadId, PartNumber: index + 1, Body: data, ContentLength: data.byteLength }), { abortSignal }),
        );
        if (!answer.ETag) throw new EtlError('SINK', `could not upload part ${index + 1} of ${this.where(key)}: the server sent no ETag`, { key });
        etags[index] = answer.ETag;
      }
    };
    try {
      const workers = Array.from({ length: Math.min(this.partConcurrency, count) }, () =>
        worker().catch((err: unknown) => {
          failed = true;
          throw err;
        }),
      );
      const results = await Promise.allSettled(workers);
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (rejected) throw rejected.reason;
      await this.send('complete the multipart upload of', key, (abortSignal) =>
        this.client.send(
          new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
          { abortSignal },
        ),
      );
    } catch (err) {
      // Nothing became visible; abort so the parts stop costing storage. If even that fails, a
      // lifecycle rule (AbortIncompleteMultipartUpload) on the bucket removes them (README).
      try {
        await this.send('abort the multipart upload of', key, (abortSignal) => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId }), { abortSignal }));
        this.stats.aborted++;
      } catch (abortErr) {
        this.options.onRetry?.('abort the multipart upload of', 0, 0, describeS3Error(abortErr));
      }
      throw err;
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    const Key = this.fullKey(key);
    try {
      return await this.send('read', key, async (abortSignal) => {
        const answer = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }), { abortSignal });
        if (!answer.Body) throw new EtlError('SINK', `could not read ${this.where(key)}: the server sent no body`, { key });
        return answer.Body.transformToByteArray();
      });
    } catch (err) {
      if (err instanceof EtlError && isNotFound(err.cause)) return null;
      throw err;
    }
  }

  /**
   * Downloads an object into staging (bounded: waits for room) for a reader that needs a file,
   * streaming it to disk rather than through memory. Null when there is no such object.
   */
  async open(key: string): Promise<LocalCopy | null> {
    const staging = this.options.staging;
    if (!staging) throw new EtlError('SINK', `${this.location}: no staging folder to download ${key} into`, { key });
    const Key = this.fullKey(key);
    let size: number;
    try {
      const head = await this.send('look up', key, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }));
      size = head.ContentLength ?? 0;
    } catch (err) {
      if (err instanceof EtlError && isNotFound(err.cause)) return null;
      throw err;
    }
    const staged: StagedFile = await staging.reserve(size, key.slice(key.lastIndexOf('/') + 1));
    try {
      await this.send('download', key, async (abortSignal) => {
        const answer = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }), { abortSignal });
        if (!answer.Body) throw new EtlError('SINK', `could not read ${this.where(key)}: the server sent no body`, { key });
        await pipeline(answer.Body as Readable, createWriteStream(staged.path));
      });
      return staged;
    } catch (err) {
      await staged.release();
      if (err instanceof EtlError && isNotFound(err.cause)) return null;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    const root = this.prefix ? this.prefix + '/' : '';
    let token: string | undefined;
    do {
      const page = await this.send('list', prefix || '(root)', (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: root + prefix,
            ...(token ? { ContinuationToken: token } : {}),
            ...(this.options.listPageSize ? { MaxKeys: this.options.listPageSize } : {}),
          }),
          { abortSignal },
        ),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(root)) continue;
        yield { key: o.Key.slice(root.length), size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    const Key = this.fullKey(key);
    await this.send('delete', key, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }));
  }
}

async function readRange(file: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const data = Buffer.allocUnsafe(length);
    let at = 0;
    while (at < length) {
      const { bytesRead } = await handle.read(data, at, length - at, offset + at);
      if (bytesRead === 0) throw new EtlError('SINK', `${file} ended at ${offset + at} bytes while it was being uploaded (changed under the upload?)`, { path: file });
      at += bytesRead;
    }
    return data;
  } finally {
    await handle.close();
  }
}
