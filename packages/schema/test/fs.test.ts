import { mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { symlinkAtomic, withLock, writeFileAtomic } from '@cosa/schema';

let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'cosa-fs-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

describe('atomic files and locks', () => {
  it('writes a file atomically and leaves no temp file behind', async () => {
    await writeFileAtomic(join(dir, 'a.json'), 'one');
    await writeFileAtomic(join(dir, 'a.json'), 'two');
    expect(await readFile(join(dir, 'a.json'), 'utf8')).toBe('two');
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('repoints a symlink atomically', async () => {
    await symlinkAtomic('b1', join(dir, 'latest'));
    await symlinkAtomic('b2', join(dir, 'latest'));
    expect(await readlink(join(dir, 'latest'))).toBe('b2');
  });

  it('serialises concurrent read-modify-write cycles so no update is lost', async () => {
    const f = join(dir, 'counter');
    await writeFileAtomic(f, '0');
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withLock(f, async () => {
          const n = Number(await readFile(f, 'utf8'));
          await new Promise((r) => setTimeout(r, 2));
          await writeFileAtomic(f, String(n + 1));
        }),
      ),
    );
    expect(await readFile(f, 'utf8')).toBe('20');
  });
});
