// --concurrency N is the number of Fitbit requests in flight: never more, and with enough
// users, all N slots busy (a slot freed by an answer is taken while that answer is parsed).
import test from 'ava';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Slots } from '../lib/async.js';
import { fixtureEnv, startFixtureApi, writeUsersFile } from '../fixtures/server.js';
import { main } from '../pipelines/cli.js';

test('Slots: at most size holders, handed over in arrival order, release is idempotent', async (t) => {
  const slots = new Slots(2);
  const order: number[] = [];
  let holding = 0;
  let peak = 0;
  await Promise.all(
    [0, 1, 2, 3, 4, 5].map(async (i) => {
      const release = await slots.acquire();
      order.push(i);
      peak = Math.max(peak, ++holding);
      await new Promise((resolve) => setTimeout(resolve, 5));
      holding--;
      release();
      release(); // a second call must not free a second slot
    }),
  );
  t.is(peak, 2);
  t.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  t.is(slots.held, 0);
  t.throws(() => new Slots(0), { instanceOf: RangeError });
});

for (const concurrency of [1, 3]) {
  test(`fitbit-intraday --concurrency ${concurrency}: the fixture never holds more than ${concurrency} requests, and holds ${concurrency}`, async (t) => {
    t.timeout(60_000);
    const api = await startFixtureApi({ faults: { latencyMs: 10 } });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wetl-concurrency-'));
    t.teardown(async () => {
      await api.close();
      await fs.rm(dir, { recursive: true, force: true });
    });
    const ids = api.fitbit.userIds().slice(0, 8);
    const users = await writeUsersFile(api, path.join(dir, 'users.json'), ids);
    const stderr: string[] = [];
    const code = await main(
      ['run', 'fitbit-intraday', '--users', users, '--out', path.join(dir, 'out'), '--since', '2016-04-20', '--until', '2016-04-22', '--resources', 'steps,calories', '--concurrency', String(concurrency)],
      { env: fixtureEnv(api), cwd: dir, stdout: () => undefined, stderr: (s) => stderr.push(s) },
    );
    t.is(code, 0, stderr.join(''));
    t.is(api.log.length, 8 * (1 + 3 * 2), 'a profile and 3 days × 2 resources per user');
    t.is(api.peakInFlight, concurrency);
  });
}
