import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { isCosaError } from '@cosa/schema';
import { createDisk, diskKernelArgs, directExecutor, estimateDiskSize, qemuArgs, selectExecutor } from '../src/index.ts';
import { debianTestCommit, type TestCommit } from './_commit.ts';
import { CACHE_DIR, leftovers, tempDir } from './_env.ts';

let commit: TestCommit;
beforeAll(async () => {
  commit = await debianTestCommit();
}, 20 * 60_000);

describe('bad input', () => {
  test('an image.yaml size too small for the commit fails before any disk work, naming the size needed', async () => {
    await using tmp = await tempDir();
    const est = await estimateDiskSize({ repo: commit.repo, commit: commit.commit });
    expect(est.contentBytes).toBeGreaterThan(300 * 1024 * 1024);
    const err = await createDisk({
      repo: commit.repo, commit: commit.commit, osname: 'debian', platform: 'qemu', imageConfig: { size: 1 },
      executor: directExecutor(), output: join(tmp.path, 'x.raw'), buildId: 'x', tmpDir: tmp.path,
    }).then(() => undefined, (e: unknown) => e);
    expect(isCosaError(err, 'COSA_IMAGE_TOO_SMALL')).toBe(true);
    const need = Math.ceil((est.diskMiB / 1024) * 10) / 10;
    expect((err as Error).message).toContain(`needs at least ${need} GiB`);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 60_000);

  test('missing host tools give one error listing every missing Debian package and the setup script', async () => {
    await using tmp = await tempDir();
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const err = await createDisk({
        repo: commit.repo, commit: commit.commit, osname: 'debian', platform: 'qemu',
        executor: directExecutor(), output: join(tmp.path, 'x.raw'), buildId: 'x', tmpDir: tmp.path,
      }).then(() => undefined, (e: unknown) => e);
      expect(isCosaError(err, 'COSA_TOOLS_MISSING')).toBe(true);
      for (const pkg of ['ostree', 'gdisk', 'parted', 'xfsprogs', 'e2fsprogs', 'dosfstools', 'mtools', 'grub-common']) {
        expect((err as Error).message).toContain(pkg);
      }
      expect((err as { hint?: string }).hint).toContain('scripts/setup.sh');
    } finally {
      process.env.PATH = path;
    }
  });

  test('auto picks the direct executor for root with working loop devices', async () => {
    expect(process.getuid?.()).toBe(0);
    expect((await selectExecutor({ choice: 'auto', cacheDir: CACHE_DIR })).kind).toBe('direct');
    expect((await selectExecutor({ choice: 'direct', cacheDir: CACHE_DIR })).kind).toBe('direct');
    expect((await selectExecutor({ choice: 'vm', cacheDir: CACHE_DIR })).kind).toBe('vm');
  });
});

describe('command lines', () => {
  test('the kernel arguments carry the root label, the console, extra-kargs and the platform id', () => {
    expect(diskKernelArgs({ 'extra-kargs': ['mitigations=auto'] }, 'metal')).toEqual([
      'root=LABEL=root', 'rw', 'console=ttyS0,115200n8', 'mitigations=auto', 'ignition.platform.id=metal',
    ]);
  });

  test('qemuArgs boots a snapshot of the image with the serial console on the terminal for cosa run', () => {
    const argv = qemuArgs({ image: '/x/disk.qcow2', accel: 'tcg', memoryMiB: 4096, extraDisks: ['/x/extra.qcow2'] });
    expect(argv.join(' ')).toContain('-accel tcg -m 4096');
    expect(argv).toContain('file=/x/disk.qcow2,if=virtio,snapshot=on');
    expect(argv).toContain('file=/x/extra.qcow2,if=virtio,format=qcow2');
    expect(argv.join(' ')).toContain('-serial mon:stdio');
    expect(() => qemuArgs({ image: '/x', accel: 'tcg', firmware: 'uefi' })).toThrow(/OVMF/);
  });
});
