import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CosaError, fsyncDir, type OnProgress } from '@cosa/schema';
import { retry } from '@cosa/schema/internal';
import type { BuildStore } from './store.js';
import type { TransferMeter } from './_transfer.js';
import { stallGuard, storeTimeouts, transferRetry, type StoreTimeouts } from './_util.js';

/** True for a failed conditional write (412, 409, or 404 on If-Match). */
export function isCosaConflict(e: unknown): boolean {
  return e instanceof CosaError && e.code === 'COSA_STORE_CONFLICT';
}

async function collect(body: Readable, max: number, what: string, t: StoreTimeouts): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  const guarded = body.pipe(stallGuard(what, t));
  body.once('error', (e) => guarded.destroy(e));
  for await (const c of guarded) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
    n += b.length;
    if (n > max) {
      body.destroy();
      throw new CosaError('COSA_STORE_HTTP_STATUS', `${what} is larger than ${max} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Options of {@link readObjectText}. */
export interface ReadTextOptions {
  /** Larger objects are refused (default 64 MiB). */
  maxBytes?: number;
  /** Deadlines; `metadataDeadlineMs` bounds the whole read, retries included. */
  timeouts?: Partial<StoreTimeouts>;
  /** Receives a warning for every retry. */
  onProgress?: OnProgress;
}

/**
 * Runs `fn` with a signal that also aborts after `ms`; a deadline that passes becomes
 * COSA_STORE_TIMEOUT naming `what` (an abort by `signal` stays COSA_STORE_ABORTED).
 */
export async function withDeadline<T>(ms: number, what: string, signal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = AbortSignal.timeout(ms);
  const both = signal ? AbortSignal.any([signal, deadline]) : deadline;
  try {
    return await fn(both);
  } catch (e) {
    if (deadline.aborted && !signal?.aborted) throw new CosaError('COSA_STORE_TIMEOUT', `${what}: no complete answer within ${ms / 1000} s`, { cause: e });
    throw e;
  }
}

/** Reads a small object (JSON metadata) whole; `undefined` when missing. */
export async function readObjectText(
  store: BuildStore,
  key: string,
  signal?: AbortSignal,
  options: number | ReadTextOptions = {},
): Promise<{ text: string; bytes: Buffer; etag: string | undefined } | undefined> {
  const o = typeof options === 'number' ? { maxBytes: options } : options;
  const t = storeTimeouts(o.timeouts);
  const url = store.urlOf(key);
  return withDeadline(t.metadataDeadlineMs, url, signal, (sig) =>
    retry(async () => {
      const obj = await store.get(key, { signal: sig });
      if (!obj) return undefined;
      const bytes = await collect(obj.body, o.maxBytes ?? 64 * 1024 * 1024, url, t);
      // A body that ends before its announced length is a broken transfer, not a document.
      if (obj.size !== undefined && bytes.length !== obj.size - obj.offset) {
        throw new CosaError('COSA_STORE_UNREACHABLE', `${url}: read ${bytes.length} of ${obj.size - obj.offset} bytes`);
      }
      return { text: bytes.toString('utf8'), bytes, etag: obj.etag };
    }, transferRetry(`reading ${url}`, { signal: sig, onProgress: o.onProgress })),
  );
}

/** Options of {@link downloadToFile}. */
export interface DownloadOptions {
  /** The name used in progress and errors (artifact or file name). */
  name: string;
  /** Expected sha256 (hex); checked while streaming. */
  sha256?: string;
  /** Expected size: the download stops with an error as soon as it passes it. */
  size?: number;
  /** Cap when no `size` is declared (default 1 GiB). */
  maxBytes?: number;
  meter?: TransferMeter;
  signal?: AbortSignal;
  /** Attempts, resuming with a byte range after a broken connection (default 5). */
  attempts?: number;
  /** File mode (default 0o644). */
  mode?: number;
  /** Stall deadlines of the body (defaults: {@link DEFAULT_TIMEOUTS}). */
  timeouts?: Partial<StoreTimeouts>;
  /** Receives a warning for every retry. */
  onProgress?: OnProgress;
}

/**
 * Streams an object into `dest` through a temp file in the same directory, hashing as it
 * writes; a dropped connection resumes where it stopped. A size or sha256 mismatch removes the
 * temp file and fails with COSA_STORE_CHECKSUM_MISMATCH naming the file; success renames into
 * place atomically. Returns the bytes and sha256, or `undefined` when the object is missing.
 */
export async function downloadToFile(
  store: BuildStore,
  key: string,
  dest: string,
  options: DownloadOptions,
): Promise<{ bytes: number; sha256: string } | undefined> {
  const { name, meter, signal } = options;
  const tmp = join(dirname(dest), `.${basename(dest)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  const limit = options.size ?? options.maxBytes ?? 1024 * 1024 * 1024;
  const fh = await open(tmp, 'w+', options.mode ?? 0o644);
  // The hash and the count cover exactly the bytes on disk, so a retry can resume at `written`.
  let hash = createHash('sha256');
  let written = 0;
  let pending: Promise<void> = Promise.resolve();
  const sink = () =>
    new Writable({
      highWaterMark: 1024 * 1024,
      // Chunks that queue up while a write is in flight go down in one writev.
      writev(chunks: Array<{ chunk: Buffer }>, cb) {
        const bufs = chunks.map((c) => c.chunk);
        const len = bufs.reduce((n, b) => n + b.length, 0);
        // Stop at the declared size (or the cap): a lying server cannot fill the disk.
        if (written + len > limit) {
          cb(new CosaError('COSA_STORE_CHECKSUM_MISMATCH', `${name}: ${store.urlOf(key)} sends more than the ${options.size !== undefined ? 'declared' : 'allowed'} ${limit} bytes`, { hint: 'the remote file is corrupt or was tampered with; it was not kept' }));
          return;
        }
        pending = fh.writev(bufs, written).then(({ bytesWritten }) => {
          if (bytesWritten !== len) throw new Error('short write');
          for (const b of bufs) hash.update(b);
          written += len;
          meter?.update(name, written);
        });
        pending.then(() => cb(), cb);
      },
    });
  meter?.start(name, options.size);
  const timeouts = storeTimeouts(options.timeouts);
  let closed = false;
  try {
    const found = await retry(async () => {
      try {
        const obj = await store.get(key, { start: written, ...(signal ? { signal } : {}) });
        if (!obj) {
          if (written > 0) throw new CosaError('COSA_STORE_NOT_FOUND', `${store.urlOf(key)} disappeared during the download`);
          return false;
        }
        if (obj.offset !== written) {
          // The store ignored the range: start over.
          hash = createHash('sha256');
          written = 0;
          await fh.truncate(0);
        }
        await pipeline(obj.body, stallGuard(store.urlOf(key), timeouts), sink(), ...(signal ? [{ signal }] : []));
        return true;
      } catch (e) {
        // The next try resumes at `written`: let the last write land first.
        await pending.catch(() => {});
        throw e;
      }
    }, transferRetry(`downloading ${store.urlOf(key)}`, { attempts: options.attempts, signal, onProgress: options.onProgress }));
    if (!found) {
      meter?.drop(name);
      return undefined;
    }
    const sha256 = hash.digest('hex');
    if ((options.size !== undefined && written !== options.size) || (options.sha256 !== undefined && sha256 !== options.sha256)) {
      throw new CosaError(
        'COSA_STORE_CHECKSUM_MISMATCH',
        `${name}: downloaded ${written} bytes with sha256 ${sha256}, expected ${options.size ?? '?'} bytes with sha256 ${options.sha256 ?? '?'} (${store.urlOf(key)})`,
        { hint: 'the remote file is corrupt or was tampered with; it was not kept' },
      );
    }
    await fh.truncate(written);
    await fh.sync();
    await fh.close();
    closed = true;
    await rename(tmp, dest);
    await fsyncDir(dirname(dest));
    meter?.finish(name);
    return { bytes: written, sha256 };
  } catch (e) {
    meter?.drop(name);
    throw e;
  } finally {
    if (!closed) await fh.close().catch(() => {});
    await rm(tmp, { force: true });
  }
}
