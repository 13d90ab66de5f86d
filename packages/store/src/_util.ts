import { Transform } from 'node:stream';
import type { OnProgress } from '@cosa/schema';
import { CosaError, HttpStatusError } from '@cosa/schema';
import { backoffDelay, retryWarning, type RetryOptions } from '@cosa/schema/internal';

/** A pass-through that reports the running byte count (never puts the source in flowing mode early). */
export function countingStream(onBytes: ((n: number) => void) | undefined): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onBytes?.(n);
      cb(null, chunk);
    },
  });
}

/** A URL as it may be shown: no user info, no query string, no fragment. */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(url.toString());
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return '<invalid URL>';
  }
}

/** Checks a store key: `/`-separated single segments, none empty, `.` or `..`. */
export function checkKey(key: string): string {
  const parts = key.split('/');
  if (key.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\\') || p.includes('\0'))) {
    throw new CosaError('COSA_PATH_UNSAFE', `unsafe store key: ${JSON.stringify(key)}`);
  }
  return key;
}

/** Joins a prefix (may be empty) and a key with `/`. */
export function joinKey(prefix: string, key: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  return p === '' ? key : `${p}/${key}`;
}

/** Turns an abort into a CosaError with a stable code. */
export function abortError(signal: AbortSignal | undefined, cause?: unknown): CosaError {
  return new CosaError('COSA_STORE_ABORTED', 'transfer aborted', { cause: cause ?? signal?.reason });
}

/** Throws the abort error when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** Resolves after `ms`, or rejects when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** True when a failed request is worth repeating: connection errors, timeouts, 5xx and 429. */
export function isTransient(e: unknown): boolean {
  if (e instanceof CosaError) {
    if (e.code === 'COSA_STORE_ABORTED') return false;
    if (e instanceof HttpStatusError) return e.status >= 500 || e.status === 429;
    if (e.code === 'COSA_STORE_TIMEOUT') return true;
    if (e.code !== 'COSA_STORE_UNREACHABLE') return false;
    // A certificate that is not trusted stays untrusted: no point in retrying.
    const code = String((e.cause as { code?: unknown } | undefined)?.code ?? '');
    return !/CERT|TLS|SSL|SIGNATURE/.test(code);
  }
  if (e instanceof Error && (e.name === 'AbortError' || e.name === 'ChecksumError')) return false;
  return true;
}

/** True when `e` says the signal aborted the operation. */
export function isAbort(e: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (e instanceof CosaError && e.code === 'COSA_STORE_ABORTED');
}

/** Normalises an ETag for comparison: no weak prefix, no quotes. */
export function bareEtag(etag: string | undefined): string | undefined {
  return etag?.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
}


/** An RFC 3339 UTC timestamp without fractions, like the original writes. */
export function rfc3339(date: Date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** Network deadlines of a store (milliseconds; rates in bytes per second). */
export interface StoreTimeouts {
  /** TCP/TLS connect (default 10 s). */
  connectMs: number;
  /** From the request sent to the response headers (default 30 s). */
  headersMs: number;
  /** Longest silence inside a response body or while sending one (default 30 s). */
  idleMs: number;
  /** A body slower than this over `rateWindowMs` counts as stalled (default 1 KiB/s). */
  minBytesPerSecond: number;
  /** The window the rate is measured over (default 60 s). */
  rateWindowMs: number;
  /** Whole read of a metadata object (builds.json, meta.json), retries included (default 2 min). */
  metadataDeadlineMs: number;
}

/** The deadlines used when none are given. */
export const DEFAULT_TIMEOUTS: StoreTimeouts = {
  connectMs: 10_000,
  headersMs: 30_000,
  idleMs: 30_000,
  minBytesPerSecond: 1024,
  rateWindowMs: 60_000,
  metadataDeadlineMs: 120_000,
};

/** `DEFAULT_TIMEOUTS` with `t` over it. */
export function storeTimeouts(t: Partial<StoreTimeouts> | undefined): StoreTimeouts {
  return { ...DEFAULT_TIMEOUTS, ...t };
}

/**
 * Watches a body that is read without a stream: call `moved(n)` for every chunk; `onStall` gets
 * a COSA_STORE_TIMEOUT error when nothing moves for `idleMs`, or fewer than `minBytesPerSecond`
 * move over a `rateWindowMs` window. `stop()` ends the watch.
 */
export function stallWatch(url: string, t: StoreTimeouts, onStall: (e: CosaError) => void): { moved(n: number): void; stop(): void } {
  let last = Date.now();
  let windowStart = last;
  let windowBytes = 0;
  const tick = Math.max(10, Math.min(1000, Math.floor(Math.min(t.idleMs, t.rateWindowMs) / 4)));
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - last >= t.idleMs) {
      clearInterval(timer);
      onStall(new CosaError('COSA_STORE_TIMEOUT', `${url}: no data for ${t.idleMs / 1000} s`));
    } else if (now - windowStart >= t.rateWindowMs) {
      const rate = (windowBytes * 1000) / (now - windowStart);
      if (rate < t.minBytesPerSecond) {
        clearInterval(timer);
        onStall(new CosaError('COSA_STORE_TIMEOUT', `${url}: ${Math.round(rate)} bytes/s over ${t.rateWindowMs / 1000} s, below the minimum of ${t.minBytesPerSecond}`));
      }
      windowStart = now;
      windowBytes = 0;
    }
  }, tick);
  timer.unref();
  return {
    moved(n: number) {
      last = Date.now();
      windowBytes += n;
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * A pass-through that fails with COSA_STORE_TIMEOUT when the stream it carries stays silent
 * for `idleMs`, or moves fewer than `minBytesPerSecond` over a `rateWindowMs` window (a server
 * trickling a byte every few seconds never trips an idle timeout).
 */
export function stallGuard(url: string, t: StoreTimeouts): Transform {
  const watch = stallWatch(url, t, (e) => guard.destroy(e));
  const guard: Transform = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      watch.moved(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      watch.stop();
      cb();
    },
    destroy(err, cb) {
      watch.stop();
      cb(err);
    },
  });
  return guard;
}

/**
 * The retry policy of a store transfer, for {@link retry}: `attempts` tries, transient failures
 * only ({@link isTransient}), an abort as COSA_STORE_ABORTED, every retry a warning naming `what`.
 */
export function transferRetry(what: string, o: { attempts?: number; signal?: AbortSignal | undefined; onProgress?: OnProgress | undefined }): RetryOptions {
  return {
    attempts: o.attempts ?? 5,
    retryIf: isTransient,
    ...(o.signal ? { signal: o.signal } : {}),
    abortError: (cause) => abortError(o.signal, cause),
    onRetry: retryWarning(o.onProgress, what),
  };
}
