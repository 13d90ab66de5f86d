import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

/** sha256 (hex) and size of a file, streamed: an image is never read into memory whole. */
export async function hashFile(path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024, signal })) h.update(chunk as Buffer);
  return { sha256: h.digest('hex'), size: (await stat(path)).size };
}
