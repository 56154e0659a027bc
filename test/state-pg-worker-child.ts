// One worker for test/state-pg-workers.test.ts: joins the round, and for each user it claims,
// rotates the user's tokens through the test's token endpoint (as a 401 expired_token would),
// takes requests from the shared budget, writes the user's object to the bucket and moves its
// watermark. Prints "claimed <user>" as it goes so the test can kill it mid-run.
import { PgState, UserLeases, workLeased } from '../pipelines/state/index.js';
import { S3Store, s3ClientFromEnv } from '../sinks/object-store/s3.js';
import { userObject } from './state-pg-workers.js';

const [url, worker, tokenUrl, usersText] = process.argv.slice(2) as [string, string, string, string];
const users = usersText.split(',');
const db = await PgState.open({ url, cipher: null });
const store = new S3Store({ client: s3ClientFromEnv(process.env), bucket: 'etl-test', prefix: 'out', partBytes: 5 * 1024 * 1024, multipartThresholdBytes: 5 * 1024 * 1024 });
const leases = new UserLeases(db, worker, { ttlMs: 1_500, pollMs: 200 });
const round = await leases.join('fitbit-intraday|users.json|2026-01-01..2026-01-07', users);
const options = { limit: 150, jitterMs: [0, 0] as [number, number] };
const result = await workLeased(leases, round, { concurrency: 2 }, async (user, signal) => {
  process.stdout.write(`claimed ${user}\n`);
  const stale = (await db.tokens('fitbit', user))!.accessToken;
  await db.rotate('fitbit', user, stale, async (refreshToken) => {
    const answer = await fetch(tokenUrl, { method: 'POST', body: JSON.stringify({ user, refreshToken, worker }) });
    if (!answer.ok) throw new Error(`token endpoint: ${answer.status} ${await answer.text()}`);
    return (await answer.json()) as { accessToken: string; refreshToken: string };
  });
  for (let i = 0; i < 3; i++) {
    const wait = await db.reserve('fitbit', user, options);
    if (wait > 0) throw new Error(`user ${user}: over budget`);
  }
  await new Promise((r) => setTimeout(r, 150)); // the API's latency: room for a kill mid-run
  if (signal.aborted) return;
  await store.put(`intraday/user=${user}/data.bin`, userObject(user));
  await db.commitWatermarks('fitbit-intraday', [[user, { steps: '2026-01-07' }]]);
});
await db.close();
process.stdout.write(`finished ${worker} ${result.done.length}\n`);
