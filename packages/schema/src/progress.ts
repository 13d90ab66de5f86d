/**
 * Progress events. Long operations take an `onProgress` callback; the CLI renders the events as
 * bars on a TTY or as JSON Lines with `--json`. The SDK itself never writes to the console.
 */
export type ProgressEvent =
  /** A phase of an operation started or ended. */
  | { type: 'phase'; phase: string; status: 'start' | 'end' | 'skip'; elapsedMs?: number; message?: string }
  /** An external command is about to run (argv never contains secrets). */
  | { type: 'command'; argv: string[] }
  /** An external command finished (success or failure) after `durationMs`. */
  | { type: 'command-end'; argv: string[]; durationMs: number; exitCode: number | undefined }
  /** One line of a command's output, or a log line of ours. */
  | { type: 'log'; line: string; stream?: 'stdout' | 'stderr'; phase?: string }
  /** Bytes moved for one artifact (and optionally the overall total). */
  | { type: 'transfer'; name: string; bytes: number; total?: number; rateBps?: number; etaSeconds?: number; done?: boolean }
  /** A human-readable message worth showing (e.g. "No changes since build X"). */
  | { type: 'info'; message: string }
  /** Something is off but the operation goes on. */
  | { type: 'warning'; message: string };

/** Callback receiving progress events. */
export type OnProgress = (event: ProgressEvent) => void;

/** A callback that drops every event: the default when the caller passes none. */
export const noProgress: OnProgress = () => {};

/**
 * Runs `fn` as a named phase: emits `start`, then `end` with the elapsed time. When `fn` throws,
 * no `end` is emitted, so a renderer can tell a failed phase from a finished one.
 */
export async function withPhase<T>(onProgress: OnProgress | undefined, phase: string, fn: () => Promise<T>): Promise<T> {
  const emit = onProgress ?? noProgress;
  const t0 = performance.now();
  emit({ type: 'phase', phase, status: 'start' });
  const result = await fn();
  emit({ type: 'phase', phase, status: 'end', elapsedMs: Math.round(performance.now() - t0) });
  return result;
}
