// A one-line progress bar on a terminal: user-days (or pages) done of planned, and the
// rate-limit waits. Off when stderr is not a terminal: logs are enough there.
import type { ProgressEvent } from './context.js';

export interface ProgressBar {
  update(event: ProgressEvent): void;
  /** A note shown after the bar until the next update (e.g. a rate-limit wait). */
  note(text: string): void;
  /** Prints a log line above the bar: clears the bar, writes, draws it again. */
  print(write: () => void): void;
  stop(): void;
}

/** Where the bar is drawn: a terminal stream, or what stands for one on the CLI thread. */
export interface BarStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

export function createProgressBar(stream: BarStream = process.stderr): ProgressBar | null {
  if (!stream.isTTY) return null;
  let planned = 0;
  let done = 0;
  let pipeline = '';
  let note = '';
  let last = 0;
  let shown = false;
  // Users plan their days as they start, so the total grows during a run; the bar's fill never
  // moves backwards for that (it stays until done catches up).
  let filledMax = 0;
  const draw = (force = false): void => {
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    const width = 30;
    const ratio = planned > 0 ? Math.min(1, done / planned) : 0;
    const filled = Math.max(filledMax, Math.round(ratio * width));
    filledMax = filled;
    const line = `${pipeline} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${planned}${note ? '  ' + note : ''}`;
    const columns = stream.columns && stream.columns > 20 ? stream.columns : 100;
    stream.write('\r' + line.slice(0, columns - 1) + '\x1b[K');
    shown = true;
  };
  return {
    update(event) {
      if (event.pipeline !== pipeline) {
        if (pipeline && shown) stream.write('\n');
        shown = false;
        pipeline = event.pipeline;
        planned = 0;
        done = 0;
        filledMax = 0;
      }
      if (event.kind === 'planned') planned += event.units ?? 0;
      if (event.kind === 'done') done += event.units ?? 0;
      if (event.kind === 'waiting') note = `waiting ${Math.round((event.waitMs ?? 0) / 1000)} s for ${event.user ?? 'a user'}'s rate limit`;
      else note = '';
      draw(event.kind !== 'done');
    },
    print(write) {
      if (shown) stream.write('\r\x1b[K');
      write();
      if (shown) draw(true);
    },
    note(text) {
      note = text;
      draw(true);
    },
    stop() {
      if (pipeline) {
        draw(true);
        stream.write('\n');
      }
      pipeline = '';
      shown = false;
      filledMax = 0;
    },
  };
}
