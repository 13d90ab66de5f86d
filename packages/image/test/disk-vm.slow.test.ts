import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { run } from '@cosa/ostree/internal';
import { bootCheck, buildImage, createDisk, vmExecutor } from '../src/index.ts';
import { imageSectorSize } from '@cosa/image/internal';
import { debianTestCommit, type TestCommit } from './_commit.ts';
import { rootXfsSectorSize } from './_xfs.ts';
import { readGpt } from '../src/_gpt.ts';
import { CACHE_DIR, leftovers, tempDir } from './_env.ts';

let commit: TestCommit;

/** Runs `fn` with the root file system (partition 4) of the raw image mounted read-only (a loop device on the partition alone). */
async function withRootMounted<T>(raw: string, sectorSize: number, fn: (dir: string) => Promise<T>, fstype: 'xfs' | 'ext4' = 'xfs'): Promise<T> {
  const root = (await readGpt(raw)).partitions.find((p) => p.index === 4);
  if (!root) throw new Error(`${raw}: no partition 4`);
  const loop = (await run(['losetup', '--find', '--show', '--read-only', '--offset', String(root.start), '--sizelimit', String(root.size), '--sector-size', String(sectorSize), raw])).stdout.trim();
  const dir = `${raw}.mnt`;
  try {
    await run(['mkdir', '-p', dir]);
    await run(['mount', '-t', fstype, '-o', fstype === 'xfs' ? 'ro,nouuid,norecovery' : 'ro,noload', loop, dir]);
    try {
      return await fn(dir);
    } finally {
      await run(['umount', dir]);
    }
  } finally {
    await run(['losetup', '-d', loop]);
  }
}
beforeAll(async () => {
  commit = await debianTestCommit();
}, 30 * 60_000);

