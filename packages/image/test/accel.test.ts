import { chown, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultAccelCacheDir, readCachedAccelerator } from '../src/accel.js';

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
