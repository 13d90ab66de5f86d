import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { isCosaError, parseYamlText } from '@cosa/schema';
import { fixturePath } from '@cosa/test-utils';
import { listPlatforms } from '../src/index.js';
import { getPlatform, platformArtifactName, type PlatformsConfig } from '@cosa/image/internal';
import { editKernelArguments, rewriteBlsEntry, rewriteGrubConfig } from '../src/set-platform.js';
import { resolvePlatform } from '../src/platforms.js';
import { BLS_OPTIONS, blsEntry, grubCfg } from './platform-fixture.js';

describe('platform table', () => {
  it('knows every platform of the brief with its format and extension', () => {
    expect(listPlatforms()).toEqual(
      [
        'aliyun', 'applehv', 'aws', 'azure', 'azurestack', 'digitalocean', 'exoscale', 'gcp', 'hetzner', 'hyperv', 'ibmcloud',
        'metal', 'metal4k', 'nutanix', 'openstack', 'oraclecloud', 'proxmoxve', 'qemu', 'virtualbox', 'vmware', 'vultr',
      ].sort(),
    );
    expect(getPlatform('aws')).toMatchObject({ format: 'vmdk', extension: 'vmdk', convertOptions: ['adapter_type=lsilogic', 'subformat=streamOptimized', 'compat6'] });
    expect(getPlatform('azure')).toMatchObject({ format: 'vpc', extension: 'vhd', roundUpToMiB: true });
    expect(getPlatform('gcp')).toMatchObject({ packaging: 'gcp-tar', extension: 'tar.gz', skipCompression: true });
    expect(getPlatform('nutanix')).toMatchObject({ compressClusters: true, skipCompression: true });
    expect(getPlatform('metal4k')).toMatchObject({ ignitionId: 'metal', sectorSize: 4096, needsOwnDisk: { sectorSize: 4096, biosBoot: false } });
    expect(getPlatform('hyperv')).toMatchObject({ format: 'vhdx' });
    expect(getPlatform('vmware')).toMatchObject({ packaging: 'ova', ova: 'vmware' });
  });

  it('rejects an unknown platform with COSA_PLATFORM_UNKNOWN listing the known ones', () => {
    let err: unknown;
    try {
      getPlatform('amiga');
    } catch (e) {
      err = e;
    }
    expect(isCosaError(err, 'COSA_PLATFORM_UNKNOWN')).toBe(true);
    expect((err as Error).message).toContain('aws');
    expect((err as Error).message).toContain('virtualbox');
    expect(() => getPlatform('toString')).toThrow(/unknown platform/);
  });

  it('names artifacts <name>-<id>-<platform>.<arch>.<ext>', () => {
    expect(platformArtifactName({ name: 'fedora-coreos', buildId: '41.1', platform: 'gcp', arch: 'x86_64' })).toBe('fedora-coreos-41.1-gcp.x86_64.tar.gz');
    expect(platformArtifactName({ name: 'd', buildId: '1', platform: 'azure', arch: 'aarch64' })).toBe('d-1-azure.aarch64.vhd');
    expect(() => platformArtifactName({ name: 'a/b', buildId: '1', platform: 'qemu', arch: 'x86_64' })).toThrow(/invalid name/);
  });

  it('uses the built-in console settings when no platforms.yaml is given', () => {
    expect(resolvePlatform('qemu').kernelArguments).toEqual(['console=ttyS0,115200n8']);
    expect(resolvePlatform('metal').kernelArguments).toEqual(['console=ttyS0,115200n8']);
    expect(resolvePlatform('aws').kernelArguments).toEqual(['console=tty0', 'console=ttyS0,115200n8']);
    expect(resolvePlatform('azure').kernelArguments).toEqual(['console=ttyS0,115200n8', 'earlyprintk=ttyS0,115200', 'rootdelay=300']);
    expect(resolvePlatform('gcp').kernelArguments).toEqual(['console=ttyS0,115200n8']);
    expect(resolvePlatform('qemu', { arch: 'aarch64' }).kernelArguments).toEqual(['console=ttyAMA0,115200n8']);
    expect(resolvePlatform('qemu').grubCommands).toContain('serial --speed=115200');
    expect(resolvePlatform('qemu', { arch: 'ppc64le' }).grubCommands).toEqual([]);
  });

  it("takes the console settings from the original's platforms.yaml when given", async () => {
    const cfg = parseYamlText(await readFile(fixturePath('fcos-config', 'platforms.yaml'), 'utf8'), 'platforms.yaml') as PlatformsConfig;
    expect(resolvePlatform('qemu', { platformsConfig: cfg }).kernelArguments).toEqual(['console=tty0', 'console=ttyS0,115200n8']);
    expect(resolvePlatform('vmware', { platformsConfig: cfg }).kernelArguments).toEqual(['console=ttyS0,115200n8', 'console=tty0']);
    // not listed: no extra kernel arguments, no GRUB commands
    expect(resolvePlatform('metal', { platformsConfig: cfg })).toMatchObject({ kernelArguments: [], grubCommands: [] });
    expect(resolvePlatform('aws', { arch: 'aarch64', platformsConfig: cfg }).grubCommands).toEqual([
      'serial --speed=115200 efi0',
      'terminal_input serial_efi0',
      'terminal_output serial_efi0',
    ]);
  });
});

