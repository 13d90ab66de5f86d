import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuildsDir, buildImage, hostArch } from '@cosa/core';
import { isCosaError } from '@cosa/schema';
import { snapshotTree, tempWorkdir, writeFakeBuild, type TempWorkdir } from '@cosa/test-utils';

const arch = hostArch();

/** Builds `ids` (oldest first); `withQemu` ones get a qemu image of 5 bytes. */
async function withBuilds(wd: TempWorkdir, ids: string[], withQemu: string[] = []): Promise<void> {
  const b = new BuildsDir(join(wd.dir, 'builds'));
  for (const [i, id] of ids.entries()) {
    const qemu = withQemu.includes(id) ? { qemu: { path: `tiny-${id}-qemu.${arch}.qcow2`, sha256: 'b'.repeat(64) } } : {};
    const meta = await writeFakeBuild(wd.dir, id, { arch, timestamp: `2026-01-01T00:0${i}:00Z` });
    if (withQemu.includes(id)) {
      await writeFile(join(wd.dir, 'builds', id, arch, qemu.qemu!.path), 'qcow2');
      await writeFile(join(wd.dir, 'builds', id, arch, 'meta.json'), JSON.stringify({ ...meta, images: { ...(meta.images as object), ...qemu } }));
    }
    await b.insertBuild(id, arch);
  }
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: unknown) => e);
}

describe('buildImage (core)', () => {
  it('returns the image a build already has without writing anything, with its size read from disk', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0', '1.1'], ['1.0']);
    const before = await snapshotTree(wd.dir);
    const img = await buildImage({ workdir: wd.dir, build: '1.0', platform: 'qemu' });
    expect(img).toEqual({
      platform: 'qemu', path: join(wd.dir, 'builds', '1.0', arch, `tiny-1.0-qemu.${arch}.qcow2`), sha256: 'b'.repeat(64), size: 5,
      buildId: '1.0', arch, written: false,
    });
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('refuses an unknown platform, naming the known ones', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0']);
    const e = await caught(buildImage({ workdir: wd.dir, platform: 'no-such-cloud' }));
    expect(isCosaError(e, 'COSA_PLATFORM_UNKNOWN')).toBe(true);
    expect((e as Error).message).toContain('metal');
  });

  it('refuses a qemu image-only build of a build that is not the latest, leaving the workdir as it was', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0', '1.1']);
    const before = await snapshotTree(wd.dir);
    const e = await caught(buildImage({ workdir: wd.dir, build: '1.0', platform: 'qemu' }));
    expect(isCosaError(e, 'COSA_USAGE')).toBe(true);
    expect((e as Error).message).toContain('latest build (1.1)');
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('fails with COSA_BUILD_NOT_FOUND for a build the workdir does not have', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0']);
    expect(isCosaError(await caught(buildImage({ workdir: wd.dir, build: '9.9', platform: 'metal' })), 'COSA_BUILD_NOT_FOUND')).toBe(true);
  });
});
