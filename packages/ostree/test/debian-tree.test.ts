import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDpkgStatus } from '@cosa/ostree';
import { initramfsKey } from '../src/debian-initramfs.js';
import { prepareDebianTree } from '../src/debian-tree.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const kver = '6.1.0-99-amd64';
const status = [
  'Package: linux-image-6.1.0-99-amd64',
  'Status: install ok installed',
  'Architecture: amd64',
  'Source: linux-signed-amd64 (6.1.192+2)',
  'Version: 6.1.192-2',
  '',
  'Package: libattr1',
  'Status: install ok installed',
  'Architecture: amd64',
  'Version: 1:2.5.1-4',
  '',
  'Package: removed-thing',
  'Status: deinstall ok config-files',
  'Architecture: amd64',
  'Version: 1.0',
  '',
].join('\n');

/** A small root that looks like mmdebstrap's output with a kernel installed. */
async function fakeRoot(): Promise<string> {
  const t = await mkdtemp(join(tmpdir(), 'cosa-debtree-'));
  dirs.push(t);
  for (const d of ['boot', 'dev/pts', 'etc/initramfs-tools/hooks', 'usr/share/initramfs-tools/hooks', `usr/lib/modules/${kver}`, 'var/lib/dpkg/info', 'var/lib/apt/lists', 'var/cache/apt/archives', 'var/cache/debconf', 'var/log/apt', 'var/spool', 'tmp', 'run/lock']) {
    await mkdir(join(t, d), { recursive: true });
  }
  await writeFile(join(t, 'boot', `vmlinuz-${kver}`), 'kernel');
  await writeFile(join(t, 'boot', `config-${kver}`), 'cfg');
  await symlink(`boot/vmlinuz-${kver}`, join(t, 'vmlinuz'));
  await writeFile(join(t, 'usr/lib/modules', kver, 'initramfs.img'), 'initrd');
  await writeFile(join(t, 'dev/null-ish'), '');
  await writeFile(join(t, 'etc/fstab'), '# UNCONFIGURED FSTAB\n');
  await writeFile(join(t, 'etc/initramfs-tools/hooks/ostree'), '#!/bin/sh\n');
  await writeFile(join(t, 'usr/share/initramfs-tools/hooks/udev'), '#!/bin/sh\n');
  await writeFile(join(t, 'var/lib/dpkg/status'), status);
  await writeFile(join(t, 'var/lib/dpkg/info/udev.list'), '/usr/share/initramfs-tools/hooks/udev\n');
  await writeFile(join(t, 'var/lib/apt/lists/x_Packages'), 'x');
  await writeFile(join(t, 'var/cache/apt/archives/a.deb'), 'x');
  await writeFile(join(t, 'var/log/apt/history.log'), 'x');
  await symlink('/run', join(t, 'var/run'));
  return t;
}

describe('parseDpkgStatus', () => {
  it('lists installed packages with epoch, version, arch and source', () => {
    expect(parseDpkgStatus(status)).toEqual([
      { name: 'libattr1', epoch: '1', version: '2.5.1-4', arch: 'amd64' },
      { name: 'linux-image-6.1.0-99-amd64', version: '6.1.192-2', arch: 'amd64', source: 'linux-signed-amd64' },
    ]);
  });
});

describe('prepareDebianTree', () => {
  it('moves the kernel beside the initramfs, empties /boot and the pseudo filesystems, and writes fstab and tmpfiles', async () => {
    const t = await fakeRoot();
    expect(await prepareDebianTree({ tree: t })).toBe(kver);
    expect((await readdir(join(t, 'usr/lib/modules', kver))).sort()).toEqual(['initramfs.img', 'vmlinuz']);
    expect(await readFile(join(t, 'usr/lib/modules', kver, 'vmlinuz'), 'utf8')).toBe('kernel');
    for (const d of ['boot', 'dev', 'tmp', 'run', 'var/log', 'var/cache/apt', 'var/lib/apt/lists']) expect(await readdir(join(t, d))).toEqual([]);
    expect(await lstat(join(t, 'vmlinuz')).catch(() => undefined)).toBeUndefined();
    expect(await readFile(join(t, 'etc/fstab'), 'utf8')).toContain('LABEL=boot /boot ext4 defaults,nofail,x-systemd.automount 0 2');
    // The tmpfiles.d lines for /var are prepareOstreeTree's (one file for every composer).
    expect(await readdir(join(t, 'usr/lib/tmpfiles.d')).catch(() => [])).not.toContain('cosa-debian-var.conf');
  });

  it('fails clearly when the tree has no kernel', async () => {
    const t = await fakeRoot();
    await rm(join(t, 'usr/lib/modules'), { recursive: true });
    await expect(prepareDebianTree({ tree: t })).rejects.toMatchObject({ code: 'COSA_COMPOSE_FAILED' });
  });
});

describe('initramfsKey', () => {
  it('stays the same for unchanged inputs and changes with a hook, a hook package version or the kernel', async () => {
    const t = await fakeRoot();
    const a = await initramfsKey({ tree: t, kver });
    expect(await initramfsKey({ tree: t, kver })).toBe(a);
    // An unrelated file does not matter.
    await writeFile(join(t, 'etc/motd'), 'hi\n');
    expect(await initramfsKey({ tree: t, kver })).toBe(a);
    await writeFile(join(t, 'etc/initramfs-tools/hooks/ostree'), '#!/bin/sh\necho changed\n');
    const b = await initramfsKey({ tree: t, kver });
    expect(b).not.toBe(a);
    await writeFile(join(t, 'var/lib/dpkg/status'), `${status}\nPackage: udev\nStatus: install ok installed\nArchitecture: amd64\nVersion: 252.1\n`);
    const c = await initramfsKey({ tree: t, kver });
    expect(c).not.toBe(b);
    expect(await initramfsKey({ tree: t, kver: '6.1.0-100-amd64' })).not.toBe(c);
  });
});