describe('kernel argument edits', () => {
  const edit = { platformId: 'aws', remove: ['console=ttyS0,115200n8'], add: ['console=tty0', 'console=ttyS0,115200n8'] };

  it('replaces the platform id, drops the old platform kargs and appends the new ones', () => {
    expect(editKernelArguments(BLS_OPTIONS, edit)).toBe(
      'root=LABEL=root rw ignition.platform.id=aws $ignition_firstboot ostree=/ostree/boot.1/debian/0123abcd/0 console=tty0 console=ttyS0,115200n8',
    );
  });

  it('is idempotent and adds a missing platform id', () => {
    const once = editKernelArguments(BLS_OPTIONS, edit);
    expect(editKernelArguments(once, edit)).toBe(once);
    expect(editKernelArguments('root=LABEL=root', { platformId: 'metal', remove: [], add: [] })).toBe('root=LABEL=root ignition.platform.id=metal');
  });

  it('rewrites only the options line of a BLS entry', () => {
    const out = rewriteBlsEntry(blsEntry(), edit);
    expect(out).toContain('options root=LABEL=root rw ignition.platform.id=aws ');
    expect(out).toContain('linux /ostree/debian-0123abcd/vmlinuz-6.1.0-56-amd64\n');
    expect(out.endsWith('\n')).toBe(true);
  });

  it('rewrites grub.cfg linux lines and the console block between the markers', () => {
    const out = rewriteGrubConfig(grubCfg(), { ...edit, platformId: 'azure' }, []);
    expect(out).toContain('# CONSOLE-SETTINGS-START\n# CONSOLE-SETTINGS-END');
    expect(out).toMatch(/^ {2}linux \/ostree\/debian-0123abcd\/vmlinuz-6\.1\.0-56-amd64 root=LABEL=root rw ignition\.platform\.id=azure /m);
    expect(out).not.toContain('terminal_input');
  });

  it('replaces top-level console commands when grub.cfg has no markers', () => {
    const cfg = 'serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\nset timeout=1\nmenuentry x {\n  linux /vmlinuz ignition.platform.id=qemu\n}\n';
    const out = rewriteGrubConfig(cfg, { platformId: 'gcp', remove: [], add: [] }, ['serial --speed=9600', 'terminal_output serial']);
    expect(out).toBe('serial --speed=9600\nterminal_output serial\nset timeout=1\nmenuentry x {\n  linux /vmlinuz ignition.platform.id=gcp\n}\n');
  });
});
