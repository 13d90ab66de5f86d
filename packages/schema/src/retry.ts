/**
 * The one retry loop of cosa: every repeated request, command or write goes through
 * {@link retry}, so attempts, backoff, deadlines, abort and the "retrying" warning behave the
 * same everywhere. (p-retry was considered: it refuses to retry most TypeErrors by itself, turns
 * an abort into `signal.reason` rather than a caller's own error code, and its jitter multiplies
 * the delay by 1–2; this is the same idea in ~80 lines without those surprises.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { OnProgress } from './progress.js';

/** What {@link RetryOptions.onRetry} is told before the wait that precedes another try. */
export interface RetryInfo {
  /** The failure of the try that just ended. */
  error: unknown;
  /** The try that failed (1-based). */
  attempt: number;
  /** Tries in all (`Infinity` when only a deadline bounds them). */
  attempts: number;
  /** The wait before the next try (ms). */
  delayMs: number;
}

/** Options of {@link retry}. */
export interface RetryOptions {
  /** Tries in all, the first included (default 3). */
  attempts?: number;
  /** The wait after the failed try `attempt` (ms); default {@link backoffDelay}. */
  delayMs?: number | ((attempt: number, error: unknown) => number);
  /** Whether a failure is worth another try (default: every failure is). */
  retryIf?: (error: unknown, attempt: number) => boolean;
  /** Stops the retries: no new try starts, a wait in progress ends at once. */
  signal?: AbortSignal;
  /**
   * No try starts later than this many ms after the first one began: when the wait would pass it,
   * the last failure is thrown instead. (An attempt in flight is bounded by the caller's signal.)
   */
  deadlineMs?: number;
  /** Called before each wait; {@link retryWarning} makes one that emits the usual warning. */
  onRetry?: (info: RetryInfo) => void;
  /**
   * What to throw when `signal` aborts: given the failed try's error (or, during a wait, the
   * signal's reason). Default: that value as it is.
   */
  abortError?: (cause: unknown) => unknown;
}

/**
 * Backoff after the failed try `attempt` (1-based): `baseMs` doubling per try, capped at `maxMs`,
 * with "equal jitter" (a random point in the upper half), so retrying clients spread out.
 */
export function backoffDelay(attempt: number, options: { baseMs?: number; maxMs?: number } = {}): number {
  const base = Math.min(options.maxMs ?? 5_000, (options.baseMs ?? 200) * 2 ** Math.max(0, attempt - 1));
  return base / 2 + Math.random() * (base / 2);
}

/** The text of a retry warning: `<what>: attempt 2 of 5 failed (<first line of the error>); retrying`. */
export function retryMessage(what: string, info: Pick<RetryInfo, 'error' | 'attempt' | 'attempts'>): string {
  const e = info.error;
  const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
  return `${what}: attempt ${info.attempt} of ${info.attempts} failed (${why}); retrying`;
}

/** An `onRetry` that reports every retry of `what` as a `warning` progress event. */
export function retryWarning(onProgress: OnProgress | undefined, what: string): (info: RetryInfo) => void {
  return (info) => onProgress?.({ type: 'warning', message: retryMessage(what, info) });
}

/**
 * The retry decision after the failed try `attempt`: the wait before the next try (ms), or
 * `undefined` when there is none (not retryable, tries spent, deadline passed, signal aborted).
 * A retry is reported through `onRetry`. {@link retry} is built on it; a loop that is not ours
 * (undici's retry interceptor) calls it to follow the same policy.
 */
export function nextRetryDelay(error: unknown, attempt: number, options: RetryOptions, startedAt = Date.now()): number | undefined {
  const attempts = options.attempts ?? 3;
  if (options.signal?.aborted || attempt >= attempts || (options.retryIf && !options.retryIf(error, attempt))) return undefined;
  const d = options.delayMs;
  const delayMs = Math.max(0, typeof d === 'number' ? d : d ? d(attempt, error) : backoffDelay(attempt));
  if (options.deadlineMs !== undefined && Date.now() + delayMs - startedAt > options.deadlineMs) return undefined;
  options.onRetry?.({ error, attempt, attempts, delayMs });
  return delayMs;
}

/**
 * Runs `fn` until it succeeds, a failure is not worth retrying (`retryIf`), the tries are spent,
 * the deadline passes or `signal` aborts; then throws the last failure (or the abort error).
 * `fn` receives the try number (1-based).
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { signal } = options;
  const aborted = (cause: unknown): unknown => (options.abortError ? options.abortError(cause) : cause);
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (signal?.aborted) throw aborted(error);
      const delayMs = nextRetryDelay(error, attempt, options, started);
      if (delayMs === undefined) throw error;
      if (delayMs > 0 || signal) {
        try {
          await sleep(delayMs, undefined, signal ? { signal } : {});
        } catch {
          throw aborted(signal?.reason);
        }
      }
    }
  }
}
