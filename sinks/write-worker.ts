// Worker thread of the write pool (pool.ts): runs writePartition (write-partition.ts) for each
// job the sink sends, exactly as the calling thread would, and answers with its result.
import { parentPort } from 'node:worker_threads';
import { EtlError, errorMessage } from '../lib/errors.js';
import type { WriteJob, WriteReply } from './pool.js';
import { writePartition } from './write-partition.js';

const port = parentPort;
port?.on('message', (job: WriteJob) => {
  writePartition(job).then(
    (written) => port.postMessage({ id: job.id, ok: true, ...written } satisfies WriteReply),
    (err: unknown) => {
      const error = err instanceof EtlError ? { code: err.code, message: err.message, context: { ...err.context } } : { code: 'SINK' as const, message: errorMessage(err), context: {} };
      port.postMessage({ id: job.id, ok: false, error } satisfies WriteReply);
    },
  );
});
