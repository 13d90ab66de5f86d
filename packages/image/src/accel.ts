/**
 * Which qemu accelerator works on this host. /dev/kvm may exist and still not boot a stock
 * kernel (e.g. a PVM host device): boot the host kernel once under KVM with a tiny busybox
 * initramfs, and remember the answer in the cache directory.
 */
import { access, constants, chmod, copyFile, lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { homedir, tmpdir } from 'node:os';
import { run } from '@cosa/ostree/internal';
import { isCosaError, readRegularFile, writeFileAtomic, type OnProgress } from '@cosa/schema';
import { findHostKernel } from './_host-packages.js';

/** A qemu accelerator. */
export type Accelerator = 'kvm' | 'tcg';

/** Options of {@link probeAccelerator}. */
export interface ProbeAcceleratorOptions {
  /** Where the answer is cached (`accel.json`; default {@link defaultAccelCacheDir}). */
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
 * when KVM works, `timeoutMs` when it hangs) runs once per host kernel and qemu; the answer is
 * cached in `<cacheDir>/accel.json`. `COSA_ACCEL=kvm|tcg` overrides it.
 */
export async function probeAccelerator(options: ProbeAcceleratorOptions): Promise<Accelerator> {
  const forced = process.env.COSA_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  const usable = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false);
  if (!usable) return 'tcg';
  const kernel = await findHostKernel();
  if (!kernel) return 'tcg';
  const qemu = (await run(['qemu-system-x86_64', '--version'])).stdout.split('\n')[0] ?? '';
  const key = `${kernel} ${qemu}`;
  const cacheDir = options.cacheDir ?? defaultAccelCacheDir();
  const file = join(cacheDir, 'accel.json');
  if (!options.force) {
    const cached = await readCachedAccelerator(file, key);
    if (cached) return cached;
  }
  const accel = await bootsUnderKvm(kernel, options);
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify({ key, accel, probedAt: new Date().toISOString() })}\n`);
  return accel;
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
  const dir = await mkdtemp(join(tmpdir(), 'cosa-kvm-probe-'));
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
