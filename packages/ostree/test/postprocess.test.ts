import { chmod, copyFile, lstat, mkdir, readdir, readFile, readlink, symlink } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '@cosa/schema';
import { postprocessTree, prepareOstreeTree } from '../src/postprocess.js';
import { tempDir, writeTree } from './_tmp.js';

async function debianLikeTree() {
  const d = await tempDir();
  const tree = path.join(d, 'root');
  await writeTree(tree, {
    'usr/lib/modules/6.1.0-9-amd64/modules.dep': '',
    'boot/vmlinuz-6.1.0-9-amd64': 'kernel',
    'boot/initrd.img-6.1.0-9-amd64': 'initrd',
    'boot/config-6.1.0-9-amd64': 'cfg',
    vmlinuz: { link: 'boot/vmlinuz-6.1.0-9-amd64' },
    'etc/hostname': 'box\n',
    'var/lib/dpkg/status': 'Package: x\n',
    'var/cache/debconf/config.dat': 'c',
    'var/log': { dir: true },
    'var/tmp': { dir: true },
    'var/run': { link: '/run' },
    'root/.bashrc': 'PS1=x',
    'home': { dir: true },
    'opt': { dir: true },
    'dev/null-ish': 'not a device',
    'tmp/junk': 'j',
    'run/lock/x': 'l',
    'usr/bin/true': 'bin',
  });
  return { d, tree };
}

describe('prepareOstreeTree', () => {
  it('lays a root filesystem out for OSTree: kernel in /usr/lib/modules, /usr/etc, factory /var, var-based links, sysroot', async () => {
    const { tree } = await debianLikeTree();
    const r = await prepareOstreeTree({ tree, fstab: 'LABEL=boot /boot ext4 defaults 0 2\n' });
    expect(r.kernels).toEqual(['6.1.0-9-amd64']);
    const kdir = path.join(tree, 'usr/lib/modules/6.1.0-9-amd64');
    expect(await readFile(path.join(kdir, 'vmlinuz'), 'utf8')).toBe('kernel');
    expect(await readFile(path.join(kdir, 'initramfs.img'), 'utf8')).toBe('initrd');
    for (const dir of ['boot', 'dev', 'proc', 'sys', 'run', 'tmp', 'var']) expect(await readdir(path.join(tree, dir)), dir).toEqual([]);
    expect((await lstat(path.join(tree, 'tmp'))).mode & 0o7777).toBe(0o1777);
    await expect(lstat(path.join(tree, 'vmlinuz'))).rejects.toThrow();
    await expect(lstat(path.join(tree, 'etc'))).rejects.toThrow();
    expect(await readFile(path.join(tree, 'usr/etc/hostname'), 'utf8')).toBe('box\n');
    expect(await readFile(path.join(tree, 'usr/etc/fstab'), 'utf8')).toContain('LABEL=boot');
    expect(await readFile(path.join(tree, 'usr/share/factory/var/lib/dpkg/status'), 'utf8')).toContain('Package');
    expect(await readFile(path.join(tree, 'usr/share/factory/var/roothome/.bashrc'), 'utf8')).toBe('PS1=x');
    const links: Record<string, string> = { home: 'var/home', root: 'var/roothome', opt: 'var/opt', srv: 'var/srv', mnt: 'var/mnt', media: 'run/media', 'usr/local': '../var/usrlocal', ostree: 'sysroot/ostree' };
    for (const [p, target] of Object.entries(links)) expect(await readlink(path.join(tree, p)), p).toBe(target);
    expect((await lstat(path.join(tree, 'sysroot'))).isDirectory()).toBe(true);
    const tmpfiles = await readFile(path.join(tree, 'usr/lib/tmpfiles.d/cosa-ostree.conf'), 'utf8');
    expect(tmpfiles).toContain('C /var/lib/dpkg - - - - /usr/share/factory/var/lib/dpkg');
    expect(tmpfiles).toContain('C /var/cache/debconf - - - - /usr/share/factory/var/cache/debconf');
    // A top-level directory is recreated, never copied whole (ostree or a service may make it first).
    expect(tmpfiles).toContain('C /var/roothome/.bashrc - - - - /usr/share/factory/var/roothome/.bashrc');
    expect(tmpfiles.match(/^\S+ \/var\/roothome /gm)).toEqual(['d /var/roothome ']);
    expect(tmpfiles).toMatch(/^d \/var\/log 0755 0 0 -$/m);
    expect(tmpfiles).toContain('L /var/run - - - - /run');
    expect(tmpfiles).toContain('d /var/home 0755 root root -');
  });

  it('writes no line for a path another tmpfiles.d file of the tree creates, and copies what is below it', async () => {
    const { tree } = await debianLikeTree();
    await writeTree(tree, {
      'usr/lib/tmpfiles.d/var.conf': 'd /var/log 0755 - - -\nq /var/tmp 1777 root root 30d\nd /var/lib/dpkg 0755 root root -\nd /var/cache/%m 0755\n',
      'etc/tmpfiles.d/home.conf': 'd /var/home 0755 root root -\n',
      'var/lib/dpkg/info/x.list': '/x\n',
    });
    await prepareOstreeTree({ tree });
    const tmpfiles = await readFile(path.join(tree, 'usr/lib/tmpfiles.d/cosa-ostree.conf'), 'utf8');
    for (const p of ['/var/log', '/var/tmp', '/var/lib/dpkg', '/var/home']) expect(tmpfiles, p).not.toMatch(new RegExp(`^\\S+ ${p} `, 'm'));
    expect(tmpfiles).toContain('C /var/lib/dpkg/status - - - - /usr/share/factory/var/lib/dpkg/status');
    expect(tmpfiles).toContain('C /var/lib/dpkg/info - - - - /usr/share/factory/var/lib/dpkg/info');
    expect(tmpfiles).toMatch(/^d \/var\/cache 0755 0 0 -$/m);
  });

  it('is idempotent on a prepared tree', async () => {
    const { tree } = await debianLikeTree();
    await prepareOstreeTree({ tree });
    const before = await readFile(path.join(tree, 'usr/lib/tmpfiles.d/cosa-ostree.conf'), 'utf8');
    await prepareOstreeTree({ tree });
    expect(await readFile(path.join(tree, 'usr/lib/tmpfiles.d/cosa-ostree.conf'), 'utf8')).toBe(before);
    expect(await readFile(path.join(tree, 'usr/share/factory/var/lib/dpkg/status'), 'utf8')).toContain('Package');
  });
});

