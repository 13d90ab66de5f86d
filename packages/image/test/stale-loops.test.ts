import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '@cosa/ostree/internal';
import { detachStaleLoops } from '../src/executor.js';

const canLoop = process.getuid?.() === 0 && existsSync('/dev/loop-control');

describe('loop devices left by a killed direct writer', () => {
  it.skipIf(!canLoop)('are detached when their deleted backing file was under the tmp dir, others are left alone', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cosa-loops-'));
    const other = await mkdtemp(join(tmpdir(), 'cosa-loops-other-'));
    const attach = async (file: string) => {
      await writeFile(file, Buffer.alloc(1024 * 1024));
      return (await run(['losetup', '--find', '--show', file])).stdout.trim();
    };
    const stale = await attach(join(root, 'disk.partial'));
    const live = await attach(join(root, 'live.img'));
    const foreign = await attach(join(other, 'disk.partial'));
    try {
      await rm(join(root, 'disk.partial')); // what a SIGKILLed writer leaves: the loop, no file
      await rm(join(other, 'disk.partial'));
      expect(await detachStaleLoops(root)).toEqual([stale]);
      const left = (await run(['losetup', '--list', '--noheadings', '--output', 'NAME'])).stdout.split('\n').map((l) => l.trim());
      expect(left).not.toContain(stale);
      expect(left).toContain(live);
      expect(left).toContain(foreign);
    } finally {
      for (const d of [stale, live, foreign]) await run(['losetup', '-d', d]).catch(() => {});
      await rm(root, { recursive: true, force: true });
      await rm(other, { recursive: true, force: true });
    }
  });
});
