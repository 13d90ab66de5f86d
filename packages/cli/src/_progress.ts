import type { Writable } from 'node:stream';
import type { OnProgress, ProgressEvent } from '@cosa/schema';

/**
 * A progress renderer: `onProgress` for the SDK, `close()` to take the status line off the
 * terminal before the command prints its result or an error.
 */
export interface ProgressRenderer {
  onProgress: OnProgress;
  close(): void;
}

/** Options of {@link humanProgress}. */
export interface HumanProgressOptions {
  /** Print every command cosa runs and its output. */
  verbose: boolean;
  /** The stream is a terminal: keep one status line rewritten in place. */
  isTTY: boolean;
  /** ANSI colours (a terminal without NO_COLOR). */
  color: boolean;
  /** Terminal width (default: the stream's `columns`, else 80). */
  columns?: number;
}

const MiB = 1048576;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** `12s`, `3m04s`, `1h02m`: an ETA or elapsed time that fits the status line. */
export function shortDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A text bar `[#####.....]` of `width` cells for `fraction` (0..1). */
export function bar(fraction: number, width: number): string {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

interface Transfer {
  name: string;
  bytes: number;
  total?: number;
  rateBps?: number;
  etaSeconds?: number;
  first: number;
}

/** What the status line shows: the innermost running phase and the latest transfer. */
class Status {
  readonly phases: { phase: string; t0: number }[] = [];
  transfer: Transfer | undefined;

  render(now: number, columns: number): string {
    const ph = this.phases.at(-1);
    const parts: string[] = [];
    if (ph) parts.push(`${ph.phase} ${shortDuration((now - ph.t0) / 1000)}`);
    const t = this.transfer;
    if (t) {
      const elapsed = (now - t.first) / 1000;
      const rate = t.rateBps ?? (elapsed > 1 ? t.bytes / elapsed : undefined);
      const eta = t.etaSeconds ?? (t.total && rate ? (t.total - t.bytes) / rate : undefined);
      const size = t.total ? `${mib(t.bytes)}/${mib(t.total)}` : mib(t.bytes);
      const pct = t.total ? ` ${bar(t.bytes / t.total, 20)} ${Math.floor((100 * t.bytes) / t.total)}%` : '';
      parts.push(`${t.name}${pct} ${size}${rate ? ` ${mib(rate)}/s` : ''}${eta !== undefined ? ` ETA ${shortDuration(eta)}` : ''}`);
    }
    const line = parts.join(' · ');
    return line.length > columns - 1 ? `${line.slice(0, columns - 2)}…` : line;
  }
}

/**
 * Human progress on stderr. On a terminal one status line (phase, elapsed time, a bar with rate
 * and ETA for transfers) is rewritten in place and finished phases scroll above it; otherwise plain
 * lines (transfers at most every 5 s). Command output only with `verbose`.
 */
export function humanProgress(out: Writable, opts: HumanProgressOptions): ProgressRenderer {
  const t0 = Date.now();
  const lastTransfer = new Map<string, number>();
  const status = new Status();
  const paint = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  let shown = false;
  let lastDraw = 0;
  let trailing: NodeJS.Timeout | undefined;
  const clear = () => {
    if (shown) out.write('\r\x1b[2K');
    shown = false;
  };
  const draw = (force = false) => {
    if (!opts.isTTY) return;
    const now = Date.now();
    if (!force && now - lastDraw < 100) {
      // Throttled: draw the latest state once the interval is over.
      trailing ??= setTimeout(() => ((trailing = undefined), draw(true)), 100 - (now - lastDraw));
      trailing.unref();
      return;
    }
    lastDraw = now;
    const line = status.render(now, opts.columns ?? (out as { columns?: number }).columns ?? 80);
    out.write(`\r\x1b[2K${line ? paint('2', line) : ''}`);
    shown = line !== '';
  };
  const println = (s: string) => {
    clear();
    out.write(`${s}\n`);
    draw(true);
  };
  const ticker = opts.isTTY ? setInterval(() => draw(true), 1000) : undefined;
  ticker?.unref();

  const onProgress = (e: ProgressEvent) => {
    const el = `${secs(Date.now() - t0).padStart(7)}`;
    switch (e.type) {
      case 'phase':
        if (e.status === 'start') {
          status.phases.push({ phase: e.phase, t0: Date.now() });
          if (opts.isTTY) draw(true);
          else println(`${el}  ${e.phase}…`);
          break;
        }
        // The innermost phase of that name ends (a failed phase never ends: it stays until close).
        for (let i = status.phases.length - 1; i >= 0; i--) {
          if (status.phases[i]!.phase === e.phase) {
            status.phases.splice(i, 1);
            break;
          }
        }
        if (e.status === 'end') println(`${el}  ${e.phase} ${paint('32', 'done')} in ${secs(e.elapsedMs ?? 0)}${e.message ? `: ${e.message}` : ''}`);
        else println(`${el}  ${e.phase} skipped${e.message ? `: ${e.message}` : ''}`);
        break;
      case 'info':
        println(e.message);
        break;
      case 'warning':
        println(`${paint('33', 'warning:')} ${e.message}`);
        break;
      case 'command':
        if (opts.verbose) println(`${el}  $ ${e.argv.join(' ')}`);
        break;
      case 'command-end':
        break;
      case 'log':
        if (opts.verbose) println(`${el}  ${e.line}`);
        break;
      case 'transfer':
        onTransfer(e, el);
        break;
    }
  };
  const onTransfer = (e: Extract<ProgressEvent, { type: 'transfer' }>, el: string) => {
    const now = Date.now();
    if (opts.isTTY) {
      const same = status.transfer?.name === e.name;
      const first = same && status.transfer ? status.transfer.first : now;
      status.transfer = e.done ? undefined : { ...e, first };
      if (e.done) println(`${el}  ${e.name}: ${mib(e.bytes)} ${paint('32', 'done')}`);
      else draw(!same);
      return;
    }
    const prev = lastTransfer.get(e.name) ?? 0;
    if (!e.done && now - prev < 5000) return;
    lastTransfer.set(e.name, now);
    const pct = e.total ? ` ${((100 * e.bytes) / e.total).toFixed(0)}%` : '';
    const rate = e.rateBps ? ` ${mib(e.rateBps)}/s` : '';
    const eta = e.etaSeconds !== undefined && !e.done ? ` ETA ${Math.round(e.etaSeconds)}s` : '';
    println(`${el}  ${e.name}: ${mib(e.bytes)}${e.total ? ` / ${mib(e.total)}` : ''}${pct}${rate}${eta}${e.done ? ' done' : ''}`);
  };
  return {
    onProgress,
    close: () => {
      if (ticker) clearInterval(ticker);
      if (trailing) clearTimeout(trailing);
      trailing = undefined;
      clear();
    },
  };
}

/** JSON Lines progress: one object per event on stdout (`{"event": type, …fields, "time"}`). */
export function jsonProgress(out: Writable): ProgressRenderer {
  return {
    onProgress: (e) => {
      out.write(`${JSON.stringify({ event: e.type, ...e, time: new Date().toISOString() })}\n`);
    },
    close: () => {},
  };
}

/**
 * Whether to colour output written to `stream`: a terminal whose colour depth allows it; Node's
 * `hasColors()` honours NO_COLOR, NODE_DISABLE_COLORS, FORCE_COLOR and TERM=dumb, and NO_COLOR
 * is checked here too (any non-empty value, as no-color.org says).
 */
export function useColor(stream: Writable, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  const s = stream as { isTTY?: boolean; hasColors?: () => boolean };
  return s.isTTY === true && typeof s.hasColors === 'function' && s.hasColors();
}
