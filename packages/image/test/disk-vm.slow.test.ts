import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { run } from '@cosa/ostree';
import { bootCheck, buildImage, vmExecutor } from '../src/index.ts';
import { debianTestCommit, type TestCommit } from './_commit.ts';
import { CACHE_DIR, leftovers, tempDir } from './_env.ts';

let commit: TestCommit;
beforeAll(async () => {
  commit = await debianTestCommit();
}, 30 * 60_000);

describe('the VM executor writing a disk', () => {
  test('writes a qcow2 from a Debian OSTree commit inside the supermin appliance that boots to a login prompt', async () => {
    await using tmp = await tempDir();
    const output = join(tmp.path, 'debian-vm.qcow2');
    const phases: string[] = [];
    const img = await buildImage({
      repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu',
      executor: vmExecutor({ cacheDir: CACHE_DIR }), output, buildId: 'test.vm', tmpDir: join(tmp.path, 'tmp'), cacheDir: CACHE_DIR,
      onProgress: (e) => {
        if (e.type === 'phase' && e.status === 'end') phases.push(e.phase);
      },
    });
    expect(phases).toContain('disk-vm');
    expect((await run(['qemu-img', 'info', '--output=json', output])).stdout).toContain('"format": "qcow2"');
    expect(img.sha256).toBe((await run(['sha256sum', output])).stdout.split(' ')[0]);
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
    for (const firmware of ['uefi'] as const) {
      const boot = await bootCheck({ image: output, firmware, timeoutMs: 600_000, cacheDir: CACHE_DIR });
      expect(boot.ok, `${firmware} console:\n${boot.consoleLog.slice(-3000)}`).toBe(true);
    }
    expect(await leftovers(tmp.path)).toEqual({ loops: [], mounts: [], qemu: [] });
  }, 30 * 60_000);
});
