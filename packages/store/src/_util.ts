import { Transform } from 'node:stream';
import { CosaError, HttpStatusError } from '@cosa/schema';

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

/** Backoff before attempt `n` (1-based): 200 ms doubling, capped at 5 s, with jitter. */
export function backoffMs(n: number): number {
  const base = Math.min(5_000, 200 * 2 ** (n - 1));
  return base / 2 + Math.random() * (base / 2);
}

/** True when a failed request is worth repeating: connection errors, timeouts, 5xx and 429. */
export function isTransient(e: unknown): boolean {
  if (e instanceof CosaError) {
    if (e.code === 'COSA_STORE_ABORTED') return false;
    if (e instanceof HttpStatusError) return e.status >= 500 || e.status === 429;
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
