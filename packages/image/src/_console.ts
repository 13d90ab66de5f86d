import { open } from 'node:fs/promises';

/**
 * Follows a growing file (a serial console log) and hands each new chunk to `onText`, until
 * `stop()` is called. Polling: the writer is qemu, which we cannot ask for a pipe we drain.
 */
export function followFile(path: string, onText: (text: string) => void, intervalMs = 200): { stop: () => Promise<void> } {
  let offset = 0;
  let stopped = false;
  let busy: Promise<void> = Promise.resolve();
  const poll = async (): Promise<void> => {
    const fh = await open(path, 'r').catch(() => undefined);
    if (!fh) return;
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        onText(buf.subarray(0, bytesRead).toString('utf8'));
      }
    } finally {
      await fh.close();
    }
  };
  const timer = setInterval(() => {
    if (!stopped) busy = busy.then(poll, poll);
  }, intervalMs);
  return {
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await busy.catch(() => {});
      await poll().catch(() => {});
    },
  };
}

/** The last `lines` lines of `text`, without terminal control noise. */
export function tail(text: string, lines = 40): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
  return clean.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Splits streamed text into complete lines, keeping the unfinished rest for the next chunk. */
export function lineSplitter(onLine: (line: string) => void): (text: string) => void {
  let rest = '';
  return (text) => {
    rest += text;
    let i: number;
    while ((i = rest.indexOf('\n')) >= 0) {
      onLine(rest.slice(0, i).replace(/\r$/, ''));
      rest = rest.slice(i + 1);
    }
  };
}
