import { hostBasearch } from '@cosa/schema';

/** The host architecture under the original's names (`x86_64`, `aarch64`, `ppc64le`, `s390x`, `riscv64`). */
export function hostArch(): string {
  return hostBasearch();
}

/** True when `s` is one safe path segment (not empty, no `/` or `\`, not `.`/`..`, no NUL): a valid build id or arch. */
export function isSafeSegment(s: string): boolean {
  return s.length > 0 && !s.includes('/') && !s.includes('\\') && s !== '.' && s !== '..' && !s.includes('\0');
}
