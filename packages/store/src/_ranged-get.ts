/**
 * Parallel ranged download of one large object: parts are fetched by up to `concurrency`
 * requests at once (S3 GetObject with Range, or HTTP Range over undici: whatever the store's
 * `get` does) and written at their offsets into a temp file as they arrive. The file is the
 * buffer: nothing is held in memory beyond one write batch per stream, whatever the part size,
 * and a worker thread hashes the file's complete prefix behind the writers ({@link TrailingHash}),
 * so the sha256 is known moments after the last byte lands and costs the network thread nothing.
 * A `window` (parts in flight or done ahead of the complete prefix) can bound how far the
 * writers run ahead of the hash. A store that can (S3 over plain HTTP) hands each part's bytes
 * over in its own read buffers (`drain`), written to the file without a stream or a copy; the
 * file's dirty pages are flushed in the background as it grows, so the fsync before the rename
 * is short; and a store whose protocol honours ranges (S3) needs no probe: with a `partSize` all
 * streams open at once, without one the object starts as one GET and what is left is split over
 * the other streams only when that GET runs slower than a threshold ({@link RangeSplit}).
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CosaError, fsyncDir } from '@cosa/schema';
import type { BuildStore, StoreObject } from './store.js';
import { TrailingHash } from './_verify.js';
import { downloadToFile, type DownloadOptions } from './_io.js';
import { retry, retryWarning } from '@cosa/schema/internal';
import { abortError, bareEtag, isTransient, stallGuard, stallWatch, storeTimeouts, transferRetry, type StoreTimeouts } from './_util.js';

/** Options of {@link downloadRanged} and {@link downloadObject}. */
export interface RangedDownloadOptions extends DownloadOptions {
  /** Bytes per ranged request (default: the object split evenly over `concurrency`, at least 16 MiB; at least 1 MiB). */
  partSize?: number;
  /** Ranged requests in flight (default 4). */
  concurrency?: number;
  /** Parts in flight or done ahead of the complete prefix (default: no limit). */
  window?: number;
  /** When a store that honours ranges gets more streams for one object (see {@link RangeSplit}). */
  rangeSplit?: RangeSplit;
}

/**
 * When one object from a store that honours ranges (S3) is split over several streams, unless a
 * `partSize` is given: it starts as one plain GET, and once `afterMs` have passed since its first
 * bytes, what is left is split over the other streams when the rate so far is below
 * `belowBytesPerSecond`. Parallel ranges pay where one connection is the limit (distance, a
 * server's per-connection rate); on a fast link each extra range only costs the server another
 * request (moto reads the whole object for each). `belowBytesPerSecond: Infinity` splits at the
 * first bytes; `0` never splits.
 */
export interface RangeSplit {
  /** Default {@link SPLIT_BELOW} (128 MiB/s). */
  belowBytesPerSecond?: number;
  /** Default {@link SPLIT_AFTER_MS} (300 ms). */
  afterMs?: number;
}

const MiB = 1024 * 1024;
/** Writes are gathered to this many bytes before they go to disk. */
const WRITE_BATCH = MiB;
/** Written bytes between background flushes of the file's dirty pages. */
const FLUSH_STEP = 64 * MiB;

/**
 * Downloads an object into `dest` (temp file, sha256 checked, atomic rename). An object of a
 * declared size of at least two {@link DEFAULT_PART}s goes through {@link downloadRanged} (in
 * `concurrency` parallel ranges; with one stream, one GET hashed by a worker thread behind the
 * writes); a smaller or unsized one is one stream hashed as it comes ({@link downloadToFile}).
 * `undefined` when the object does not exist.
 */
export async function downloadObject(store: BuildStore, key: string, dest: string, options: RangedDownloadOptions): Promise<{ bytes: number; sha256: string } | undefined> {
  if (options.size === undefined || options.size < 2 * DEFAULT_PART) return downloadToFile(store, key, dest, options);
  return downloadRanged(store, key, dest, { ...options, size: options.size });
}

/**
 * Bytes per part: as given, else the object split evenly over the streams (rounded up to a MiB),
 * never below {@link DEFAULT_PART}. One part per stream, as rclone does: each ranged request
 * costs a server that reads the whole object per range (moto) one read, and costs nothing to
 * hold, since the parts go straight to the file.
 */
