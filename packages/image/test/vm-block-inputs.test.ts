import { describe, expect, test } from 'vitest';
import { vmDiskArgs, vmReadOnlyDevice } from '../src/executor.ts';

describe('block inputs of the VM executor', () => {
  test('are read-only virtio disks after the appliance root and the target, named in that order', () => {
    const a = vmDiskArgs('/c/root', '/t/disk.raw', 512, ['/t/sysroot.tar', '/t/other.img']);
    const devices = a.filter((_, i) => a[i - 1] === '-device');
    expect(devices).toEqual(['virtio-blk-pci,drive=approot', 'virtio-blk-pci,drive=target', 'virtio-blk-pci,drive=ro0', 'virtio-blk-pci,drive=ro1']);
    expect(a).toContain('file=/t/sysroot.tar,format=raw,if=none,id=ro0,readonly=on');
    expect(a).toContain('file=/t/other.img,format=raw,if=none,id=ro1,readonly=on');
    expect(vmReadOnlyDevice(0, true)).toBe('/dev/vdc');
    expect(vmReadOnlyDevice(1, true)).toBe('/dev/vdd');
    expect(vmReadOnlyDevice(0, false)).toBe('/dev/vdb');
  });
});
