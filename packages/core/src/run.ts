/**
 * `cosa run`: boot a build's qemu image. Interactive (serial console on the terminal) or, with
 * `check`, non-interactive: wait for the login prompt and report.
 */
import { copyFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, type OnProgress } from '@cosa/schema';
import { makeTempDir } from '@cosa/schema/internal';
import { run } from '@cosa/ostree/internal';
import { bootCheck, findOvmf, probeAccelerator, qemuArgs, type Firmware } from '@cosa/image';
import { createBlankDisk, imageSectorSize } from '@cosa/image/internal';
import { Workdir } from './workdir.js';
import { hostArch } from './arch.js';

/** Options of {@link runImage}. */
export interface RunImageOptions {
  /** The workdir whose build to boot (default latest); not needed with `qemuImage`. */
  workdir?: string;
  /** Build id (default: latest). */
  build?: string;
  /** Boot this image file instead of the build's qemu image. */
  qemuImage?: string;
  /** Default: UEFI for a 4096-byte-sector (metal4k) image, else BIOS. */
  firmware?: Firmware;
  memoryMiB?: number;
  cpus?: number;
  /** Extra blank disks, sizes as qemu-img takes them (`10G`). */
  addDisks?: string[];
  /** Non-interactive: wait for `pattern` (default login prompt) and return. */
  check?: boolean;
  pattern?: RegExp;
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What {@link runImage} returns. */
export interface RunImageResult {
  image: string;
  ok: boolean;
  elapsedMs: number;
  /** The last lines of the console (check mode). */
  consoleTail?: string;
  reason?: string;
}

async function resolveImage(o: RunImageOptions): Promise<{ image: string; cacheDir?: string }> {
  if (o.qemuImage) return { image: o.qemuImage };
  const wd = await Workdir.open(o.workdir ?? process.cwd());
  const arch = hostArch();
  const id = await wd.builds.resolve(o.build ?? 'latest', arch);
  const meta = await wd.builds.getMeta(id, arch);
  const q = meta.images?.qemu?.path;
  if (!q) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${id} has no qemu image`, { hint: 'cosa build qemu (or cosa build --force-image)' });
  if (q.endsWith('.xz') || q.endsWith('.gz') || q.endsWith('.zst')) {
    throw new CosaError('COSA_BUILD_COMPRESSED', `the qemu image of build ${id} is compressed (${q})`, { hint: 'cosa decompress' });
  }
  return { image: join(wd.buildsDir, id, arch, q), cacheDir: wd.cacheDir };
}

/** Boots a qemu image (snapshot mode: the image is never modified). */
export async function runImage(o: RunImageOptions): Promise<RunImageResult> {
  const { image, cacheDir } = await resolveImage(o);
  // Without a workdir the answer goes to the per-user cache, never a shared path in /tmp.
  const accel = await probeAccelerator({ ...(cacheDir ? { cacheDir } : {}), ...(o.signal ? { signal: o.signal } : {}) });
  if (o.check) {
    const r = await bootCheck({
      image,
      accel,
      ...(o.firmware ? { firmware: o.firmware } : {}),
      ...(o.pattern ? { pattern: o.pattern } : {}),
      timeoutMs: o.timeoutMs ?? 5 * 60_000,
      ...(o.memoryMiB ? { memoryMiB: o.memoryMiB } : {}),
      ...(o.cpus ? { cpus: o.cpus } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    return { image, ok: r.ok, elapsedMs: r.elapsedMs, consoleTail: r.consoleLog.split('\n').slice(-30).join('\n'), ...(r.reason ? { reason: r.reason } : {}) };
  }
  const dir = await makeTempDir('cosa-run-');
  const sectorSize = await imageSectorSize(image);
  const firmware = o.firmware ?? (sectorSize === 4096 ? 'uefi' : 'bios');
  try {
    const extraDisks: string[] = [];
    for (const [i, size] of (o.addDisks ?? []).entries()) {
      const p = join(dir, `disk${i}.qcow2`);
      await createBlankDisk(p, size, o.signal);
      extraDisks.push(p);
    }
    let ovmfVars: string | undefined;
    if (firmware === 'uefi') {
      ovmfVars = join(dir, 'OVMF_VARS.fd');
      await copyFile(findOvmf().vars, ovmfVars);
    }
    const argv = qemuArgs({
      image,
      accel,
      firmware,
      sectorSize,
      ...(o.memoryMiB ? { memoryMiB: o.memoryMiB } : {}),
      ...(o.cpus ? { cpus: o.cpus } : {}),
      serial: 'stdio',
      extraDisks,
      ...(ovmfVars ? { ovmfVars } : {}),
      network: 'user',
    });
    const t0 = performance.now();
    await run(argv, { stdio: 'inherit', ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
    return { image, ok: true, elapsedMs: Math.round(performance.now() - t0) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
