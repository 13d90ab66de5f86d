/** The host's base arch in the original's names (x86_64, aarch64, ppc64le, s390x, riscv64). */
export function hostArch(): string {
  switch (process.arch) {
    case 'x64': return 'x86_64';
    case 'arm64': return 'aarch64';
    case 'ppc64': return 'ppc64le';
    case 's390x': return 's390x';
    case 'riscv64': return 'riscv64';
    default: return process.arch;
  }
}
