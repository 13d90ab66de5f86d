import type { OnProgress } from '@cosa/schema';

/**
 * Counts bytes per item and in total and emits throttled `transfer` events with rate and ETA.
 * Per-item events carry the item's name; the overall one is named `total`.
 */
export class TransferMeter {
  private readonly items = new Map<string, { bytes: number; total: number | undefined; t0: number; last: number }>();
  private doneBytes = 0;
  private readonly t0 = performance.now();
  private lastTotal = 0;

  constructor(
    private readonly onProgress: OnProgress,
    /** Bytes expected over all items, when known. */
    private total: number | undefined,
    private readonly intervalMs = 200,
  ) {}

  /** Starts an item (a file being moved). */
  start(name: string, total: number | undefined): void {
    const now = performance.now();
    this.items.set(name, { bytes: 0, total, t0: now, last: 0 });
  }

  /** Sets the bytes moved so far for an item (may go back when a transfer restarts). */
  update(name: string, bytes: number): void {
    const it = this.items.get(name);
    if (!it) return;
    it.bytes = bytes;
    const now = performance.now();
    if (now - it.last >= this.intervalMs) {
      it.last = now;
      this.emit(name, it, false);
    }
    if (now - this.lastTotal >= this.intervalMs) {
      this.lastTotal = now;
      this.emitTotal(false);
    }
  }

  /** Ends an item; its bytes count towards the total. */
  finish(name: string): void {
    const it = this.items.get(name);
    if (!it) return;
    this.items.delete(name);
    this.doneBytes += it.bytes;
    this.emit(name, it, true);
  }

  /** Drops an item that failed (its bytes do not count). */
  drop(name: string): void {
    this.items.delete(name);
  }

  /** Emits the final total. */
  end(): void {
    this.emitTotal(true);
  }

  /** Bytes moved so far (finished and in flight). */
  get bytes(): number {
    let n = this.doneBytes;
    for (const it of this.items.values()) n += it.bytes;
    return n;
  }

  private emit(name: string, it: { bytes: number; total: number | undefined; t0: number }, done: boolean): void {
    const secs = (performance.now() - it.t0) / 1000;
    const rate = secs > 0 ? it.bytes / secs : undefined;
    const eta = rate && it.total !== undefined ? Math.max(0, (it.total - it.bytes) / rate) : undefined;
    this.onProgress({
      type: 'transfer',
      name,
      bytes: it.bytes,
      ...(it.total !== undefined ? { total: it.total } : {}),
      ...(rate !== undefined ? { rateBps: Math.round(rate) } : {}),
      ...(eta !== undefined && !done ? { etaSeconds: Math.round(eta * 10) / 10 } : {}),
      ...(done ? { done: true } : {}),
    });
  }

  private emitTotal(done: boolean): void {
    const bytes = this.bytes;
    const secs = (performance.now() - this.t0) / 1000;
    const rate = secs > 0 ? bytes / secs : undefined;
    const eta = rate && this.total !== undefined ? Math.max(0, (this.total - bytes) / rate) : undefined;
    this.onProgress({
      type: 'transfer',
      name: 'total',
      bytes,
      ...(this.total !== undefined ? { total: this.total } : {}),
      ...(rate !== undefined ? { rateBps: Math.round(rate) } : {}),
      ...(eta !== undefined && !done ? { etaSeconds: Math.round(eta * 10) / 10 } : {}),
      ...(done ? { done: true } : {}),
    });
  }
}