const partSizeOf = (o: RangedDownloadOptions): number => {
  if (o.partSize !== undefined) return Math.max(MiB, o.partSize);
  const streams = Math.max(1, o.concurrency ?? 4);
  return Math.max(DEFAULT_PART, Math.ceil((o.size ?? 0) / streams / MiB) * MiB);
};

/** The smallest part of a ranged download by default (and the size from which an object is split). */
export const DEFAULT_PART = 16 * MiB;
/** A single stream slower than this (bytes/s) is split into ranges (see {@link RangeSplit}). */
export const SPLIT_BELOW = 128 * MiB;
/** How long a single stream runs before its rate decides whether it is split. */
export const SPLIT_AFTER_MS = 300;

/**
 * Ranged streams per large object when `jobs` are fetched with `concurrency` connections: the
 * connections are shared among the objects of at least two parts, so several large artifacts
 * fetched side by side each get one plain stream (some servers, moto among them, read the
 * whole object for every range they serve), and one alone gets all of them.
 */
export function rangeStreams(jobs: ReadonlyArray<{ size?: number }>, concurrency: number): number {
  const large = jobs.filter((j) => j.size !== undefined && j.size >= 2 * DEFAULT_PART).length;
  return Math.max(1, Math.floor(Math.max(1, concurrency) / Math.max(1, large)));
}

/** Thrown inside when the store answered a range with something else (the whole body). */
class RangeIgnored extends Error {}
/** Thrown inside when the object is not there at all. */
class Missing extends Error {}
/** Thrown inside a drain whose part a split ended before the end its GET asked for. */
class PartComplete extends Error {}

interface Part {
  start: number;
  /** Inclusive. */
  end: number;
  /** Bytes received (written or queued for writing). */
  got: number;
  done: boolean;
}

/** The state of one ranged download. */
class Ranged {
  readonly parts: Part[] = [];
  /** Index of the first part not completely written. */
  private head = 0;
  private next = 0;
  private waiters: Array<() => void> = [];
  private etag: string | undefined;
  private received = 0;
  /** Resolves once part 0's answer showed the store honours ranges (the others start then). */
  private probed!: () => void;
  readonly probe = new Promise<void>((resolve) => (this.probed = resolve));
  readonly timeouts: StoreTimeouts;
  readonly ac = new AbortController();
  readonly signal: AbortSignal;
  /** Set while one stream runs whose rate decides on a split (see {@link RangeSplit}). */
  private splitAt: { below: number; afterMs: number; firstByte?: number } | undefined;
  /** Starts another worker (set by {@link runWorkers}). */
  addWorker: () => void = () => {};

  constructor(
    readonly store: BuildStore,
    readonly key: string,
    readonly fh: FileHandle,
    readonly hash: TrailingHash,
    readonly o: RangedDownloadOptions & { size: number },
    readonly window: number,
  ) {
    const adaptive = o.partSize === undefined && store.honoursRanges === true && (o.concurrency ?? 4) > 1;
    const partSize = adaptive ? o.size : partSizeOf(o);
    for (let s = 0; s < o.size; s += partSize) this.parts.push({ start: s, end: Math.min(o.size, s + partSize) - 1, got: 0, done: false });
    if (adaptive) this.splitAt = { below: o.rangeSplit?.belowBytesPerSecond ?? SPLIT_BELOW, afterMs: o.rangeSplit?.afterMs ?? SPLIT_AFTER_MS };
    this.timeouts = storeTimeouts(o.timeouts);
    this.signal = o.signal ? AbortSignal.any([o.signal, this.ac.signal]) : this.ac.signal;
  }

  get url(): string {
    return this.store.urlOf(this.key);
  }

  /** Moves the complete prefix on (hashed behind) and lets waiting workers start further parts. */
  private advance(): void {
    let moved = false;
    while (this.head < this.parts.length && this.parts[this.head]!.done) {
      this.head++;
      moved = true;
    }
    const p = this.parts[this.head];
    this.hash.advance(p ? p.start + p.got : this.o.size);
    if (moved) for (const w of this.waiters.splice(0)) w();
  }

