// Small async helpers for wiring streams: bounded concurrency across independent
// producers (one per user), with back-pressure so a fast producer cannot run ahead.

/**
 * Runs up to `concurrency` producers at a time and yields their items as they come.
 * A producer waits while `bufferSize` items are queued, so memory stays bounded.
 * A producer that throws is reported through `onError` and the others go on.
 */
export async function* mergeConcurrent<T, K>(
  keys: Iterable<K>,
  produce: (key: K) => AsyncIterable<T>,
  options: { concurrency: number; bufferSize?: number; onError: (key: K, err: unknown) => void },
): AsyncGenerator<T> {
  const bufferSize = options.bufferSize ?? 16;
  const queue: T[] = [];
  let wakeConsumer: (() => void) | null = null;
  const wakeProducers: Array<() => void> = [];
  const iterator = keys[Symbol.iterator]();
  let running = 0;
  let exhausted = false;

  const notifyConsumer = (): void => {
    const wake = wakeConsumer;
    wakeConsumer = null;
    wake?.();
  };

  const startNext = (): void => {
    while (!exhausted && running < options.concurrency) {
      const step = iterator.next();
      if (step.done) {
        exhausted = true;
        break;
      }
      running++;
      void run(step.value);
    }
  };

  const run = async (key: K): Promise<void> => {
    try {
      for await (const item of produce(key)) {
        while (queue.length >= bufferSize) {
          await new Promise<void>((resolve) => wakeProducers.push(resolve));
        }
        queue.push(item);
        notifyConsumer();
      }
    } catch (err) {
      options.onError(key, err);
    } finally {
      running--;
      startNext();
      notifyConsumer();
    }
  };

  startNext();
  for (;;) {
    if (queue.length > 0) {
      const item = queue.shift() as T;
      wakeProducers.shift()?.();
      yield item;
      continue;
    }
    if (running === 0 && exhausted) return;
    await new Promise<void>((resolve) => (wakeConsumer = resolve));
  }
}
