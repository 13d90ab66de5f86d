/**
 * Parallel ranged download of one large object: parts of `partSize` bytes are fetched by up to
 * `concurrency` requests at once (S3 GetObject with Range, or HTTP Range over undici: whatever
 * the store's `get` does), written at their offsets into a temp file, and hashed in order as the
 * bytes arrive, so the sha256 is known when the last part lands and the file is never read back.
 * Memory is bounded: a part may only start while it is fewer than `window` parts ahead of the
 * hashed prefix, and only bytes ahead of that prefix are held (at most `window - 1` parts).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CosaError, fsyncDir } from '@cosa/schema';
import type { BuildStore } from './store.js';
import { downloadToFile, type DownloadOptions } from './_io.js';
import { abortError, backoffMs, bareEtag, isTransient, logRetry, sleep, stallGuard, storeTimeouts, type StoreTimeouts } from './_util.js';

/** Options of {@link downloadRanged} and {@link downloadObject}. */
export interface RangedDownloadOptions extends DownloadOptions {
  /** Bytes per ranged request (default 16 MiB, at least 1 MiB). */
  partSize?: number;
  /** Ranged requests in flight (default 4). */
  concurrency?: number;
  /** Parts in flight or held ahead of the hashed prefix (default concurrency + 1). */
  window?: number;
}

const MiB = 1024 * 1024;
/** Writes are gathered to this many bytes before they go to disk. */
const WRITE_BATCH = MiB;

/**
 * Downloads an object into `dest` (temp file, sha256 checked, atomic rename): in parallel byte
 * ranges when its size is declared and at least two parts long, else as one stream (resumed on a
 * dropped connection) with {@link downloadToFile}. `undefined` when the object does not exist.
 */
export async function downloadObject(store: BuildStore, key: string, dest: string, options: RangedDownloadOptions): Promise<{ bytes: number; sha256: string } | undefined> {
  const partSize = partSizeOf(options);
  if (options.size === undefined || options.size < 2 * partSize || (options.concurrency ?? 4) < 2) return downloadToFile(store, key, dest, options);
  return downloadRanged(store, key, dest, { ...options, size: options.size });
}

const partSizeOf = (o: RangedDownloadOptions): number => Math.max(MiB, o.partSize ?? DEFAULT_PART);

/** Default bytes per ranged request. */
export const DEFAULT_PART = 16 * MiB;

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

interface Part {
  start: number;
  /** Inclusive. */
  end: number;
  /** Bytes received (written or queued for writing). */
  got: number;
  /** Received bytes not yet hashed (the head part hashes as they come). */
  held: Buffer[];
  done: boolean;
}

/** The state of one ranged download. */
class Ranged {
  readonly parts: Part[] = [];
  private hash: Hash = createHash('sha256');
  /** Index of the first part not completely hashed. */
  private head = 0;
  private next = 0;
  private waiters: Array<() => void> = [];
  private etag: string | undefined;
  private received = 0;
  readonly timeouts: StoreTimeouts;
  readonly ac = new AbortController();
  readonly signal: AbortSignal;

  constructor(
    readonly store: BuildStore,
    readonly key: string,
    readonly fh: FileHandle,
    readonly o: RangedDownloadOptions & { size: number },
    readonly window: number,
  ) {
    const partSize = partSizeOf(o);
    for (let s = 0; s < o.size; s += partSize) this.parts.push({ start: s, end: Math.min(o.size, s + partSize) - 1, got: 0, held: [], done: false });
    this.timeouts = storeTimeouts(o.timeouts);
    this.signal = o.signal ? AbortSignal.any([o.signal, this.ac.signal]) : this.ac.signal;
  }

  get url(): string {
    return this.store.urlOf(this.key);
  }

  /** The sha256 once every part is hashed. */
  digest(): string {
    if (this.head !== this.parts.length) throw new Error('ranged download: not every part was hashed');
    return this.hash.digest('hex');
  }