  /** Claims the next part once it is inside the window; undefined when none is left. */
  private async claim(): Promise<Part | undefined> {
    const i = this.next++;
    if (i >= this.parts.length) return undefined;
    while (i >= this.head + this.window) {
      if (this.signal.aborted) throw abortError(this.signal);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.signal.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.push(wake);
        this.signal.addEventListener('abort', wake, { once: true });
      });
    }
    return this.parts[i];
  }

  /** One worker: the first also fetches part 0 (the probe); the others wait for its answer (unless the store honours ranges). */
  async work(first: boolean): Promise<void> {
    // A store whose protocol honours ranges (S3) needs no probe: every stream starts at once (one
    // that still sends a whole body fails its part with RangeIgnored, and one stream reads it).
    if (!this.store.honoursRanges) {
      if (first) {
        this.next = Math.max(this.next, 1);
        await this.fetchPart(this.parts[0]!);
      } else {
        await Promise.race([this.probe, new Promise((_, reject) => this.signal.addEventListener('abort', () => reject(abortError(this.signal)), { once: true }))]);
      }
    }
    for (let p = await this.claim(); p; p = await this.claim()) await this.fetchPart(p);
  }

  /** Fetches one part, resuming a broken or short answer a bounded number of times. */
  async fetchPart(p: Part): Promise<void> {
    await retry(() => this.readRange(p), {
      ...transferRetry('', { attempts: this.o.attempts ?? 5, signal: this.signal, onProgress: this.o.onProgress }),
      retryIf: (e) => !(e instanceof RangeIgnored || e instanceof Missing) && isTransient(e),
      // The range still missing changes between tries: the warning names the one retried.
      onRetry: (info) => retryWarning(this.o.onProgress, `downloading ${this.url} (bytes ${p.start + p.got}-${p.end})`)(info),
    });
    p.done = true;
    this.advance();
  }

  /** Opens the ranged GET for what `p` still lacks and checks that the answer is that range. */
  private async open(p: Part, from: number): Promise<StoreObject> {
    const want = p.end - from + 1;
    // The whole object in one part: a plain GET (a server may copy a ranged answer once more).
    const whole = from === 0 && p.end === this.o.size - 1;
    const obj = await this.store.get(this.key, { start: from, ...(whole ? {} : { end: p.end }), signal: this.signal });
    if (!obj) {
      if (this.received === 0) throw new Missing();
      throw new CosaError('COSA_STORE_NOT_FOUND', `${this.url} disappeared during the download`);
    }
    let bad: Error | undefined;
    if (obj.offset !== from || (obj.length !== undefined && obj.length !== want)) {
      bad = new RangeIgnored(`${this.url}: asked for bytes ${from}-${p.end}, got ${obj.length ?? '?'} bytes at ${obj.offset}`);
    } else if (obj.size !== undefined && obj.size !== this.o.size) {
      bad = this.mismatch(`the store says ${obj.size} bytes, meta.json ${this.o.size}`);
    } else {
      const tag = bareEtag(obj.etag);
      this.etag ??= tag;
      if (tag !== undefined && tag !== this.etag) bad = this.mismatch('the object changed during the download (its ETag changed)');
    }
    if (bad) {
      obj.body.destroy();
      throw bad;
    }
    this.probed();
    return obj;
  }

  /** One ranged GET for what `p` still lacks, written at its offsets as it comes. */
  private async readRange(p: Part): Promise<void> {
    const from = p.start + p.got;
    const want = p.end - from + 1;
    const obj = await this.open(p, from);
    if (obj.drain) await this.drainRange(obj, p, from);
    else await this.streamRange(obj, p, from);
    if (p.start + p.got <= p.end) throw new CosaError('COSA_STORE_UNREACHABLE', `${this.url}: range ${from}-${p.end} ended after ${p.start + p.got - from} of ${want} bytes`);
  }

  /** Streams the object starts with: one when a split is decided on the way. */
  get initialStreams(): number {
    return this.splitAt ? 1 : Math.max(1, this.o.concurrency ?? 4);
  }

  /** Bytes of `p` landed in the file: the part, the meter and the hash move on. */
  private landed(p: Part, n: number): void {
    p.got += n;
    this.received += n;
    this.o.meter?.update(this.o.name, this.received);
    this.advance();
    this.flushBehind();
    if (this.splitAt) this.maybeSplit();
  }

  /**
   * Once the single stream has run `afterMs`, splits what it has left over all streams when its
   * rate is below the threshold: its part ends at its share (its GET is cut off there) and the
   * rest becomes parts of other workers. Decided once.
   */
  private maybeSplit(): void {
    const s = this.splitAt!;
    const now = performance.now();
    s.firstByte ??= now;
    const elapsed = now - s.firstByte;
    if (elapsed < s.afterMs) return;
    this.splitAt = undefined;
    if (s.below !== Number.POSITIVE_INFINITY && (this.received * 1000) / Math.max(elapsed, 1) >= s.below) return;
    const p = this.parts[0]!;
    const at = p.start + p.got;
    const streams = Math.max(1, this.o.concurrency ?? 4);
    const share = Math.max(DEFAULT_PART, Math.ceil((p.end + 1 - at) / streams / MiB) * MiB);
    if (p.end + 1 - at < 2 * share) return;
    const end = p.end;
    p.end = at + share - 1;
    for (let x = p.end + 1; x <= end; x += share) this.parts.push({ start: x, end: Math.min(end, x + share - 1), got: 0, done: false });
    for (let i = 1; i < Math.min(streams, this.parts.length); i++) this.addWorker();
  }

  /** Bytes received when the last background flush started, and that flush while it runs. */
  private flushedAt = 0;
  private flushing: Promise<void> | undefined;

  /**
   * Every {@link FLUSH_STEP} bytes, asks the kernel to write the file's dirty pages out in the
   * background (fdatasync on a pool thread), so the fsync before the rename finds little left
   * to write instead of the whole file. Its errors are the final fsync's to report.
   */
  private flushBehind(): void {
    if (this.flushing || this.received - this.flushedAt < FLUSH_STEP) return;
    this.flushedAt = this.received;
    this.flushing = this.fh.datasync().then(
      () => void (this.flushing = undefined),
      () => void (this.flushing = undefined),
    );
  }

  /** Waits for a background flush still running (before the file is closed). */
  async settled(): Promise<void> {
    await this.flushing;
  }

  /**
   * The body read straight from the store's read buffers into the file (no stream, no copy):
   * each chunk written at its offset before the buffer is read into again.
   */
  private async drainRange(obj: StoreObject, p: Part, from: number): Promise<void> {
    let stalled: CosaError | undefined;
    const watch = stallWatch(this.url, this.timeouts, (e) => {
      stalled = e;
      obj.body.destroy();
    });
    try {
      await obj.drain!(async (chunk) => {
        const at = p.start + p.got;
        const b = chunk.subarray(0, Math.max(0, Math.min(chunk.length, p.end + 1 - at)));
        for (let off = 0; off < b.length; ) {
          const { bytesWritten } = await this.fh.write(b, off, b.length - off, at + off);
          if (bytesWritten <= 0) throw new Error('short write');
          off += bytesWritten;
        }
        this.landed(p, b.length);
        // The part was cut short by a split: the rest of this GET is other streams' work.
        if (p.start + p.got > p.end && b.length < chunk.length) throw new PartComplete();
      }, (n) => watch.moved(n));
    } catch (e) {
      if (e instanceof PartComplete) return;
      // What was written before the break stays: the retry asks only for the rest.
      if (stalled) throw stalled;
      if (e instanceof CosaError || this.signal.aborted) throw e;
      throw new CosaError('COSA_STORE_UNREACHABLE', `${this.url}: bytes ${from}-${p.end} broke off: ${(e as Error).message}`, { cause: e });
    } finally {
      watch.stop();
      obj.body.destroy();
    }
  }

  /** The body read as a stream, gathered into batches written at their offsets. */
  private async streamRange(obj: StoreObject, p: Part, from: number): Promise<void> {
    const guarded = obj.body.pipe(stallGuard(this.url, this.timeouts));
    obj.body.once('error', (e) => guarded.destroy(e));
    let batch: Buffer[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batchBytes === 0) return;
      const bufs = batch;
      const len = batchBytes;
      batch = [];
      batchBytes = 0;
      const { bytesWritten } = await this.fh.writev(bufs, p.start + p.got);
      if (bytesWritten !== len) throw new Error('short write');
      this.landed(p, len);
    };
    try {
      for await (const c of guarded) {
        let b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
        // p.end, not `want`: a split can end the part before the end this GET asked for.
        const room = p.end + 1 - (p.start + p.got) - batchBytes;
        if (b.length > room) b = b.subarray(0, Math.max(0, room));
        batch.push(b);
        batchBytes += b.length;
        if (batchBytes >= WRITE_BATCH) await flush();
        if (p.start + p.got + batchBytes > p.end) break;
      }
      await flush();
    } catch (e) {
      // What arrived before the break is good: keep it, so the retry asks only for the rest.
      if (!this.signal.aborted) await flush().catch(() => {});
      if (e instanceof CosaError || this.signal.aborted) throw e;
      throw new CosaError('COSA_STORE_UNREACHABLE', `${this.url}: bytes ${from}-${p.end} broke off: ${(e as Error).message}`, { cause: e });
    } finally {
      guarded.destroy();
      obj.body.destroy();
    }
  }

  mismatch(why: string): CosaError {
    return new CosaError('COSA_STORE_CHECKSUM_MISMATCH', `${this.o.name}: ${why} (${this.url})`, { hint: 'the remote file is corrupt or was tampered with; it was not kept' });
  }
}