describe('postprocessTree', () => {
  it('runs scripts chrooted when the tree has /bin/sh, with /tmp cleaned up', async () => {
    const { d, tree } = await debianLikeTree();
    await mkdir(path.join(tree, 'bin'), { recursive: true });
    await copyFile('/bin/busybox', path.join(tree, 'bin/busybox'));
    await chmod(path.join(tree, 'bin/busybox'), 0o755);
    for (const t of ['sh', 'echo', 'pwd', 'cat']) await symlink('busybox', path.join(tree, 'bin', t));
    const configDir = path.join(d, 'config');
    await writeTree(configDir, { 'script.sh': 'echo "from file" > /from-file\n' });
    const manifest = { postprocess: ['echo "inside $(cat /etc/hostname)" > /marker'], 'postprocess-script': 'script.sh' } as Manifest;
    const stats = await postprocessTree({ tree, manifest, configDir });
    expect(stats['postprocess-scripts']).toBe(2);
    expect(await readFile(path.join(tree, 'marker'), 'utf8')).toBe('inside box\n');
    expect(await readFile(path.join(tree, 'from-file'), 'utf8')).toBe('from file\n');
    expect(await readdir(path.join(tree, 'tmp'))).toEqual(['junk']);
  });

  it('refuses add-files and remove-files that leave the tree or the config dir', async () => {
    const { d, tree } = await debianLikeTree();
    await expect(postprocessTree({ tree, manifest: { 'remove-files': ['../../etc'] } as Manifest, configDir: d })).rejects.toMatchObject({ code: 'COSA_PATH_UNSAFE' });
    await expect(postprocessTree({ tree, manifest: { 'add-files': [['../../../etc/passwd', '/x']] } as Manifest, configDir: path.join(d, 'c') })).rejects.toMatchObject({ code: 'COSA_PATH_UNSAFE' });
  });
});