describe('the VM executor writing a disk', () => {
  test('writes a qcow2 from a Debian OSTree commit inside the supermin appliance that boots to a login prompt', async () => {
    await using tmp = await tempDir();
    const output = join(tmp.path, 'debian-vm.qcow2');
    const phases: string[] = [];
    const steps: string[] = [];
    const img = await buildImage({
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu',
      executor: vmExecutor({ cacheDir: CACHE_DIR }), output, buildId: 'test.vm', tmpDir: join(tmp.path, 'tmp'), cacheDir: CACHE_DIR,
      onProgress: (e) => {
        if (e.type === 'phase' && e.status === 'end') phases.push(e.phase);
        const m = e.type === 'log' ? /cosa-disk: \d+ (\S+)/.exec(e.line) : null;
        if (m) steps.push(m[1]!);
      },
    });
    expect(phases).toContain('disk-vm');
    // The sysroot was staged on the host (fakeroot) and only unpacked in the guest.
    expect(phases).toContain('stage-sysroot');
    // /boot (GRUB's files, grub.cfg, the stamp) was made on the host too: the guest only ran
    // grub-bios-setup and never remade /boot. The BIOS and UEFI boots below check the result.
    expect(steps).toContain('host-boot');
    expect(steps).not.toContain('mkfs-boot');
    expect((await run(['qemu-img', 'info', '--output=json', output])).stdout).toContain('"format": "qcow2"');
    expect(img.sha256).toBe((await run(['sha256sum', output])).stdout.split(' ')[0]);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
    for (const firmware of ['bios', 'uefi'] as const) {
      const boot = await bootCheck({ image: output, firmware, timeoutMs: 600_000, cacheDir: CACHE_DIR });
      expect(boot.ok, `${firmware} console:\n${boot.consoleLog.slice(-3000)}`).toBe(true);
    }
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 30 * 60_000);

  test('an ext4 root is made offline on the host (fakeroot) and written into the disk file: the guest unpacks nothing, the owners and the immutable deployment are kept, and it boots', async () => {
    await using tmp = await tempDir();
    const output = join(tmp.path, 'debian-vm-ext4.raw');
    const steps: string[] = [];
    await createDisk({
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu', hash: false,
      imageConfig: { rootfs: 'ext4' }, executor: vmExecutor({ cacheDir: CACHE_DIR }), output, buildId: 'test.vm-ext4', tmpDir: join(tmp.path, 'tmp'),
      onProgress: (e) => {
        const m = e.type === 'log' ? /cosa-disk: \d+ (\S+)/.exec(e.line) : null;
        if (m) steps.push(m[1]!);
      },
    });
    expect(steps).toContain('host-boot');
    expect(steps).toContain('host-root');
    expect(steps).not.toContain('host-tar');
    // The guest waited for the host and only installed the BIOS bootloader.
    expect(steps).toContain('wait-sysroot');
    for (const s of ['mkfs-root', 'unpack', 'mkfs-root-offline', 'mkfs-boot']) expect(steps).not.toContain(s);
    const seen = await withRootMounted(output, 512, async (root) => {
      const deploy = (await run(['sh', '-c', `ls -d ${root}/ostree/deploy/${commit.osname}/deploy/*.0`])).stdout.trim();
      const st = async (p: string) => (await run(['stat', '-c', '%a %u %g %h', join(deploy, p)])).stdout.trim();
      return { chage: await st('usr/bin/chage'), passwd: await st('usr/bin/passwd'), shadow: await st('etc/shadow'), attrs: (await run(['lsattr', '-d', deploy])).stdout, bootEmpty: (await run(['ls', '-A', join(root, 'boot')])).stdout.trim() };
    }, 'ext4');
    expect(seen.chage).toMatch(/^2755 0 42 [2-9]/);
    expect(seen.passwd).toMatch(/^4755 0 0 [2-9]/);
    expect(seen.shadow).toMatch(/^640 0 42 /);
    expect(seen.attrs.split(' ')[0]).toContain('i');
    // /boot's files are on their own file system, not in the root's mount point.
    expect(seen.bootEmpty).toBe('');
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
    const boot = await bootCheck({ image: output, firmware: 'bios', timeoutMs: 600_000, cacheDir: CACHE_DIR });
    expect(boot.ok, `console:\n${boot.consoleLog.slice(-3000)}`).toBe(true);
    expect(boot.consoleLog).toMatch(/rootfstype=ext4/);
  }, 30 * 60_000);

  test('writes a 4Kn (metal4k) disk: the appliance sees the target with 4096-byte sectors', async () => {
    await using tmp = await tempDir();
    const output = join(tmp.path, 'debian-metal4k.raw');
    await createDisk({
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'metal', sectorSize: 4096, hash: false,
      executor: vmExecutor({ cacheDir: CACHE_DIR }), output, buildId: 'test.vm4k', tmpDir: join(tmp.path, 'tmp'),
    });
    expect(await imageSectorSize(output)).toBe(4096);
    // mkfs.xfs takes the sector size from the device: 4096 only if the guest saw a 4Kn disk.
    expect(await rootXfsSectorSize(output)).toBe(4096);
    // The staged sysroot kept what fakeroot recorded: owners, setuid/setgid, the deployment's
    // files as hardlinks of the repo's objects, and the deployment directory immutable.
    const seen = await withRootMounted(output, 4096, async (root) => {
      const deploy = (await run(['sh', '-c', `ls -d ${root}/ostree/deploy/${commit.osname}/deploy/*.0`])).stdout.trim();
      const st = async (p: string) => (await run(['stat', '-c', '%a %u %g %h', join(deploy, p)])).stdout.trim();
      const dpkg = (await run(['stat', '-c', '%a %u %g %h', join(root, 'ostree/deploy', commit.osname, 'var/lib/dpkg/status')])).stdout.trim();
      return { chage: await st('usr/bin/chage'), passwd: await st('usr/bin/passwd'), shadow: await st('etc/shadow'), attrs: (await run(['lsattr', '-d', deploy])).stdout, dpkg };
    });
    // The stateroot's /var was filled on the host (fill_var under fakeroot): a copy, not a link.
    expect(seen.dpkg).toBe('644 0 0 1');
    expect(seen.chage).toMatch(/^2755 0 42 [2-9]/);
    expect(seen.passwd).toMatch(/^4755 0 0 [2-9]/);
    expect(seen.shadow).toMatch(/^640 0 42 /);
    expect(seen.attrs.split(' ')[0]).toContain('i');
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 30 * 60_000);
});
