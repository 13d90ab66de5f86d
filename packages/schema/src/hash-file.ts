import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { OnProgress } from './progress.js';

/** Options of {@link hashFile}. */
export interface HashFileOptions {
  /** Stops the read (the promise rejects with the abort). */
  signal?: AbortSignal | undefined;
  /** Receives `transfer` events (every 64 MiB and at the end) when given. */
  onProgress?: OnProgress | undefined;
  /** Name shown in transfer events (default the path). */
  name?: string | undefined;
}

/**
 * sha256 (hex) and size of a file, read as a stream (an image is never read into memory whole);
 * the one file hash every cosa package uses.
 */
export async function hashFile(path: string, options: HashFileOptions = {}): Promise<{ sha256: string; size: number }> {
  const total = options.onProgress ? (await stat(path)).size : 0;
  const h = createHash('sha256');
  let bytes = 0;
  let last = 0;
  const name = options.name ?? path;
  const s = createReadStream(path, { highWaterMark: 1 << 20, ...(options.signal ? { signal: options.signal } : {}) });
  for await (const chunk of s as AsyncIterable<Buffer>) {
    h.update(chunk);
    bytes += chunk.length;
    if (options.onProgress && bytes - last >= 64 << 20) {
      last = bytes;
      options.onProgress({ type: 'transfer', name, bytes, total });
    }
  }
  options.onProgress?.({ type: 'transfer', name, bytes, total, done: true });
  return { sha256: h.digest('hex'), size: bytes };
}
