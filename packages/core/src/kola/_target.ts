/** Resolves the build kola boots: its qemu image, commit, version and the image's kernel arguments. */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { probeAccelerator, type Accelerator, type Firmware } from '@cosa/image';
import { diskKernelArgs, imageSectorSize } from '@cosa/image/internal';
import { CosaError, type MetaJson } from '@cosa/schema';
import { loadImageConfig } from '@cosa/schema/internal';
import { hostArch } from '../arch.js';
import { Workdir } from '../workdir.js';

/** A build ready to boot. */
export interface KolaTarget {
  wd: Workdir;
  id: string;
  arch: string;
  meta: MetaJson;
  image: string;
  firmware: Firmware;
  sectorSize: 512 | 4096;
  accel: Accelerator;
}

/** Opens the workdir and resolves `build` (default latest) to a bootable qemu image. */
export async function resolveTarget(workdir: string | Workdir, build: string | undefined, signal?: AbortSignal): Promise<KolaTarget> {
  const wd = typeof workdir === 'string' ? await Workdir.open(workdir) : workdir;
  const arch = hostArch();
  const id = await wd.builds.resolve(build ?? 'latest', arch);
  const meta = await wd.builds.getMeta(id, arch);
  const q = meta.images?.qemu?.path;
  if (!q) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${id} has no qemu image`, { hint: 'cosa build qemu (or cosa build --force-image)' });
  if (/\.(xz|gz|zst)$/.test(q)) throw new CosaError('COSA_BUILD_COMPRESSED', `the qemu image of build ${id} is compressed (${q})`, { hint: 'cosa decompress' });
  const image = join(wd.buildsDir, id, arch, q);
  const sectorSize = await imageSectorSize(image);
  const accel = await probeAccelerator({ cacheDir: wd.cacheDir, ...(signal ? { signal } : {}) });
  return { wd, id, arch, meta, image, sectorSize, firmware: sectorSize === 4096 ? 'uefi' : 'bios', accel };
}

/**
 * The kernel arguments the qemu image was written with (image.yaml's console and extra-kargs) as
 * they reach /proc/cmdline: GRUB variables such as `$ignition_firstboot` are expanded at boot
 * (to nothing once the first boot is over), so they are not expected literally.
 */
export async function imageKernelArgs(wd: Workdir): Promise<string[]> {
  const file = join(wd.configDir, 'image.yaml');
  const config = existsSync(file) ? (await loadImageConfig({ file })).config : undefined;
  return diskKernelArgs(config, 'qemu').filter((k) => !k.startsWith('$'));
}

/**
 * Makes `dir` an empty output directory. An existing one is replaced only when it is empty or
 * holds a previous kola run (a `reports/` directory), so a mistyped path is never wiped.
 */
export async function prepareOutputDir(dir: string): Promise<void> {
  if (existsSync(dir)) {
    const entries = await readdir(dir);
    if (entries.length > 0 && !entries.includes('reports')) {
      throw new CosaError('COSA_USAGE', `${dir} exists and is not the output of a kola run (no reports/ in it)`, { hint: 'pass an empty or new --output-dir' });
    }
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true });
}
