// Worker thread of the run report (report.ts): reads the local dates it is sent, one at a time
// (report-scan.ts), and answers each with its files' facts.
import { parentPort } from 'node:worker_threads';
import { EtlError, errorMessage } from '../lib/errors.js';
import type { ScanReply, ScanRequest } from './report-scan.js';
import { scanDate } from './report-scan.js';

const port = parentPort;
port?.on('message', (req: ScanRequest) => {
  scanDate(req.outDir, req.dataset, req.dateDir).then(
    (scanned) => port.postMessage({ ok: true, scanned } satisfies ScanReply),
    (err: unknown) => {
      const error = { message: errorMessage(err), context: err instanceof EtlError ? { ...err.context } : {} };
      port.postMessage({ ok: false, dateDir: req.dateDir, error } satisfies ScanReply);
    },
  );
});
