/**
 * Which qemu accelerator works on this host. /dev/kvm may exist and still not boot a stock
 * kernel (e.g. a PVM host device): boot the host kernel once under KVM with a tiny busybox
 * initramfs, and remember the answer in the cache directory.
 */
import { access, constants, chmod, copyFile, lstat, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { homedir } from 'node:os';
import { run } from '@cosa/ostree/internal';
import { isCosaError, writeFileAtomic, type OnProgress } from '@cosa/schema';
import { makeTempDir, readRegularFile } from '@cosa/schema/internal';
import { findHostKernel } from './_host-packages.js';

/** A qemu accelerator. */
export type Accelerator = 'kvm' | 'tcg';

/** Options of {@link probeAccelerator}. */
export interface ProbeAcceleratorOptions {
  /**
   * A further directory for the answer (`accel.json`), e.g. a workdir's `cache/`: read after the
   * per-user cache ({@link defaultAccelCacheDir}) and given a copy of the answer. The answer is
   * per machine, so a fresh workdir on a machine that already probed does not probe again.
   */
  cacheDir?: string;
  /** How long the KVM boot may take before KVM counts as unusable (default 20 s). */
  timeoutMs?: number;
  /** Probe again even when an answer is cached. */
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

const MARKER = 'COSA-KVM-PROBE-OK';

/**
 * Returns `kvm` when a stock kernel boots under KVM here, else `tcg`. The probe (a few seconds
 * when KVM works, `timeoutMs` when it hangs) runs once per host kernel and qemu: the answer is
 * cached in the per-user `accel.json` ({@link defaultAccelCacheDir}) and copied to
 * `<cacheDir>/accel.json`; either copy is used when its key matches. `COSA_ACCEL=kvm|tcg`
 * overrides it.
 */
export async function probeAccelerator(options: ProbeAcceleratorOptions): Promise<Accelerator> {
  const forced = process.env.COSA_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  const usable = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false);
  if (!usable) return 'tcg';
  const kernel = await findHostKernel();
  const key = kernel ? await accelCacheKey(kernel) : undefined;
  if (!kernel || !key) return 'tcg';
  const dirs = [...new Set([defaultAccelCacheDir(), ...(options.cacheDir ? [options.cacheDir] : [])])];
  let accel: Accelerator | undefined;
  const missing: string[] = [];
  for (const dir of dirs) {
    const cached = options.force ? undefined : await readCachedAccelerator(join(dir, 'accel.json'), key);
    accel ??= cached;
    if (!cached) missing.push(dir);
  }
  accel ??= await bootsUnderKvm(kernel, options);
  const record = `${JSON.stringify({ key, accel, probedAt: new Date().toISOString() })}\n`;
  let saved = dirs.length - missing.length;
  for (const dir of missing) {
    // A cache that cannot be written (a read-only home) only costs a probe next time.
    const ok = await mkdir(dir, { recursive: true, mode: 0o700 }).then(() => writeFileAtomic(join(dir, 'accel.json'), record)).then(() => true, () => false);
    if (ok) saved++;
  }
  if (saved === 0) options.onProgress?.({ type: 'log', phase: 'accel', line: `the accelerator answer (${accel}) could not be cached in ${dirs.join(' or ')}` });
  return accel;
}

/**
 * What a cached answer is valid for: the host kernel the probe boots and the qemu version
 * (`undefined` when the host has no kernel to probe with: then the answer is always `tcg`).
 */
export async function accelCacheKey(kernel?: string): Promise<string | undefined> {
  const k = kernel ?? (await findHostKernel());
  if (!k) return undefined;
  const qemu = (await run(['qemu-system-x86_64', '--version'])).stdout.split('\n')[0] ?? '';
  return `${k} ${qemu}`;
}

/**
 * The per-user cache directory for the accelerator answer when none is given:
 * `$XDG_CACHE_HOME/cosa`, else `~/.cache/cosa` (never a predictable path in the shared /tmp,
 * where another user could plant an answer).
 */
export function defaultAccelCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'cosa');
}

/**
 * A cached answer for `key`, or `undefined`: the file must be a regular file owned by this user
 * and the answer one of the known accelerators (it is passed to qemu as an argument).
 */
export async function readCachedAccelerator(file: string, key: string): Promise<Accelerator | undefined> {
  try {
    const st = await lstat(file);
    if (!st.isFile() || (typeof process.getuid === 'function' && st.uid !== process.getuid())) return undefined;
    const cached = JSON.parse(await readRegularFile(file)) as { key?: unknown; accel?: unknown };
    if (cached.key !== key) return undefined;
    return cached.accel === 'kvm' || cached.accel === 'tcg' ? cached.accel : undefined;
  } catch {
    return undefined;
  }
}

async function bootsUnderKvm(kernel: string, options: ProbeAcceleratorOptions): Promise<Accelerator> {
  const dir = await makeTempDir('cosa-kvm-probe-');
  try {
    const root = join(dir, 'root');
    await mkdir(join(root, 'bin'), { recursive: true });
    await copyFile('/bin/busybox', join(root, 'bin/busybox'));
    await writeFile(join(root, 'init'), `#!/bin/busybox sh\n/bin/busybox echo ${MARKER}\n/bin/busybox poweroff -f\n`);
    await chmod(join(root, 'init'), 0o755);
    const initrd = join(dir, 'initrd.cpio');
    await run(['sh', '-c', 'find . | cpio -o -H newc --quiet > "$1"', 'sh', initrd], { cwd: root, signal: options.signal });
    const log = join(dir, 'console.log');
    try {
      await run(
        [
          'qemu-system-x86_64', '-accel', 'kvm', '-m', '256', '-nodefaults', '-display', 'none', '-no-reboot',
          '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 quiet', '-serial', `file:${log}`,
        ],
        { signal: options.signal, timeoutMs: options.timeoutMs ?? 20_000, onProgress: options.onProgress },
      );
    } catch (e) {
      if (options.signal?.aborted) throw e;
      if (!isCosaError(e)) throw e;
    }
    const out = await readFile(log, 'utf8').catch(() => '');
    return out.includes(MARKER) ? 'kvm' : 'tcg';
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
