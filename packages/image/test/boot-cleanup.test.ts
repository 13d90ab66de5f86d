import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bootCheck } from '@cosa/image';

const saved = process.env.TMPDIR;
let base: string | undefined;
afterEach(async () => {
  if (saved === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = saved;
  if (base) await rm(base, { recursive: true, force: true });
});

describe('bootCheck cleanup', () => {
  it('leaves nothing in the temp dir when the boot is aborted', async () => {
    base = await mkdtemp(join(tmpdir(), 'cosa-boot-cleanup-'));
    const tmp = join(base, 'tmp');
    const image = join(base, 'blank.raw');
    await writeFile(image, Buffer.alloc(1024 * 1024));
    await mkdir(tmp);
    process.env.TMPDIR = tmp;
    const ac = new AbortController();
    // A blank disk never reaches a login prompt: the real qemu runs until the abort.
    setTimeout(() => ac.abort(), 1500);
    const e = await bootCheck({ image, accel: 'tcg', firmware: 'bios', sectorSize: 512, timeoutMs: 60_000, signal: ac.signal }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect(await readdir(tmp)).toEqual([]);
  });
});
