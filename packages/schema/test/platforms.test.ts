import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '@cosa/test-utils';
import { SchemaError } from '@cosa/schema';
import { loadPlatforms } from '../src/platforms.js';
import { caught, configDir } from './_config-dir.js';

const file = fixturePath('fcos-config', 'platforms.yaml');

describe('platforms.yaml', () => {
  it('gives kernel arguments and grub commands per platform for x86_64', async () => {
    const p = await loadPlatforms({ file, arch: 'x86_64' });
    expect(Object.keys(p).sort()).toEqual(['aws', 'azure', 'gcp', 'ibmcloud', 'kubevirt', 'openstack', 'packet', 'qemu', 'virtualbox', 'vmware']);
    expect(p.qemu).toEqual({
      grub_commands: ['serial --speed=115200', 'terminal_input serial console', 'terminal_output serial console'],
      kernel_arguments: ['console=tty0', 'console=ttyS0,115200n8'],
    });
    expect(p.packet?.kernel_arguments).toEqual(['console=ttyS1,115200n8']);
    // azure has no grub_commands: an empty list, not undefined.
    expect(p.azure?.grub_commands).toEqual([]);
  });

  it('gives the aarch64 platforms, and none for an arch the file does not mention', async () => {
    const a = await loadPlatforms({ file, arch: 'aarch64' });
    expect(a.azure?.kernel_arguments).toEqual(['console=tty0', 'console=ttyAMA0,115200n8']);
    expect(a.qemu?.kernel_arguments).toEqual([]);
    expect(await loadPlatforms({ file, arch: 's390x' })).toEqual({});
  });

  it('accepts an empty arch or platform entry', async () => {
    const dir = await configDir({ 'platforms.yaml': 'x86_64:\n  metal:\ns390x:\n' });
    expect(await loadPlatforms({ file: join(dir, 'platforms.yaml'), arch: 'x86_64' })).toEqual({ metal: { grub_commands: [], kernel_arguments: [] } });
    expect(await loadPlatforms({ file: join(dir, 'platforms.yaml'), arch: 's390x' })).toEqual({});
  });

  it('names the arch.platform.key of a wrong value, even for another arch', async () => {
    const dir = await configDir({ 'platforms.yaml': 'ppc64le:\n  qemu:\n    kernel_arguments: console=hvc0\n' });
    const e = await caught(() => loadPlatforms({ file: join(dir, 'platforms.yaml'), arch: 'x86_64' }));
    expect(e).toBeInstanceOf(SchemaError);
    expect((e as unknown as SchemaError).issues[0]?.path).toBe('ppc64le.qemu.kernel_arguments');
  });
});
