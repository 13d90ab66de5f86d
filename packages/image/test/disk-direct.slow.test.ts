import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { run } from '@cosa/ostree/internal';
import { bootCheck, buildImage, createDisk, derivePlatformImage, directExecutor } from '../src/index.ts';
import { imageSectorSize } from '@cosa/image/internal';
import { findBootPartition } from '../src/set-platform.js';
import { debianTestCommit, type TestCommit } from './_commit.ts';
import { rootXfsSectorSize } from './_xfs.ts';
import { CACHE_DIR, leftovers, tempDir } from './_env.ts';

let commit: TestCommit;
beforeAll(async () => {
  commit = await debianTestCommit();
}, 20 * 60_000);

/** Reads files from the partitions of a raw image, attached read-only. */
async function readFromImage(raw: string, files: { part: number; path: string }[]): Promise<string[]> {
  await using tmp = await tempDir('cosa-image-read-');
  const loop = (await run(['losetup', '--find', '--show', '--partscan', '--read-only', raw])).stdout.trim();
  const out: string[] = [];
  try {
    await run(['partprobe', loop]).catch(() => {});
    for (const f of files) {
      const dev = `${loop}p${f.part}`;
      for (let i = 0; i < 50; i++) if (await run(['test', '-b', dev], { okExitCodes: [0, 1] }).then((r) => r.exitCode === 0)) break; else await new Promise((r) => setTimeout(r, 100));
      const mnt = join(tmp.path, `p${f.part}`);
      await mkdir(mnt, { recursive: true });
      await run(['mount', '-o', f.part === 4 ? 'ro,norecovery,nouuid' : 'ro', dev, mnt]);
      try {
        out.push(await readFile(join(mnt, f.path), 'utf8'));
      } finally {
        await run(['umount', mnt]);
      }
    }
  } finally {
    await run(['losetup', '-d', loop]);
  }
  return out;
}

/** Reads files from the ext4 /boot of a raw image without mounting it (debugfs at the partition offset). */
async function readBootFile(raw: string, paths: string[]): Promise<string[]> {
  const part = await findBootPartition(raw);
  return Promise.all(paths.map(async (p) => (await run(['debugfs', '-R', `cat ${p}`, `${raw}?offset=${part.start}`])).stdout));
}