  /** Hashes what the head parts hold, in order, and lets waiting workers start further parts. */
  private drain(): void {
    let moved = false;
    while (this.head < this.parts.length) {
      const p = this.parts[this.head]!;
      for (const b of p.held) this.hash.update(b);
      p.held = [];
      if (!p.done) break;
      this.head++;
      moved = true;
    }
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

  /** Fetches part 0 alone: it shows whether the object exists and the store honours ranges. */
  async probe(): Promise<void> {
    this.next = 1;
    await this.fetchPart(this.parts[0]!);
  }

  /** One worker: fetches parts until none is left. */
  async work(): Promise<void> {
    for (let p = await this.claim(); p; p = await this.claim()) await this.fetchPart(p);
  }

  /** Fetches one part, resuming a broken or short answer a bounded number of times. */
  async fetchPart(p: Part): Promise<void> {
    const attempts = this.o.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.readRange(p);
        p.done = true;
        this.drain();
        return;
      } catch (e) {
        if (this.signal.aborted) throw abortError(this.signal, e);
        if (e instanceof RangeIgnored || e instanceof Missing || attempt >= attempts || !isTransient(e)) throw e;
        logRetry(this.o.onProgress, `downloading ${this.url} (bytes ${p.start + p.got}-${p.end})`, attempt, attempts, e);
        await sleep(backoffMs(attempt), this.signal);
      }
    }
  }

  /** One ranged GET for what `p` still lacks; writes at the offsets and holds the bytes for the hash. */
  private async readRange(p: Part): Promise<void> {
    const from = p.start + p.got;
    const want = p.end - from + 1;
    const obj = await this.store.get(this.key, { start: from, end: p.end, signal: this.signal });
    if (!obj) {
      if (this.received === 0) throw new Missing();
      throw new CosaError('COSA_STORE_NOT_FOUND', `${this.url} disappeared during the download`);
    }
    if (obj.offset !== from || (obj.length !== undefined && obj.length !== want)) {
      obj.body.destroy();
      throw new RangeIgnored(`${this.url}: asked for bytes ${from}-${p.end}, got ${obj.length ?? '?'} bytes at ${obj.offset}`);
    }
    if (obj.size !== undefined && obj.size !== this.o.size) {
      obj.body.destroy();
      throw this.mismatch(`the store says ${obj.size} bytes, meta.json ${this.o.size}`);
    }
    const tag = bareEtag(obj.etag);
    if (tag !== undefined) {
      this.etag ??= tag;
      if (tag !== this.etag) {
        obj.body.destroy();
        throw this.mismatch('the object changed during the download (its ETag changed)');
      }
    }
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
      p.got += len;
      p.held.push(...bufs);
      this.received += len;
      this.o.meter?.update(this.o.name, this.received);
      this.drain();
    };
    try {
      for await (const c of guarded) {
        let b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
        const room = want - (p.got - (from - p.start)) - batchBytes;
        if (b.length > room) b = b.subarray(0, room);
        batch.push(b);
        batchBytes += b.length;
        if (batchBytes >= WRITE_BATCH) await flush();
        if (p.got - (from - p.start) + batchBytes >= want) break;
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
    if (p.start + p.got <= p.end) throw new CosaError('COSA_STORE_UNREACHABLE', `${this.url}: range ${from}-${p.end} ended after ${p.start + p.got - from} of ${want} bytes`);
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
  const window = Math.max(concurrency, options.window ?? concurrency + 1);
  const tmp = join(dirname(dest), `.${basename(dest)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'w+', options.mode ?? 0o644);
  const r = new Ranged(store, key, fh, options, window);
  const { meter, name } = options;
  meter?.start(name, options.size);
  let outcome: 'ok' | 'missing' | 'fallback' | 'failed' = 'ok';
  try {
    await r.probe();
    await runWorkers(r, concurrency);
    return await finish(r, tmp, dest);
  } catch (e) {
    if (e instanceof Missing) outcome = 'missing';
    else if (e instanceof RangeIgnored) outcome = 'fallback';
    else {
      outcome = 'failed';
      throw e;
    }
  } finally {
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
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(concurrency, r.parts.length) }, () =>
      r.work().catch((e: unknown) => {
        if (!r.ac.signal.aborted) r.ac.abort(e);
        throw e;
      }),
    ),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  // The first failure is the cause; the others are its abort.
  if (failed) throw r.ac.signal.aborted ? r.ac.signal.reason : failed.reason;
}

/** Checks size and sha256, then syncs and renames the temp file into place. */
async function finish(r: Ranged, tmp: string, dest: string): Promise<{ bytes: number; sha256: string }> {
  const { o } = r;
  try {
    const bytes = r.parts.reduce((n, p) => n + p.got, 0);
    const sha256 = r.digest();
    if (bytes !== o.size || (o.sha256 !== undefined && sha256 !== o.sha256)) {
      throw r.mismatch(`downloaded ${bytes} bytes with sha256 ${sha256}, expected ${o.size} bytes with sha256 ${o.sha256 ?? '?'}`);
    }
    await r.fh.truncate(bytes);
    await r.fh.sync();
    await rename(tmp, dest);
    await fsyncDir(dirname(dest));
    o.meter?.finish(o.name);
    return { bytes, sha256 };
  } catch (e) {
    o.meter?.drop(o.name);
    throw e;
  }
}
