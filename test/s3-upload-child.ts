// Run by test/s3-store.test.ts and killed with SIGKILL mid-upload: puts one object of
// `bytes` pseudo-random bytes through S3Store (endpoint and keys from the environment).
import { S3Store, s3ClientFromEnv } from '../sinks/object-store/s3.js';

const [bucket, key, size, threshold] = process.argv.slice(2) as [string, string, string, string];
const store = new S3Store({
  client: s3ClientFromEnv(process.env),
  bucket,
  prefix: 'out',
  partBytes: 5 * 1024 * 1024,
  multipartThresholdBytes: Number(threshold),
  partConcurrency: 1,
});
const data = Buffer.alloc(Number(size));
for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
await store.put(key, data);
process.stdout.write('done\n');
