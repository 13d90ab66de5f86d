import { describe, expect, test } from 'vitest';
import { DEFAULT_FIRSTBOOT_NETWORK_KARGS, firstbootNetworkKargs, firstbootStamp, grubConfig, rootfsArgs, rootMkfs } from '../src/_firstboot.ts';
import { editKernelArguments, rewriteGrubConfig } from '../src/set-platform.ts';

describe('the Ignition first-boot contract', () => {
  test('ignition-network-kcmdline: absent gives the original default, [] gives none, a list is kept', () => {
    expect(firstbootNetworkKargs(undefined)).toEqual(['rd.neednet=1', 'ip=dhcp,dhcp6']);
    expect(firstbootNetworkKargs({})).toBe(DEFAULT_FIRSTBOOT_NETWORK_KARGS);
    expect(firstbootNetworkKargs({ 'ignition-network-kcmdline': [] })).toEqual([]);
    expect(firstbootNetworkKargs({ 'ignition-network-kcmdline': ['ip=eth0:dhcp'] })).toEqual(['ip=eth0:dhcp']);
  });

  test('the stamp is empty without network arguments, else one GRUB set of ignition_network_kcmdline', () => {
    expect(firstbootStamp([])).toBe('');
    expect(firstbootStamp(['rd.neednet=1', 'ip=dhcp,dhcp6'])).toBe("set ignition_network_kcmdline='rd.neednet=1 ip=dhcp,dhcp6'\n");
    expect(() => firstbootStamp(["ip='x"])).toThrow(/ignition-network-kcmdline/);
    expect(() => firstbootStamp(['a b'])).toThrow(/not a single kernel argument/);
  });

  test("cosa's grub.cfg expands $ignition_firstboot from the stamp, has the console block and ends in blscfg", () => {
    const cfg = grubConfig(undefined);
    expect(cfg).toContain('if [ -f "/ignition.firstboot" ]; then');
    expect(cfg).toContain('source "/ignition.firstboot"');
    expect(cfg).toContain('set ignition_firstboot="ignition.firstboot ${ignition_network_kcmdline}"');
    expect(cfg).toMatch(/# CONSOLE-SETTINGS-START\nserial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n# CONSOLE-SETTINGS-END/);
    expect(cfg.trimEnd().split('\n').at(-1)).toBe('blscfg');
    // A platform switch replaces the console block and keeps the first-boot logic.
    const aws = rewriteGrubConfig(cfg, { platformId: 'aws', remove: [], add: [] }, ['serial --speed=115200 --unit=1']);
    expect(aws).toMatch(/# CONSOLE-SETTINGS-START\nserial --speed=115200 --unit=1\n# CONSOLE-SETTINGS-END/);
    expect(aws).toContain('source "/ignition.firstboot"');
  });

  test('grub-script replaces the config; the console commands go after its CONSOLE-SETTINGS-START line', () => {
    expect(grubConfig({ 'grub-script': 'set x=1\n# CONSOLE-SETTINGS-START\n# CONSOLE-SETTINGS-END\nblscfg' }, ['serial'])).toBe(
      'set x=1\n# CONSOLE-SETTINGS-START\nserial\n# CONSOLE-SETTINGS-END\nblscfg\n',
    );
    expect(grubConfig({ 'grub-script': 'blscfg\n' })).toBe('blscfg\n');
  });

  test('a platform switch keeps $ignition_firstboot on the kernel command line', () => {
    const out = editKernelArguments('root=LABEL=root rw ignition.platform.id=qemu $ignition_firstboot ostree=/ostree/boot.1/x', { platformId: 'aws', remove: [], add: ['console=ttyS0'] });
    expect(out.split(' ')).toEqual(['root=LABEL=root', 'rw', 'ignition.platform.id=aws', '$ignition_firstboot', 'ostree=/ostree/boot.1/x', 'console=ttyS0']);
  });
});

describe('file system choices', () => {
  test('each rootfs names its mkfs; an unknown one is refused naming the key', () => {
    expect(['xfs', 'ext4', 'ext4verity', 'btrfs'].map(rootMkfs)).toEqual(['mkfs.xfs', 'mkfs.ext4', 'mkfs.ext4', 'mkfs.btrfs']);
    expect(() => rootMkfs('zfs')).toThrow(/image.yaml rootfs: "zfs"/);
  });

  test('rootfs-args are split on whitespace; shell syntax and paths are refused naming the key', () => {
    expect(rootfsArgs({ 'rootfs-args': ' -i  size=512 -n ftype=1 ' })).toEqual(['-i', 'size=512', '-n', 'ftype=1']);
    expect(rootfsArgs({})).toEqual([]);
    expect(() => rootfsArgs({ 'rootfs-args': '-L x; rm -rf /' })).toThrow(/image.yaml rootfs-args: ";"|image.yaml rootfs-args: "x;"/);
    expect(() => rootfsArgs({ 'rootfs-args': '/dev/sda' })).toThrow(/rootfs-args/);
  });
});
