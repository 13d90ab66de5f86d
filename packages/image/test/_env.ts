import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@cosa/ostree/internal';

/** The cache shared by the image tests (appliance, accelerator answer). */
export const CACHE_DIR = join(process.env.COSA_TEST_CACHE ?? '/var/tmp/cosa-test-cache', 'cache');

/** A fresh directory under /var/tmp (big sparse images do not belong in a tmpfs). */
export async function tempDir(prefix = 'cosa-image-test-'): Promise<{ path: string; [Symbol.asyncDispose]: () => Promise<void> }> {
  const path = await mkdtemp(join('/var/tmp', prefix));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

/**
 * What a run may leave behind that refers to `dir`: loop devices backed by files under it,
 * mounts under it, qemu processes whose command line names it. The machine is shared with other
 * jobs, so only resources that belong to `dir` are counted.
 */
export async function leftovers(dir: string): Promise<{ loops: string[]; mounts: string[]; qemu: string[] }> {
  const loops = (await run(['losetup', '-a', '-n', '-O', 'NAME,BACK-FILE'], { okExitCodes: [0, 1] })).stdout
    .split('\n').filter((l) => l.includes(dir));
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.includes(dir));
  const qemu = (await run(['pgrep', '-af', 'qemu-system'], { okExitCodes: [0, 1] })).stdout
    .split('\n').filter((l) => l.includes(dir));
  return { loops, mounts, qemu };
}
