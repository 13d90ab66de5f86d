import { setTimeout as sleep } from 'node:timers/promises';
import { CosaError, type OnProgress } from '@cosa/schema';

/** The error code an AWS SDK error carries (`InvalidAMIName.Duplicate`, `NotFound`, …). */
export function awsErrorCode(e: unknown): string | undefined {
  if (e === null || typeof e !== 'object') return undefined;
  const o = e as { name?: unknown; Code?: unknown };
  if (typeof o.Code === 'string') return o.Code;
  return typeof o.name === 'string' ? o.name : undefined;
}

/** True when `e` is an AWS error whose code is one of `codes`. */
export function isAwsError(e: unknown, ...codes: string[]): boolean {
  const code = awsErrorCode(e);
  return code !== undefined && codes.includes(code);
}

/**
 * Runs one AWS request; an SDK error becomes `COSA_AWS_FAILED` naming the request and the
 * region (the SDK's own retries for throttling and 5xx have already been spent by then).
 */
export async function awsCall<T>(what: string, region: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CosaError) throw e;
    if ((e as { name?: string }).name === 'AbortError') throw e;
    const code = awsErrorCode(e) ?? 'Error';
    const message = e instanceof Error ? e.message : String(e);
    throw new CosaError('COSA_AWS_FAILED', `${what} in ${region} failed: ${code}: ${message}`, { cause: e });
  }
}

/** Options of {@link pollUntil}. */
export interface PollOptions<T> {
  /** What is waited for, in words ("import task import-snap-… to complete"). */
  what: string;
  /**
   * Gives the result when done, or the status to keep waiting with: a change of `status` is
   * shown as an `info` line, a change of `detail` (e.g. a percentage) as a `log` line.
   */
  check: () => Promise<{ done: true; value: T } | { done: false; status: string; detail?: string }>;
  /** Give up after this long (ms). */
  timeoutMs: number;
  /** Delays between checks (ms): the first, doubled each time up to `maxIntervalMs`. */
  intervalMs?: number;
  maxIntervalMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/**
 * Checks until `check` says done, waiting a growing interval between checks; fails with
 * `COSA_AWS_TIMEOUT` naming what it waited for when the deadline passes.
 */
export async function pollUntil<T>(o: PollOptions<T>): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  let interval = o.intervalMs ?? 1000;
  const maxInterval = o.maxIntervalMs ?? 15_000;
  let lastStatus = '';
  let lastDetail = '';
  for (;;) {
    o.signal?.throwIfAborted();
    const r = await o.check();
    if (r.done) return r.value;
    if (r.status !== lastStatus) o.onProgress?.({ type: 'info', message: `waiting for ${o.what}: ${r.status}` });
    else if ((r.detail ?? '') !== lastDetail) o.onProgress?.({ type: 'log', line: `waiting for ${o.what}: ${r.status} ${r.detail}` });
    lastStatus = r.status;
    lastDetail = r.detail ?? '';
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new CosaError('COSA_AWS_TIMEOUT', `gave up waiting for ${o.what} after ${Math.round(o.timeoutMs / 1000)} s (last status: ${r.status})`, {
        hint: 'a re-run resumes the wait; a longer --timeout gives it more time',
      });
    }
    await sleep(Math.min(interval, left), undefined, o.signal ? { signal: o.signal } : {});
    interval = Math.min(interval * 2, maxInterval);
  }
}
