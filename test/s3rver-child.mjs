// s3rver in its own process for test/s3.ts: its continuation tokens use DES, which Node 20 has
// only with --openssl-legacy-provider, a flag the test process itself should not run with.
// Prints {"port": N} once listening; exits when its stdin closes (the test process is gone).
import S3rver from 's3rver';

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name })),
});
const address = await server.run();
process.stdout.write(JSON.stringify({ port: address.port }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