/**
 * Downloads an object of the declared `size` in parallel byte ranges into `dest` (see the file
 * comment). The sha256 (when given) and size are checked before the temp file is renamed into
 * place; a mismatch removes it and fails with COSA_STORE_CHECKSUM_MISMATCH naming the file. A
 * store that ignores ranges (answers with the whole body) is read as one stream instead.
 */
export async function downloadRanged(store: BuildStore, key: string, dest: string, options: RangedDownloadOptions & { size: number }): Promise<{ bytes: number; sha256: string } | undefined> {
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const window = Math.max(concurrency, options.window ?? Number.POSITIVE_INFINITY);
  const tmp = join(dirname(dest), `.${basename(dest)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'w+', options.mode ?? 0o644);
  const hash = new TrailingHash(tmp);
  const r = new Ranged(store, key, fh, hash, options, window);
  const { meter, name } = options;
  meter?.start(name, options.size);
  let outcome: 'ok' | 'missing' | 'fallback' | 'failed' = 'ok';
  try {
    await runWorkers(r, concurrency);
    return await finish(r, tmp, dest);
  } catch (e) {
    hash.close();
    if (e instanceof Missing) outcome = 'missing';
    else if (e instanceof RangeIgnored) outcome = 'fallback';
    else {
      outcome = 'failed';
      throw e;
    }
  } finally {
    await r.settled();
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    if (outcome !== 'ok') meter?.drop(name);
  }
  if (outcome === 'missing') return undefined;
  options.onProgress?.({ type: 'log', line: `${store.urlOf(key)}: the store ignores byte ranges; reading it as one stream` });
  return downloadToFile(store, key, dest, options);
}

/** Runs the workers; the first failure aborts the others and is thrown once all have stopped. */
async function runWorkers(r: Ranged, concurrency: number): Promise<void> {
  const running: Array<Promise<void>> = [];
  const start = (first: boolean) =>
    running.push(
      r.work(first).catch((e: unknown) => {
        if (!r.ac.signal.aborted) r.ac.abort(e);
        throw e;
      }),
    );
  // A split (see RangeSplit) adds workers while the first one runs.
  r.addWorker = () => start(false);
  for (let i = 0; i < Math.min(r.initialStreams, concurrency, r.parts.length); i++) start(i === 0);
  let settled: Array<PromiseSettledResult<void>> = [];
  while (settled.length < running.length) settled = await Promise.allSettled([...running]);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  // The first failure is the cause; the others are its abort.
  if (failed) throw r.ac.signal.aborted ? r.ac.signal.reason : failed.reason;
}

/** Checks size and sha256, then syncs and renames the temp file into place. */
async function finish(r: Ranged, tmp: string, dest: string): Promise<{ bytes: number; sha256: string }> {
  const { o } = r;
  try {
    const bytes = r.parts.reduce((n, p) => n + p.got, 0);
    await r.fh.truncate(bytes);
    // The sync and the rest of the hash (read back from the page cache) overlap.
    const [{ sha256, bytes: hashed }] = await Promise.all([r.hash.digest(bytes), r.fh.sync()]);
    if (bytes !== o.size || hashed !== bytes || (o.sha256 !== undefined && sha256 !== o.sha256)) {
      throw r.mismatch(`downloaded ${bytes} bytes with sha256 ${sha256}, expected ${o.size} bytes with sha256 ${o.sha256 ?? '?'}`);
    }
    await rename(tmp, dest);
    await fsyncDir(dirname(dest));
    o.meter?.finish(o.name);
    return { bytes, sha256 };
  } catch (e) {
    o.meter?.drop(o.name);
    throw e;
  }
}
