import type { Writable } from 'node:stream';
import type { OnProgress, ProgressEvent } from '@cosa/schema';

/** Human progress: phases with elapsed time, info/warnings; command output only with --verbose. */
export function humanProgress(out: Writable, opts: { verbose: boolean; isTTY: boolean }): OnProgress {
  const t0 = Date.now();
  const lastTransfer = new Map<string, number>();
  return (e: ProgressEvent) => {
    const el = `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
    switch (e.type) {
      case 'phase':
        if (e.status === 'start') out.write(`${el}  ${e.phase}…\n`);
        else if (e.status === 'end') out.write(`${el}  ${e.phase} done in ${((e.elapsedMs ?? 0) / 1000).toFixed(1)}s${e.message ? `: ${e.message}` : ''}\n`);
        else out.write(`${el}  ${e.phase} skipped${e.message ? `: ${e.message}` : ''}\n`);
        break;
      case 'info':
        out.write(`${e.message}\n`);
        break;
      case 'warning':
        out.write(`warning: ${e.message}\n`);
        break;
      case 'command':
        if (opts.verbose) out.write(`${el}  $ ${e.argv.join(' ')}\n`);
        break;
      case 'command-end':
        break;
      case 'log':
        if (opts.verbose) out.write(`${el}  ${e.line}\n`);
        break;
      case 'transfer': {
        const now = Date.now();
        const prev = lastTransfer.get(e.name) ?? 0;
        if (!e.done && now - prev < (opts.isTTY ? 250 : 5000)) break;
        lastTransfer.set(e.name, now);
        const mb = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
        const pct = e.total ? ` ${((100 * e.bytes) / e.total).toFixed(0)}%` : '';
        const rate = e.rateBps ? ` ${mb(e.rateBps)}/s` : '';
        const eta = e.etaSeconds !== undefined && !e.done ? ` ETA ${Math.round(e.etaSeconds)}s` : '';
        out.write(`${el}  ${e.name}: ${mb(e.bytes)}${e.total ? ` / ${mb(e.total)}` : ''}${pct}${rate}${eta}${e.done ? ' done' : ''}\n`);
        break;
      }
    }
  };
}

/** JSON Lines progress: one object per event on stdout. */
export function jsonProgress(out: Writable): OnProgress {
  return (e) => {
    out.write(`${JSON.stringify({ event: e.type, ...e, time: new Date().toISOString() })}\n`);
  };
}
