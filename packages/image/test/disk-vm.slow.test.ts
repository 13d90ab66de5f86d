import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { run } from '@cosa/ostree/internal';
import { bootCheck, buildImage, createDisk, vmExecutor } from '../src/index.ts';
import { imageSectorSize } from '@cosa/image/internal';
import { debianTestCommit, type TestCommit } from './_commit.ts';
import { rootXfsSectorSize } from './_xfs.ts';
import { CACHE_DIR, leftovers, tempDir } from './_env.ts';

let commit: TestCommit;
beforeAll(async () => {
  commit = await debianTestCommit();
}, 30 * 60_000);

describe('the VM executor writing a disk', () => {
  test('writes a qcow2 from a Debian OSTree commit inside the supermin appliance that boots to a login prompt', async () => {
    await using tmp = await tempDir();
    const output = join(tmp.path, 'debian-vm.qcow2');
    const phases: string[] = [];
    const img = await buildImage({
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu',
      executor: vmExecutor({ cacheDir: CACHE_DIR }), output, buildId: 'test.vm', tmpDir: join(tmp.path, 'tmp'), cacheDir: CACHE_DIR,
      onProgress: (e) => {
        if (e.type === 'phase' && e.status === 'end') phases.push(e.phase);
      },
    });
    expect(phases).toContain('disk-vm');
    expect((await run(['qemu-img', 'info', '--output=json', output])).stdout).toContain('"format": "qcow2"');
    expect(img.sha256).toBe((await run(['sha256sum', output])).stdout.split(' ')[0]);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
    for (const firmware of ['uefi'] as const) {
      const boot = await bootCheck({ image: output, firmware, timeoutMs: 600_000, cacheDir: CACHE_DIR });
      expect(boot.ok, `${firmware} console:\n${boot.consoleLog.slice(-3000)}`).toBe(true);
    }
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
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
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 30 * 60_000);
});
