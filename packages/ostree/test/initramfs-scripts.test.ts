import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { run } from '@cosa/ostree/internal';
import { tempDir } from '@cosa/test-utils';

// The initramfs-tools script that cosa adds to every Debian tree's initramfs, run with the shell
// the initramfs has (dash here, klibc's sh there: both POSIX), a recording modprobe first on PATH.
const script = fileURLToPath(new URL('../assets/initramfs-tools/scripts/init-top/cosa-rootfs', import.meta.url));

async function runScript(env: Record<string, string>, args: string[] = [], waitMs = 3000): Promise<{ stdout: string; calls: string[] }> {
  await using tmp = await tempDir();
  const dir = tmp.dir;
  const log = join(dir, 'calls');
  await writeFile(log, '');
  await writeFile(join(dir, 'modprobe'), `#!/bin/sh\necho "$*" >> ${log}\n`);
  await chmod(join(dir, 'modprobe'), 0o755);
  const r = await run(['sh', script, ...args], { env: { PATH: `${dir}:/usr/bin:/bin`, ...env }, extendEnv: false, timeoutMs: 10_000 });
  // modprobe runs in the background: give it time to write (until the first call, or waitMs).
  const deadline = Date.now() + waitMs;
  let calls = '';
  while (Date.now() < deadline) {
    calls = await readFile(log, 'utf8');
    if (calls) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  return { stdout: r.stdout, calls: calls.split('\n').filter(Boolean) };
}

describe('init-top/cosa-rootfs', () => {
  it('starts loading the file system module that rootfstype= names', async () => {
    expect((await runScript({ ROOTFSTYPE: 'xfs' })).calls).toEqual(['-q fs-xfs']);
    expect((await runScript({ ROOTFSTYPE: 'ext4' })).calls).toEqual(['-q fs-ext4']);
  });

  it('does nothing without a rootfstype=, with auto, or with a value that is not a module name', async () => {
    for (const env of [{} as Record<string, string>, { ROOTFSTYPE: '' }, { ROOTFSTYPE: 'auto' }, { ROOTFSTYPE: 'xfs;reboot' }, { ROOTFSTYPE: '../x' }]) {
      expect((await runScript(env, [], 400)).calls, JSON.stringify(env)).toEqual([]);
    }
  });

  it('answers prereqs with none (mkinitramfs then orders it by name; the compose test checks ORDER)', async () => {
    const r = await runScript({ ROOTFSTYPE: 'xfs' }, ['prereqs'], 400);
    expect(r.stdout).toBe('');
    expect(r.calls).toEqual([]);
  });
});
