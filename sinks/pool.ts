// Worker threads that write partition files while the calling thread goes on reading,
// normalizing and buffering. The sink hands a partition's job (write-partition.ts: its rows
// packed, transfer.ts) to the least busy worker, which runs writePartition on it
// (write-worker.ts). Measured in bench/intraday-e2e.ts: merging, sorting and encoding are about
// half of the end-to-end time, so one worker next to the main thread puts the second core to use.
import type { Worker } from 'node:worker_threads';
import { YOUNG_GENERATION_MB, startModuleWorker } from '../lib/worker.js';
import { EtlError } from '../lib/errors.js';
import type { ErrorCode } from '../lib/errors.js';
import type { PartitionJob, PartitionWritten } from './write-partition.js';

export interface WriteJob extends PartitionJob {
  id: number;
}

export type WriteReply =
  | ({ id: number; ok: true } & PartitionWritten)
  | { id: number; ok: false; error: { code: ErrorCode; message: string; context: Record<string, string | number> } };

interface Slot {
  worker: Worker;
  inFlight: number;
  dead: Error | null;
}

interface Waiting {
  slot: Slot;
  resolve: (result: PartitionWritten) => void;
  reject: (err: Error) => void;
}

/**
 * The writer thread gets the CLI thread's young generation (lib/worker.ts): it allocates and
 * drops a partition's columns at a time; a larger new space only kept dead buffers around
 * longer (bench/intraday-e2e peak RSS).
 */
function startWorker(): Worker {
  return startModuleWorker(new URL('./write-worker.js', import.meta.url), import.meta.url, { resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
}

export class WritePool {
  private readonly slots: Slot[] = [];
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const worker = startWorker();
    const slot: Slot = { worker, inFlight: 0, dead: null };
    // Idle workers do not keep the process alive; a worker with work does (see `write`).
    worker.unref();
    worker.on('message', (reply: WriteReply) => {
      const w = this.waiting.get(reply.id);
      if (w === undefined) return;
      this.waiting.delete(reply.id);
      this.settled(slot);
      if (reply.ok) w.resolve({ rows: reply.rows, bytes: reply.bytes, merged: reply.merged, counts: reply.counts });
      else w.reject(new EtlError(reply.error.code, reply.error.message, reply.error.context));
    });
    const fail = (err: Error): void => {
      slot.dead ??= err;
      for (const [id, w] of this.waiting) {
        if (w.slot !== slot) continue;
        this.waiting.delete(id);
        w.reject(new EtlError('SINK', `writer thread failed: ${err.message}`, {}, { cause: err }));
      }
      slot.inFlight = 0;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`exited with code ${code}`));
    });
    return slot;
  }

  private settled(slot: Slot): void {
    slot.inFlight--;
    if (slot.inFlight === 0) slot.worker.unref();
  }

  /** Jobs sent and not answered yet. */
  get inFlight(): number {
    return this.waiting.size;
  }

  /**
   * Runs writePartition on a worker (the worker joins the job's chunks: the calling thread is
   * the busier one). Resolves once the file is in place. `transfer` (the buffers of the job's
   * tables) are transferred: do not use them after.
   */
  write(job: PartitionJob, transfer: readonly ArrayBuffer[]): Promise<PartitionWritten> {
    if (this.closed) return Promise.reject(new EtlError('SINK', 'write pool used after close'));
    let slot: Slot | null = null;
    for (const s of this.slots) if (s.dead === null && (slot === null || s.inFlight < slot.inFlight)) slot = s;
    if (slot === null) return Promise.reject(new EtlError('SINK', `writer thread failed: ${this.slots[0]?.dead?.message ?? 'no threads'}`));
    const id = this.nextId++;
    const message: WriteJob = { ...job, id };
    const chosen = slot;
    return new Promise<PartitionWritten>((resolve, reject) => {
      this.waiting.set(id, { slot: chosen, resolve, reject });
      if (chosen.inFlight++ === 0) chosen.worker.ref();
      chosen.worker.postMessage(message, transfer as ArrayBuffer[]);
    });
  }

  /** Stops the workers; jobs still running are rejected. Call after the last write settled. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w.reject(new EtlError('SINK', 'write pool closed with a write in flight'));
    }
  }
}

/**
 * The writer threads of one run's sinks: started by the first sink that brings enough rows
 * (its workerStartRows), then used by every sink of the run that shares them, so that a small
 * sink beside a large one (daily_summaries beside intraday) writes its files there instead of
 * on the calling thread. The sinks leave them running; whoever made them closes them.
 */
export class SharedWriters {
  private pool: WritePool | null = null;

  /** The threads, once a sink has started them. */
  get running(): WritePool | null {
    return this.pool;
  }

  start(size: number): WritePool {
    return (this.pool ??= new WritePool(size));
  }

  /** Call once every sink that shares them has finished. */
  async close(): Promise<void> {
    await this.pool?.close();
  }
}
