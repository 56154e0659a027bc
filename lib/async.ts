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

/**
 * At most `size` holders at a time; the others wait in arrival order. The Fitbit pipelines
 * hold one while a request is on the wire (sent until its body is read), so `--concurrency`
 * bounds the requests in flight while parsing and normalizing happen outside the slots.
 */
export class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`slots: size must be a positive integer, got ${size}`);
    this.free = size;
  }

  /** Resolves when a slot is held; call the returned function once to give it back. */
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next !== undefined) next(); // the slot passes straight to the next in line
      else this.free++;
    };
  }

  /** Slots held right now. */
  get held(): number {
    return this.size - this.free;
  }
}

const noop = (): void => undefined;

/** Runs async jobs one after another (a per-user request queue). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const next = this.tail.then(job, job);
    // The queue goes on whatever one job did; its caller sees the failure. The tail holds no
    // value: `next.catch()` would keep the last answer (a parsed day and its text) of every
    // user for the whole run, ~185 KB a user in bench/api-bound.
    this.tail = next.then(noop, noop);
    return next;
  }
}

/**
 * Merges sequences that are each in ascending `key` order (mostly: an item out of order only
 * comes later than it could) into one ascending sequence; on a tie the earlier source's item
 * comes first. One item of each source is held at a time, and the sources are pulled one after
 * another, never side by side. When one throws, the others are closed and the error passes on.
 */
export async function* mergeSorted<T>(sources: readonly AsyncIterable<T>[], key: (item: T) => string): AsyncGenerator<T> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  const heads: ({ item: T; key: string } | null)[] = [];
  const open = new Set(iterators);
  const pull = async (i: number): Promise<void> => {
    const it = iterators[i]!;
    const next = await it.next();
    if (next.done) {
      open.delete(it);
      heads[i] = null;
    } else heads[i] = { item: next.value, key: key(next.value) };
  };
  try {
    for (let i = 0; i < iterators.length; i++) await pull(i);
    for (;;) {
      let min = -1;
      for (let i = 0; i < heads.length; i++) {
        const h = heads[i];
        if (h != null && (min < 0 || h.key < heads[min]!.key)) min = i;
      }
      if (min < 0) return;
      yield heads[min]!.item;
      await pull(min);
    }
  } finally {
    for (const it of open) await it.return?.(undefined);
  }
}

/** The value kept under `key`, made by `create` the first time it is asked for. */
export function getOrCreate<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = create();
    map.set(key, value);
  }
  return value;
}

/** Requests in flight across all users at once: a `Slots` of that size, or none (unbounded). */
export function requestSlots(requestsInFlight: number | undefined): Slots | null {
  return requestsInFlight === undefined ? null : new Slots(requestsInFlight);
}
