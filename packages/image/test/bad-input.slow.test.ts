import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { isCosaError } from '@cosa/schema';
import { createDisk, directExecutor, selectExecutor } from '../src/index.ts';
import { estimateDiskSize } from '../src/disk.js';
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
