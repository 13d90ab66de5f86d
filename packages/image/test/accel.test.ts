import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { accelCacheKey, defaultAccelCacheDir, probeAccelerator, readCachedAccelerator } from '../src/accel.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cosa-accel-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the cached accelerator answer', () => {
  it('lives in a per-user cache directory, not in the shared /tmp', () => {
    expect(defaultAccelCacheDir().startsWith(tmpdir())).toBe(false);
    expect(defaultAccelCacheDir()).toMatch(/cosa$/);
  });

  it('is used only when it is a known accelerator in a regular file of this user', async () => {
    const file = join(dir, 'accel.json');
    await writeFile(file, JSON.stringify({ key: 'k', accel: 'kvm' }));
    expect(await readCachedAccelerator(file, 'k')).toBe('kvm');
    expect(await readCachedAccelerator(file, 'other')).toBeUndefined();
    await writeFile(file, JSON.stringify({ key: 'k', accel: 'kvm -drive file=/etc/shadow' }));
    expect(await readCachedAccelerator(file, 'k')).toBeUndefined();
    await writeFile(file, '{not json');
    expect(await readCachedAccelerator(file, 'k')).toBeUndefined();
    const real = join(dir, 'planted.json');
    await writeFile(real, JSON.stringify({ key: 'k', accel: 'tcg' }));
    await rm(file);
    await symlink(real, file);
    expect(await readCachedAccelerator(file, 'k')).toBeUndefined();
    if (process.getuid?.() === 0) {
      // Planted by another user: ignored.
      await chown(real, 65534, 65534);
      expect(await readCachedAccelerator(real, 'k')).toBeUndefined();
    }
  });
});

describe('the accelerator probe', () => {
  // With /dev/kvm usable and a host kernel, probeAccelerator would boot that kernel under KVM.
  const canProbe = existsSync('/dev/kvm') && process.getuid?.() === 0;
  const saved = { xdg: process.env.XDG_CACHE_HOME, accel: process.env.COSA_ACCEL };
  afterEach(() => {
    for (const [k, v] of [['XDG_CACHE_HOME', saved.xdg], ['COSA_ACCEL', saved.accel]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it.skipIf(!canProbe)('is paid once per machine: a fresh workdir cache uses the per-user answer and gets a copy of it', async () => {
    const key = await accelCacheKey();
    if (!key) return; // no host kernel to probe with: the answer is always tcg, nothing is cached
    delete process.env.COSA_ACCEL;
    process.env.XDG_CACHE_HOME = join(dir, 'xdg');
    await mkdir(defaultAccelCacheDir(), { recursive: true });
    // An answer the probe could not give: with a 1 ms deadline a real probe ends in `tcg`.
    await writeFile(join(defaultAccelCacheDir(), 'accel.json'), JSON.stringify({ key, accel: 'kvm' }));
    const workdirCache = join(dir, 'wd', 'cache');
    const t0 = performance.now();
    expect(await probeAccelerator({ cacheDir: workdirCache, timeoutMs: 1 })).toBe('kvm');
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(await readCachedAccelerator(join(workdirCache, 'accel.json'), key)).toBe('kvm');
  });

  it.skipIf(!canProbe)('takes a workdir answer when the per-user cache has none, and copies it there', async () => {
    const key = await accelCacheKey();
    if (!key) return;
    delete process.env.COSA_ACCEL;
    process.env.XDG_CACHE_HOME = join(dir, 'xdg');
    const workdirCache = join(dir, 'wd', 'cache');
    await mkdir(workdirCache, { recursive: true });
    await writeFile(join(workdirCache, 'accel.json'), JSON.stringify({ key, accel: 'kvm' }));
    expect(await probeAccelerator({ cacheDir: workdirCache, timeoutMs: 1 })).toBe('kvm');
    expect(await readCachedAccelerator(join(defaultAccelCacheDir(), 'accel.json'), key)).toBe('kvm');
    // A stale key is not trusted: the probe runs (1 ms deadline: it cannot boot) and says tcg.
    await writeFile(join(workdirCache, 'accel.json'), JSON.stringify({ key: 'other', accel: 'kvm' }));
    await rm(join(defaultAccelCacheDir(), 'accel.json'));
    expect(await probeAccelerator({ cacheDir: workdirCache, timeoutMs: 1 })).toBe('tcg');
  });
});
