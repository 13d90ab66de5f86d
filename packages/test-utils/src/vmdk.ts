import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';

/**
 * Writes a small stream-optimized VMDK (as the aws platform writes) of `virtualBytes` at
 * `file`: qemu-img converts a sparse raw file with a few bytes of data.
 */
export function makeTestVmdk(file: string, virtualBytes = 1.5 * 1024 ** 3, seed = 'cosa'): void {
  const raw = `${file}.raw`;
  writeFileSync(raw, '');
  const fd = openSync(raw, 'r+');
  writeSync(fd, Buffer.from(`${seed} `.repeat(1000)), 0, undefined, 1024 * 1024);
  closeSync(fd);
  execFileSync('truncate', ['-s', String(virtualBytes), raw]);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'adapter_type=lsilogic,subformat=streamOptimized,compat6', raw, file]);
  rmSync(raw);
}
