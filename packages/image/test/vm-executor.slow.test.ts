import { readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CommandFailedError, isCosaError } from '@cosa/schema';
import { prepareAppliance, probeAccelerator, vmExecutor } from '../src/index.ts';
import { hasPvhEntry } from '../src/appliance.ts';
import { CACHE_DIR, leftovers, tempDir } from './_env.ts';

describe('the VM executor', () => {
  test('the accelerator probe falls back to TCG on a host whose KVM cannot boot a stock kernel, and caches the answer', async () => {
    const accel = await probeAccelerator({ cacheDir: CACHE_DIR });
    expect(accel).toBe('tcg');
    expect(JSON.parse(readFileSync(join(CACHE_DIR, 'accel.json'), 'utf8'))).toMatchObject({ accel: 'tcg' });
    expect(await probeAccelerator({ cacheDir: CACHE_DIR })).toBe('tcg');
  }, 60_000);

  test('a prepared appliance is reused from the cache on the second call', async () => {
    const first = await prepareAppliance({ cacheDir: CACHE_DIR });
    const second = await prepareAppliance({ cacheDir: CACHE_DIR });
    expect(second.cached).toBe(true);
    expect(second.key).toBe(first.key);
    // This host's kernel (Debian, xz) unpacks to a PVH-bootable vmlinux, booted without firmware.
    expect(second.vmlinux).toBe(join(second.dir, 'vmlinux'));
    expect(await hasPvhEntry(second.vmlinux!)).toBe(true);
  }, 120_000);

  test('runs a script with read-only inputs, a read-write work share and the disk as a block device', async () => {
    await using tmp = await tempDir();
    const work = join(tmp.path, 'work');
    const input = join(tmp.path, 'input');
    await mkdir(work);
    await mkdir(input);
    await writeFile(join(input, 'hello.txt'), 'hello from the host\n');
    const disk = join(tmp.path, 'disk.raw');
    await writeFile(disk, Buffer.alloc(8 * 1024 * 1024));
    const script = join(tmp.path, 'script.sh');
    await writeFile(script, [
      'set -eu',
      'cat "$COSA_IN_DATA/hello.txt" > "$COSA_WORK/copied.txt"',
      'if touch "$COSA_IN_DATA/new" 2>/dev/null; then echo writable > "$COSA_WORK/input-writable"; fi',
      'echo "$MY_VAR" > "$COSA_WORK/var.txt"',
      'printf COSA-DISK-OK | dd of="$COSA_DISK" bs=512 conv=notrunc,fsync status=none',
      // -cpu max: the guest has SSE4.2 (crc32c for xfs/ext4 metadata); the kernel booted without mitigations.
      'grep -qw sse4_2 /proc/cpuinfo && echo sse4_2 > "$COSA_WORK/cpu.txt"',
      'grep -qw mitigations=off /proc/cmdline && echo off > "$COSA_WORK/mitigations.txt"',
      '',
    ].join('\n'));
    await chmod(script, 0o755);
    await vmExecutor({ cacheDir: CACHE_DIR }).run({
      script, workDir: work, inputs: { data: input }, disk, tmpDir: tmp.path, env: { MY_VAR: "it's a value with spaces" },
    });
    expect(await readFile(join(work, 'copied.txt'), 'utf8')).toBe('hello from the host\n');
    expect(await readFile(join(work, 'var.txt'), 'utf8')).toBe("it's a value with spaces\n");
    expect(await readFile(join(work, 'cpu.txt'), 'utf8')).toBe('sse4_2\n');
    expect(await readFile(join(work, 'mitigations.txt'), 'utf8')).toBe('off\n');
    await expect(readFile(join(work, 'input-writable'))).rejects.toThrow();
    expect((await readFile(disk)).subarray(0, 11).toString()).toBe('COSA-DISK-OK'.slice(0, 11));
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 180_000);

  test('a failing step inside the VM surfaces its stderr, exit code and the console tail, and leaves no qemu behind', async () => {
    await using tmp = await tempDir();
    const work = join(tmp.path, 'work');
    await mkdir(work);
    const script = join(tmp.path, 'fail.sh');
    await writeFile(script, 'set -e\necho "step one ok"\necho "mkfs.bogus: deliberate failure for the test" >&2\nfalse\necho never\n');
    const err = await vmExecutor({ cacheDir: CACHE_DIR }).run({ script, workDir: work, tmpDir: tmp.path }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CommandFailedError);
    const e = err as CommandFailedError;
    expect(e.code).toBe('COSA_IMAGE_FAILED');
    expect(e.exitCode).toBe(1);
    expect(e.stderr).toContain('mkfs.bogus: deliberate failure for the test');
    expect(e.message).toContain('mkfs.bogus: deliberate failure for the test');
    expect(e.message).toMatch(/console \(tail\)[\s\S]*cosa-appliance: command exited with 1/);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 180_000);

  test('an abort kills qemu at once', async () => {
    await using tmp = await tempDir();
    const work = join(tmp.path, 'work');
    await mkdir(work);
    const script = join(tmp.path, 'sleep.sh');
    await writeFile(script, 'sleep 600\n');
    const ac = new AbortController();
    const running = vmExecutor({ cacheDir: CACHE_DIR })
      .run({ script, workDir: work, tmpDir: tmp.path, signal: ac.signal })
      .then(() => undefined, (e: unknown) => e);
    // Wait until the guest runs the script (qemu is up and the appliance booted).
    for (let i = 0; i < 600 && !(await readFile(join(tmp.path, 'runvm-console.txt'), 'utf8').catch(() => '')).includes('init at uptime'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await leftovers(tmp.path)).qemu.length).toBe(1);
    const t0 = performance.now();
    ac.abort();
    const err = await running;
    expect(isCosaError(err, 'COSA_EXEC_ABORTED')).toBe(true);
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 120_000);
});