describe('the direct executor', () => {
  test('writes a qcow2 from a Debian OSTree commit that boots to a login prompt with BIOS and with UEFI', async () => {
    await using tmp = await tempDir();
    const output = join(tmp.path, 'debian-qemu.qcow2');
    const img = await buildImage({
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu',
      imageConfig: { 'extra-kargs': ['cosa.test=1'] }, executor: directExecutor(), output, buildId: 'test.1',
      tmpDir: join(tmp.path, 'tmp'), cacheDir: CACHE_DIR,
    });
    expect(img.path).toBe(output);
    expect(img.sha256).toMatch(/^[0-9a-f]{64}$/);
    const sha = (await run(['sha256sum', output])).stdout.split(' ')[0];
    expect(img.sha256).toBe(sha);
    expect((await run(['qemu-img', 'info', '--output=json', output])).stdout).toContain('"format": "qcow2"');
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });

    const raw = join(tmp.path, 'back.raw');
    await run(['qemu-img', 'convert', '-O', 'raw', output, raw]);
    const [aleph, grubCfg, stamp, dpkgStatus] = await readFromImage(raw, [
      { part: 4, path: '.coreos-aleph-version.json' },
      { part: 3, path: 'grub/grub.cfg' },
      { part: 3, path: 'ignition.firstboot' },
      { part: 4, path: `ostree/deploy/${commit.osname}/var/lib/dpkg/status` },
    ]);
    // The stateroot's /var holds what the first boot's tmpfiles would have copied (disk.sh's fill_var).
    expect(dpkgStatus).toMatch(/^Package: /m);
    expect(JSON.parse(aleph!)).toEqual({ build: 'test.1', ref: commit.ref, 'ostree-commit': commit.commit, imgid: 'debian-qemu.qcow2' });
    expect(grubCfg).toMatch(/linux \/ostree\/cosa-debian-[0-9a-f]+\/vmlinuz.* root=LABEL=root rootfstype=xfs rw console=ttyS0,115200n8 cosa.test=1 ignition.platform.id=qemu \$ignition_firstboot ostree=/);
    // The first-boot contract: no ignition-network-kcmdline in image.yaml = the original's default.
    expect(stamp).toBe("set ignition_network_kcmdline='rd.neednet=1 ip=dhcp,dhcp6'\n");
    expect(grubCfg).toContain('if [ -f "/ignition.firstboot" ]; then');
    // A derived platform image keeps the stamp and the GRUB variable.
    const metal = await derivePlatformImage({ baseRaw: raw, platform: 'metal', output: join(tmp.path, 'out'), name: 'debian', buildId: 'test.1', arch: 'x86_64', tmpDir: join(tmp.path, 'tmp') });
    const [metalGrub, metalStamp] = await readFromImage(metal.path, [{ part: 3, path: 'grub/grub.cfg' }, { part: 3, path: 'ignition.firstboot' }]);
    expect(metalGrub).toMatch(/ignition\.platform\.id=metal \$ignition_firstboot /);
    expect(metalStamp).toBe(stamp);

    for (const firmware of ['bios', 'uefi'] as const) {
      const boot = await bootCheck({ image: output, firmware, timeoutMs: 600_000, cacheDir: CACHE_DIR });
      expect(boot.ok, `${firmware} console:\n${boot.consoleLog.slice(-3000)}`).toBe(true);
      expect(boot.consoleLog).toMatch(/Command line: .*ostree=\/ostree\/boot/);
      // GRUB expanded $ignition_firstboot from the stamp.
      expect(boot.consoleLog).toMatch(/Command line: .*ignition\.platform\.id=qemu ignition\.firstboot rd\.neednet=1 ip=dhcp,dhcp6 ostree=/);
    }
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 30 * 60_000);

  test('writes a 4Kn (metal4k) disk: 4096-byte sectors for the kernel and GRUB, boots with UEFI, no BIOS bootloader', async () => {
    await using tmp = await tempDir();
    const output = join(tmp.path, 'debian-metal4k.raw');
    const img = await createDisk({
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'metal', sectorSize: 4096,
      imageConfig: { 'ignition-network-kcmdline': [] },
      executor: directExecutor(), output, buildId: 'test.1', tmpDir: join(tmp.path, 'tmp'),
    });
    expect(img.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await imageSectorSize(output)).toBe(4096);
    const fdisk = (await run(['fdisk', '-b', '4096', '-l', output], { env: { LC_ALL: 'C' } })).stdout;
    expect(fdisk).toContain('Sector size (logical/physical): 4096 bytes');
    expect(fdisk).toMatch(/raw2\s+512\s+33023\s+32512\s+127M EFI System/);
    // No boot.img in the MBR (BIOS would find nothing to run), the protective MBR is intact.
    const mbr = Buffer.alloc(512);
    const fh = await open(output, 'r');
    await fh.read(mbr, 0, 512, 0);
    await fh.close();
    expect(mbr.subarray(0, 440).every((b) => b === 0)).toBe(true);
    expect(mbr.readUInt16LE(510)).toBe(0xaa55);
    expect(await rootXfsSectorSize(output)).toBe(4096);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
    // BIOS is refused clearly; UEFI (the default for a 4Kn image) boots to login.
    await expect(bootCheck({ image: output, firmware: 'bios', timeoutMs: 10_000, cacheDir: CACHE_DIR })).rejects.toThrow(/4096-byte sectors: it boots with UEFI only/);
    const boot = await bootCheck({ image: output, timeoutMs: 600_000, cacheDir: CACHE_DIR });
    expect(boot.ok, `console:\n${boot.consoleLog.slice(-3000)}`).toBe(true);
    expect(boot.consoleLog).toMatch(/logical blocks: \(.*\) 4096-byte|4096-byte logical blocks/);
    // ignition-network-kcmdline: [] → an empty stamp: first boot without network arguments.
    expect(boot.consoleLog).toMatch(/Command line: .*ignition\.platform\.id=metal ignition\.firstboot +ostree=/);
    expect(boot.consoleLog).not.toMatch(/Command line: .*ip=/);
    // metal4k derived from it keeps the (empty) stamp and the GRUB variable.
    const m4k = await derivePlatformImage({ baseRaw: output, platform: 'metal4k', output: join(tmp.path, 'out'), name: 'debian', buildId: 'test.1', arch: 'x86_64', tmpDir: join(tmp.path, 'tmp') });
    const boot4k = await readBootFile(m4k.path, ['ignition.firstboot', 'grub/grub.cfg']);
    expect(boot4k[0]).toBe('');
    expect(boot4k[1]).toMatch(/ignition\.platform\.id=metal \$ignition_firstboot /);
  }, 30 * 60_000);

  test('an ext4 root and /boot are deployed once into a staged directory and made offline straight into the disk file: the same bytes twice, the deployment immutable, nothing left behind', async () => {
    await using tmp = await tempDir();
    const write = async (name: string): Promise<{ sha256: string; steps: string[] }> => {
      const steps: string[] = [];
      const img = await createDisk({
        repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu',
        imageConfig: { rootfs: 'ext4', 'rootfs-args': '-E stride=4 -m 1' }, executor: directExecutor(),
        output: join(tmp.path, name, 'disk.raw'), buildId: 'test.1', tmpDir: join(tmp.path, `tmp-${name}`),
        onProgress: (e) => { if (e.type === 'log') { const m = /cosa-disk: \d+ (\S+)/.exec(e.line); if (m) steps.push(m[1]!); } },
      });
      return { sha256: img.sha256, steps };
    };
    // The same file name (the aleph file records it) in two directories.
    await mkdir(join(tmp.path, 'a'));
    await mkdir(join(tmp.path, 'b'));
    const a = await write('a');
    const b = await write('b');
    // Staged and made offline: the kernel never mounts the new root.
    expect(a.steps).toContain('stage-root');
    expect(a.steps).toContain('mkfs-root-offline');
    expect(a.steps).not.toContain('mkfs-root');
    expect(b.sha256).toBe(a.sha256);
    const raw = join(tmp.path, 'a', 'disk.raw');
    const root = (await run(['sfdisk', '--json', raw])).stdout;
    const start = (JSON.parse(root) as { partitiontable: { partitions: { start: number }[] } }).partitiontable.partitions[3]!.start * 512;
    const io = `${raw}?offset=${start}`;
    // rootfs-args reached mke2fs beside cosa's own -E options (one -E: merged).
    const sb = (await run(['dumpe2fs', '-h', io])).stdout;
    expect(sb).toMatch(/^RAID stride:\s+4$/m);
    expect(sb).toMatch(/^Reserved block count:\s+[1-9]/m);
    expect(sb).toMatch(/^Filesystem volume name:\s+root$/m);
    // The deployment directory is immutable (flag 0x10), as ostree makes it on a mounted root.
    const deploys = (await run(['debugfs', '-R', `ls -p /ostree/deploy/${commit.osname}/deploy`, io])).stdout;
    // `ls -p`: /inode/mode/uid/gid/name/size/ per entry.
    const dir = deploys.split('\n').map((l) => l.split('/')[5] ?? '').find((n) => /^[0-9a-f]{64}\.\d+$/.test(n));
    expect(dir, deploys).toBeTruthy();
    const flags = /Flags: (0x[0-9a-f]+)/.exec((await run(['debugfs', '-R', `stat /ostree/deploy/${commit.osname}/deploy/${dir}`, io])).stdout)?.[1];
    expect(Number(flags) & 0x10).toBe(0x10);
    // GRUB's files and config are on the offline /boot, the BIOS bootloader in the MBR.
    expect((await readBootFile(raw, ['grub/grub.cfg']))[0]).toMatch(/rootfstype=ext4/);
    const mbr = Buffer.alloc(512);
    const fh = await open(raw, 'r');
    await fh.read(mbr, 0, 512, 0);
    await fh.close();
    expect(mbr.subarray(0, 440).some((x) => x !== 0)).toBe(true);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 10 * 60_000);

  test('a step failing after the disk is mounted leaves no loop device, mount or process behind', async () => {
    await using tmp = await tempDir();
    const err = await createDisk({
      // An OS name with a slash makes `ostree admin os-init` fail after the partitions are made and mounted.
      repo: commit.repo, commit: commit.commit, osname: 'no/such/os', platform: 'qemu',
      executor: directExecutor(), output: join(tmp.path, 'x.raw'), buildId: 'x', tmpDir: join(tmp.path, 'tmp'),
    }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_IMAGE_FAILED' });
    expect((err as Error).message).toContain('Creating ostree/deploy/no/such/os');
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 5 * 60_000);
});
