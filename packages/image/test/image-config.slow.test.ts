/**
 * image.yaml keys that shape the disk, written for real and booted: one BIOS boot for the
 * variations that do not interfere (xfs /boot, ext4 /, rootfs-args, grub-script, first-boot
 * network arguments, ostree remote). Keys cosa cannot honour on this host are refused before
 * anything is written.
 */
import { access, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { hasTool, run } from '@cosa/ostree/internal';
import { isCosaError } from '@cosa/schema';
import { bootCheck, createDisk, derivePlatformImage, directExecutor } from '../src/index.ts';
import { debianTestCommit, type TestCommit } from './_commit.ts';
import { CACHE_DIR, leftovers, tempDir } from './_env.ts';

let commit: TestCommit;
beforeAll(async () => {
  commit = await debianTestCommit();
}, 20 * 60_000);

/** Mounts partitions of a raw image read-only (whatever their file system) and reads from them. */
async function inspectImage<T>(raw: string, parts: number[], read: (mnt: Record<number, string>) => Promise<T>): Promise<T> {
  await using tmp = await tempDir('cosa-image-inspect-');
  const loop = (await run(['losetup', '--find', '--show', '--partscan', '--read-only', raw])).stdout.trim();
  const mounted: string[] = [];
  try {
    // No udev here: partprobe makes the partition nodes.
    await run(['partprobe', loop]).catch(() => {});
    const mnt: Record<number, string> = {};
    for (const p of parts) {
      const dev = `${loop}p${p}`;
      for (let i = 0; i < 50 && (await run(['test', '-b', dev], { okExitCodes: [0, 1] })).exitCode !== 0; i++) await new Promise((r) => setTimeout(r, 100));
      const type = (await run(['blkid', '-p', '-o', 'value', '-s', 'TYPE', dev])).stdout.trim();
      const dir = join(tmp.path, `p${p}`);
      await mkdir(dir, { recursive: true });
      await run(['mount', '-t', type, '-o', type === 'xfs' ? 'ro,norecovery,nouuid' : type === 'ext4' ? 'ro,noload' : 'ro', dev, dir]);
      mounted.push(dir);
      mnt[p] = dir;
    }
    return await read(mnt);
  } finally {
    for (const d of mounted.reverse()) await run(['umount', d]);
    await run(['losetup', '-d', loop]);
  }
}

/** A grub-script in the original's shape (console markers, first-boot block, blscfg) that says it was used. */
const GRUB_SCRIPT = `search --no-floppy --label boot --set=root
# CONSOLE-SETTINGS-START
# CONSOLE-SETTINGS-END
echo "cosa-test: grub-script in use"
set timeout=1
set ignition_firstboot=""
if [ -f "/ignition.firstboot" ]; then
  set ignition_network_kcmdline=''
  source "/ignition.firstboot"
  set ignition_firstboot="ignition.firstboot \${ignition_network_kcmdline}"
fi
blscfg
`;

describe('image.yaml shapes the disk', () => {
  test('xfs /boot, ext4 / with rootfs-args, grub-script, first-boot network arguments and an ostree remote: written, inspected and booted with BIOS', async () => {
    await using tmp = await tempDir();
    const output = join(tmp.path, 'variants.raw');
    await createDisk({
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu',
      imageConfig: {
        bootfs: 'xfs', rootfs: 'ext4', 'rootfs-args': '-E lazy_itable_init=1 -m 1', 'grub-script': GRUB_SCRIPT,
        'ignition-network-kcmdline': ['ip=dhcp', 'cosa.test.net=1'], 'ostree-remote': 'cosa', 'ostree-remote-url': 'http://10.0.2.2:8000/repo',
      },
      executor: directExecutor(), output, buildId: 'test.2', tmpDir: join(tmp.path, 'tmp'),
    });
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });

    const seen = await inspectImage(output, [3, 4], async (m) => {
      const deployDir = join(m[4]!, 'ostree/deploy', commit.osname, 'deploy');
      const origin = (await readdir(deployDir)).find((n) => n.endsWith('.origin'));
      const entries = join(m[3]!, 'loader/entries');
      return {
        bootType: (await run(['findmnt', '-n', '-o', 'FSTYPE', m[3]!])).stdout.trim(),
        rootType: (await run(['findmnt', '-n', '-o', 'FSTYPE', m[4]!])).stdout.trim(),
        rootSuper: (await run(['dumpe2fs', '-h', (await run(['findmnt', '-n', '-o', 'SOURCE', m[4]!])).stdout.trim()])).stdout,
        stamp: await readFile(join(m[3]!, 'ignition.firstboot'), 'utf8'),
        grub: await readFile(join(m[3]!, 'grub/grub.cfg'), 'utf8'),
        bls: await readFile(join(entries, (await readdir(entries))[0]!), 'utf8'),
        origin: await readFile(join(deployDir, origin!), 'utf8'),
        fstab: await readFile(join(deployDir, origin!.replace(/\.origin$/, ''), 'etc/fstab'), 'utf8'),
        repoConfig: await readFile(join(m[4]!, 'ostree/repo/config'), 'utf8'),
        refs: (await run(['ostree', `--repo=${join(m[4]!, 'ostree/repo')}`, 'refs'])).stdout.trim().split('\n'),
      };
    });
    expect(seen.bootType).toBe('xfs');
    expect(seen.rootType).toBe('ext4');
    // rootfs-args reached mkfs.ext4: -m 1 reserves 1 % of the blocks.
    const count = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(seen.rootSuper)?.[1]);
    expect(count('Reserved block count') / count('Block count')).toBeCloseTo(0.01, 3);
    expect(seen.rootSuper).toMatch(/^Filesystem volume name:\s+root$/m);
    expect(seen.stamp).toBe("set ignition_network_kcmdline='ip=dhcp cosa.test.net=1'\n");
    expect(seen.bls).toMatch(/^options .*ignition\.platform\.id=qemu \$ignition_firstboot /m);
    expect(seen.grub).toContain('echo "cosa-test: grub-script in use"');
    expect(seen.grub).toMatch(/# CONSOLE-SETTINGS-START\nserial --unit=0 --speed=115200\n/);
    expect(seen.grub).toMatch(/^ {2}linux \/ostree\/.* \$ignition_firstboot /m);
    expect(seen.grub).not.toMatch(/^blscfg$/m);
    expect(seen.origin).toContain(`refspec=cosa:${commit.ref}`);
    // The tree's fstab said ext4 for /boot: the deployment's copy says what the disk has.
    expect(seen.fstab).toMatch(/^LABEL=boot\s+\/boot\s+xfs\s/m);
    expect(seen.refs).toContain(`cosa:${commit.ref}`);
    expect(seen.repoConfig).toMatch(/\[remote "cosa"\]\nurl=http:\/\/10\.0\.2\.2:8000\/repo\ngpg-verify=false/);

    const boot = await bootCheck({ image: output, firmware: 'bios', timeoutMs: 900_000, cacheDir: CACHE_DIR });
    expect(boot.ok, `console:\n${boot.consoleLog.slice(-3000)}`).toBe(true);
    expect(boot.consoleLog).toContain('cosa-test: grub-script in use');
    expect(boot.consoleLog).toMatch(/Command line: .*ignition\.platform\.id=qemu ignition\.firstboot ip=dhcp cosa\.test\.net=1 /);
    expect(boot.consoleLog).toMatch(/EXT4-fs \(vda4\): mounted filesystem/);

    // A platform switch edits an ext4 /boot only: an xfs /boot is refused clearly.
    const err = await derivePlatformImage({
      baseRaw: output, platform: 'aws', output: join(tmp.path, 'out'), name: 'x', buildId: 'test.2', arch: 'x86_64', tmpDir: join(tmp.path, 'tmp'),
    }).then(() => undefined, (e: unknown) => e);
    expect(isCosaError(err, 'COSA_IMAGE_FAILED')).toBe(true);
    expect((err as { hint?: string }).hint).toContain('bootfs: ext4');
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 40 * 60_000);

  test('rootfs btrfs without mkfs.btrfs, ext4verity without kernel fs-verity, and composefs with an ostree that has none, are refused naming the key before any disk is written', async () => {
    await using tmp = await tempDir();
    const base = {
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu',
      executor: directExecutor(), output: join(tmp.path, 'x.raw'), buildId: 'x', tmpDir: join(tmp.path, 'tmp'),
    } as const;
    const hasBtrfs = await hasTool('mkfs.btrfs');
    const btrfs = await createDisk({ ...base, imageConfig: { rootfs: 'btrfs' } }).then(() => undefined, (e: unknown) => e);
    if (!hasBtrfs) {
      expect(isCosaError(btrfs, 'COSA_TOOLS_MISSING')).toBe(true);
      expect((btrfs as Error).message).toContain('image.yaml rootfs: btrfs needs mkfs.btrfs');
    }
    const hasComposefs = /^\s*-\s*composefs\s*$/m.test((await run(['ostree', '--version'])).stdout);
    if (!hasComposefs) {
      const cfs = await createDisk({ ...base, imageConfig: { composefs: true } }).then(() => undefined, (e: unknown) => e);
      expect(isCosaError(cfs, 'COSA_TOOLS_MISSING')).toBe(true);
      expect((cfs as Error).message).toContain('image.yaml composefs: true needs an ostree built with composefs');
    }
    if (!(await access('/sys/fs/ext4/features/verity').then(() => true, () => false))) {
      const verity = await createDisk({ ...base, imageConfig: { rootfs: 'ext4verity' } }).then(() => undefined, (e: unknown) => e);
      expect(isCosaError(verity, 'COSA_TOOLS_MISSING')).toBe(true);
      expect((verity as Error).message).toContain('image.yaml rootfs: ext4verity needs a kernel with fs-verity');
    }
    const remote = await createDisk({ ...base, imageConfig: { 'ostree-remote-url': 'http://127.0.0.1/repo' } }).then(() => undefined, (e: unknown) => e);
    expect((remote as Error).message).toContain('ostree-remote-url needs ostree-remote');
    expect(await readdir(tmp.path)).toEqual([]);
  }, 5 * 60_000);
});
