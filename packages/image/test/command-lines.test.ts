import { describe, expect, test } from 'vitest';
import { diskKernelArgs, qemuArgs } from '../src/index.ts';

describe('command lines', () => {
  test('the kernel arguments carry the root label, the console, extra-kargs and the platform id', () => {
    expect(diskKernelArgs({ 'extra-kargs': ['mitigations=auto'] }, 'metal')).toEqual([
      'root=LABEL=root', 'rw', 'console=ttyS0,115200n8', 'mitigations=auto', 'ignition.platform.id=metal',
    ]);
  });

  test('qemuArgs boots a snapshot of the image with the serial console on the terminal for cosa run', () => {
    const argv = qemuArgs({ image: '/x/disk.qcow2', accel: 'tcg', memoryMiB: 4096, extraDisks: ['/x/extra.qcow2'] });
    expect(argv.join(' ')).toContain('-accel tcg -m 4096');
    expect(argv).toContain('file=/x/disk.qcow2,if=virtio,snapshot=on');
    expect(argv).toContain('file=/x/extra.qcow2,if=virtio,format=qcow2');
    expect(argv.join(' ')).toContain('-serial mon:stdio');
    expect(() => qemuArgs({ image: '/x', accel: 'tcg', firmware: 'uefi' })).toThrow(/OVMF/);
  });
});
