// --concurrency N is the number of Fitbit requests in flight: never more, and with enough
// users, all N slots busy (a slot freed by an answer is taken while that answer is parsed).
import test from 'ava';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Slots } from '../lib/async.js';
import { SerialQueue } from '../sources/fitbit/client.js';
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

test("a user's request queue keeps nothing of the answers it has passed on", async (t) => {
  // Before the fix, the queue's tail held the last answer (a parsed day and its body) of every
  // user for the whole run: ~185 KB a user, the live heap growing all through bench/api-bound.
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const queue = new SerialQueue();
  await t.throwsAsync(queue.run(async () => Promise.reject(new Error('a failed request'))));
  const refs: WeakRef<object>[] = [];
  for (let i = 0; i < 3; i++) {
    const answer = { points: new Array(1440).fill(i) };
    refs.push(new WeakRef(answer));
    t.is(await queue.run(async () => answer), answer);
  }
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  t.deepEqual(refs.map((r) => r.deref() === undefined), [true, true, true]);
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
    // From the order of events at the server (not from timing): never more than N held ...
    t.deepEqual(api.log.filter((e) => e.heldAtStart > concurrency), [], 'never more than N requests held');
    // ... and all N slots busy: some request arrived while N were held ...
    t.is(Math.max(...api.log.map((e) => e.heldAtStart)), concurrency, 'N requests held at once');
    // ... and each user's requests one at a time: each arrives after the user's previous one was answered.
    for (const id of ids) {
      const mine = api.log.filter((e) => e.userId === id).sort((a, b) => a.started - b.started);
      t.is(mine.length, 7, id);
      for (let i = 1; i < mine.length; i++) t.true(mine[i]!.started > mine[i - 1]!.finished, `${id}: request ${i} overlaps the one before`);
    }
  });
}
