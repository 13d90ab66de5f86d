import { lstat, stat } from 'node:fs/promises';
import { CosaError, type CosaErrorCode } from '@cosa/schema';
import { hostArch, isSafeSegment } from './arch.js';

export { hostArch, isSafeSegment };

/** Throws unless `value` is one safe path segment; `what` names it in the message (e.g. `build id`). */
export function assertSegment(value: string, what: string, code: CosaErrorCode = 'COSA_BUILD_ID_INVALID'): string {
  if (!isSafeSegment(value)) {
    throw new CosaError(code, `invalid ${what} ${JSON.stringify(value)}: must be a single path segment (no "/", "..", or absolute path)`);
  }
  return value;
}

export async function pathExists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw e;
  }
}

export async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw e;
  }
}

/** RFC 3339 UTC without fractions, as the original writes (`2020-10-30T16:45:21Z`). */
export function rfc3339Now(now: Date = new Date()): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
