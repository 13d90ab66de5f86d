import { describe, expect, test } from 'vitest';
import { qemuArgs } from '../src/index.ts';
import { diskKernelArgs } from '@cosa/image/internal';
import { vmDiskArgs } from '../src/executor.ts';

describe('command lines', () => {
  test('the kernel arguments carry the root label and file system type, the console, extra-kargs, the platform id and the first-boot GRUB variable', () => {
    expect(diskKernelArgs({ 'extra-kargs': ['mitigations=auto'] }, 'metal')).toEqual([
      'root=LABEL=root', 'rootfstype=xfs', 'rw', 'console=ttyS0,115200n8', 'mitigations=auto', 'ignition.platform.id=metal', '$ignition_firstboot',
    ]);
    // The initramfs preloads the root's file system module from rootfstype= (ext4, btrfs too).
    expect(diskKernelArgs({ rootfs: 'ext4' }, 'qemu').slice(0, 3)).toEqual(['root=LABEL=root', 'rootfstype=ext4', 'rw']);
    expect(diskKernelArgs({ rootfs: 'btrfs' }, 'qemu')[1]).toBe('rootfstype=btrfs');
    // An ext4verity root is an ext4 file system to the kernel (mount -t ext4verity would fail the boot).
    expect(diskKernelArgs({ rootfs: 'ext4verity' }, 'qemu')[1]).toBe('rootfstype=ext4');
  });

  test('qemuArgs boots a snapshot of the image with the serial console on the terminal for cosa run', () => {
    const argv = qemuArgs({ image: '/x/disk.qcow2', accel: 'tcg', memoryMiB: 4096, extraDisks: ['/x/extra.qcow2'] });
    expect(argv.join(' ')).toContain('-accel tcg -m 4096');
    expect(argv).toContain('file=/x/disk.qcow2,if=virtio,snapshot=on');
    expect(argv).toContain('file=/x/extra.qcow2,if=virtio,format=qcow2');
    expect(argv.join(' ')).toContain('-serial mon:stdio');
    expect(() => qemuArgs({ image: '/x', accel: 'tcg', firmware: 'uefi' })).toThrow(/OVMF/);
  });

  test('a 4Kn image is attached with 4096-byte logical blocks and boots only with UEFI', () => {
    const argv = qemuArgs({ image: '/x/m4k.raw', accel: 'tcg', firmware: 'uefi', ovmfVars: '/x/vars.fd', sectorSize: 4096 });
    expect(argv).toContain('virtio-blk-pci,drive=disk0,logical_block_size=4096,physical_block_size=4096');
    expect(argv).toContain('file=/x/m4k.raw,if=none,id=disk0,snapshot=on');
    expect(() => qemuArgs({ image: '/x/m4k.raw', accel: 'tcg', sectorSize: 4096 })).toThrow(/boots with UEFI only/);
  });

  test('the VM executor attaches the appliance root first (/dev/vda), then the target disk (/dev/vdb)', () => {
    const a = vmDiskArgs('/c/root', '/t/disk.raw', 4096);
    const devices = a.filter((_, i) => a[i - 1] === '-device');
    expect(devices).toEqual(['virtio-blk-pci,drive=approot', 'virtio-blk-pci,drive=target,logical_block_size=4096,physical_block_size=4096']);
    expect(a).toContain('file=/c/root,format=raw,if=none,id=approot,snapshot=on');
    expect(vmDiskArgs('/c/root', '/t/disk.raw')).toContain('virtio-blk-pci,drive=target');
    expect(vmDiskArgs('/c/root', undefined)).toHaveLength(4);
  });
});
