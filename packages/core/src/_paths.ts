import { lstat, stat } from 'node:fs/promises';
import { CosaError, type CosaErrorCode } from '@cosa/schema';

const ARCHES: Record<string, string> = {
  x64: 'x86_64',
  arm64: 'aarch64',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

/** The host architecture under the original's names (`x86_64`, `aarch64`, `ppc64le`, `s390x`, `riscv64`). */
export function hostArch(): string {
  return ARCHES[process.arch] ?? process.arch;
}

/** True when `s` is one safe path segment (not empty, no `/` or `\`, not `.`/`..`, no NUL). */
export function isSafeSegment(s: string): boolean {
  return s.length > 0 && !s.includes('/') && !s.includes('\\') && s !== '.' && s !== '..' && !s.includes('\0');
}

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
