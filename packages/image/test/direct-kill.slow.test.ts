/**
 * #15 item 15: a cosa killed by SIGKILL while the direct executor's script holds the disk leaves
 * no mount in the host's mount namespace, no loop device attached and no process of the script.
 * The executor runs in a child `node` that imports the built package (packages/image/dist: run
 * `pnpm -r run build` first), so the test kills a real process, not a promise.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { run } from '@cosa/ostree/internal';
import { directExecutor } from '../src/index.ts';
import { leftovers, tempDir } from './_env.ts';

const canLoop = process.getuid?.() === 0 && existsSync('/dev/loop-control');
const CHILD = fileURLToPath(new URL('./_direct-child.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../dist/index.js', import.meta.url));

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Processes whose command line holds `marker`. */
async function processesWith(marker: string): Promise<string[]> {
  return (await run(['pgrep', '-af', marker], { okExitCodes: [0, 1] })).stdout.split('\n').filter((l) => l.includes(marker) && !l.includes('pgrep'));
}

/** A disk script that partitions nothing: ext4 on the whole disk, mounted, and a background process. */
function holdingScript(marker: string): string {
  return [
    'set -e',
    'mkfs.ext4 -q "$COSA_DISK"',
    'mount "$COSA_DISK" "$COSA_MNT"',
    'echo data > "$COSA_MNT/file"',
    `sleep ${marker} &`,
    'echo "$COSA_DISK" > "$COSA_WORK/ready"',
    'wait',
    '',
  ].join('\n');
}

describe('the direct executor and a SIGKILLed cosa', () => {
  it.skipIf(!canLoop)('leaves no mount on the host, no loop device and no process after a SIGKILL mid-script', async () => {
    expect(existsSync(BUILT), 'build packages/image first (pnpm -r run build)').toBe(true);
    await using tmp = await tempDir('cosa-direct-kill-');
    const marker = `${300 + Math.floor(Math.random() * 600)}.${process.pid}`;
    const script = join(tmp.path, 'script.sh');
    const disk = join(tmp.path, 'disk.partial');
    await writeFile(script, holdingScript(marker));
    await writeFile(disk, Buffer.alloc(0));
    await run(['truncate', '-s', '64M', disk]);
    const child = spawn(process.execPath, [CHILD, script, disk, join(tmp.path, 'tmp'), tmp.path], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise((r) => child.on('close', r));
    try {
      const loop = await until('the script to mount the disk', 30_000, async () => {
        if (child.exitCode !== null) throw new Error(`the child exited early: ${stderr}`);
        return (await readFile(join(tmp.path, 'ready'), 'utf8').catch(() => undefined))?.trim() || undefined;
      });
      // While it runs: the loop exists and auto-clears; the mount is in the script's namespace only.
      expect(loop).toMatch(/^\/dev\/loop\d+$/);
      expect((await run(['losetup', '--list', '--noheadings', '--output', 'AUTOCLEAR', loop])).stdout.trim()).toBe('1');
      expect((await leftovers(tmp.path)).mounts).toEqual([]);
      expect(await processesWith(`sleep ${marker}`)).toHaveLength(1);
      child.kill('SIGKILL');
      await exited;
      const left = await until('the namespace to go', 15_000, async () => {
        const l = { ...(await leftovers(tmp.path)), processes: await processesWith(`sleep ${marker}`) };
        return l.loops.length + l.mounts.length + l.processes.length === 0 ? l : undefined;
      }).catch(async () => ({ ...(await leftovers(tmp.path)), processes: await processesWith(`sleep ${marker}`) }));
      expect(left).toEqual({ loops: [], mounts: [], qemu: [], processes: [] });
    } finally {
      child.kill('SIGKILL');
      for (const p of await processesWith(`sleep ${marker}`)) process.kill(Number(p.split(' ')[0]), 'SIGKILL');
      for (const l of (await leftovers(tmp.path)).mounts.reverse()) await run(['umount', '-l', l.split(' ')[1]!]).catch(() => {});
      for (const l of (await leftovers(tmp.path)).loops) await run(['losetup', '-d', l.split(' ')[0]!]).catch(() => {});
    }
  }, 60_000);

  it.skipIf(!canLoop)('a script that ends (or is aborted) leaves its loop device detached when run() returns', async () => {
    await using tmp = await tempDir('cosa-direct-end-');
    const disk = join(tmp.path, 'disk.raw');
    await run(['truncate', '-s', '64M', disk]);
    const ok = join(tmp.path, 'ok.sh');
    await writeFile(ok, 'set -e\nmkfs.ext4 -q "$COSA_DISK"\nmount "$COSA_DISK" "$COSA_MNT"\necho data > "$COSA_MNT/file"\numount "$COSA_MNT"\n');
    await directExecutor().run({ script: ok, disk, workDir: tmp.path, tmpDir: join(tmp.path, 'tmp') });
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
    expect((await run(['debugfs', '-R', 'cat /file', disk])).stdout.trim()).toBe('data');

    const hang = join(tmp.path, 'hang.sh');
    await writeFile(hang, 'mount "$COSA_DISK" "$COSA_MNT"\nsleep 600\n');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 1500);
    const t0 = Date.now();
    await expect(directExecutor().run({ script: hang, disk, workDir: tmp.path, tmpDir: join(tmp.path, 'tmp'), signal: ac.signal })).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 60_000);
});
