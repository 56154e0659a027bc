// A test S3 for one test file: s3rver in a child process (test/s3rver-child.mjs) behind a
// loopback proxy that gives it the guarantees of S3 that s3rver lacks, and injects faults.
//
// What the proxy changes, and why (measured on Node 20 + AWS SDK v3, issue #17):
// - s3rver writes a PUT's body into the object as it arrives, so a PUT is visible while it is
//   being written and stays partial if the client dies. S3 makes a PUT visible only once it is
//   complete. The proxy reads each request body whole and forwards it only then; a client that
//   dies mid-body is never forwarded (`dropped` counts them). Tests that rely on "a PUT appears
//   whole or not at all" rely on this, and say so.
// - s3rver has no AbortMultipartUpload (it answers MethodNotAllowed). The proxy answers it as S3
//   does (204), records the upload id in `aborted`, and fails a later Complete of that upload
//   with NoSuchUpload, as S3 would.
// - Faults: `fail(match, status, code, times)` answers matching requests with an S3 error body
//   (500 InternalError, 503 SlowDown, …) before they reach s3rver.
// Clients need path-style addressing (forcePathStyle; an endpoint set means path-style in
// s3ClientFromEnv). Bodies go as Buffers, so s3rver never stores chunk-framed streams.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventEmitter } from 'node:events';

export interface SeenRequest {
  method: string;
  /** Path without the query: /bucket/key */
  path: string;
  query: URLSearchParams;
  status: number;
  /** Body bytes the proxy received. */
  bytes: number;
}

export interface Fault {
  match: (method: string, path: string, query: URLSearchParams) => boolean;
  status: number;
  code: string;
  /** How many matching requests fail; Infinity for all. */
  times: number;
}

export interface TestS3 {
  /** The proxy's URL: give it to clients as AWS_ENDPOINT_URL. */
  endpoint: string;
  bucket: string;
  /** AWS variables for s3ClientFromEnv. */
  env: NodeJS.ProcessEnv;
  seen: SeenRequest[];
  aborted: string[];
  /** Requests whose client went away before their body was complete (never forwarded). */
  dropped: number;
  /** 'body' (path, bytes so far) while a request body arrives; 'stalled' when a stall holds it. */
  events: EventEmitter;
  fail(match: Fault['match'], status: number, code: string, times?: number): void;
  /** Stops reading matching request bodies after `bytes` (the client hangs) until clearFaults(). */
  stallAfter(match: Fault['match'], bytes: number): void;
  clearFaults(): void;
  close(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./s3rver-child.mjs', import.meta.url));

function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>test</RequestId></Error>`;
}

export async function startTestS3(bucket = 'etl-test'): Promise<TestS3> {
  const dir = await mkdtemp(join(tmpdir(), 's3rver-'));
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', CHILD, dir, bucket], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const line = text.split('\n')[0];
      if (text.includes('\n') && line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}`)));
  });

  const faults: Fault[] = [];
  const stalls: Array<{ match: Fault['match']; bytes: number }> = [];
  const abortedUploads = new Set<string>();
  const stalled: http.IncomingMessage[] = [];
  const released = new WeakSet<http.IncomingMessage>();
  const events = new EventEmitter();
  const state: Pick<TestS3, 'seen' | 'aborted' | 'dropped'> = { seen: [], aborted: [], dropped: 0 };

  const proxy = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    let bytes = 0;
    const stall = stalls.find((s) => s.match(method, url.pathname, url.searchParams));
    let complete = false;
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      events.emit('body', url.pathname, bytes);
      if (stall && bytes >= stall.bytes && !stalled.includes(req) && !released.has(req)) {
        // Paused, the socket is not read either: the client hangs mid-body until clearFaults().
        req.pause();
        stalled.push(req);
        events.emit('stalled', url.pathname, bytes);
      }
    });
    req.on('end', () => {
      complete = true;
      const body = Buffer.concat(chunks);
      const record = (status: number): void => void state.seen.push({ method, path: url.pathname, query: url.searchParams, status, bytes });
      const fault = faults.find((f) => f.times > 0 && f.match(method, url.pathname, url.searchParams));
      if (fault) {
        fault.times--;
        record(fault.status);
        res.writeHead(fault.status, { 'content-type': 'application/xml' }).end(errorXml(fault.code, 'injected by the test'));
        return;
      }
      const uploadId = url.searchParams.get('uploadId');
      if (method === 'DELETE' && uploadId !== null) {
        abortedUploads.add(uploadId);
        state.aborted.push(uploadId);
        record(204);
        res.writeHead(204).end();
        return;
      }
      if (uploadId !== null && abortedUploads.has(uploadId)) {
        record(404);
        res.writeHead(404, { 'content-type': 'application/xml' }).end(errorXml('NoSuchUpload', 'The specified upload does not exist.'));
        return;
      }
      const forward = http.request(
        { host: '127.0.0.1', port, method, path: req.url, headers: { ...req.headers, 'content-length': String(body.length) } },
        (answer) => {
          record(answer.statusCode ?? 0);
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', (err) => res.destroy(err));
      forward.end(body);
    });
    req.on('close', () => {
      if (!complete) state.dropped++;
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

  return {
    endpoint,
    bucket,
    env: { AWS_ENDPOINT_URL: endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
    get seen() {
      return state.seen;
    },
    get aborted() {
      return state.aborted;
    },
    get dropped() {
      return state.dropped;
    },
    events,
    fail(match, status, code, times = 1) {
      faults.push({ match, status, code, times });
    },
    stallAfter(match, bytes) {
      stalls.push({ match, bytes });
    },
    clearFaults() {
      faults.length = 0;
      stalls.length = 0;
      for (const req of stalled.splice(0)) {
        released.add(req);
        req.resume();
      }
    },
    async close() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin!.end();
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Matches requests on one key (path-style: /bucket/key; the SDK escapes `=` and the like), optionally one method and query word. */
export function on(bucket: string, key: string, method?: string, queryWord?: string): Fault['match'] {
  return (m, path, query) => decodeURIComponent(path) === `/${bucket}/${key}` && (method === undefined || m === method) && (queryWord === undefined || query.has(queryWord));
}
