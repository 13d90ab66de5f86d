/**
 * Which qemu accelerator works on this host. /dev/kvm may exist and still not boot a stock
 * kernel (e.g. a PVM host device): boot the host kernel once under KVM with a tiny busybox
 * initramfs, and remember the answer in the cache directory.
 */
import { access, constants, chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { run } from '@cosa/ostree';
import { isCosaError, writeFileAtomic, type OnProgress } from '@cosa/schema';
import { findHostKernel } from './_host-packages.js';

/** A qemu accelerator. */
export type Accelerator = 'kvm' | 'tcg';

/** Options of {@link probeAccelerator}. */
export interface ProbeAcceleratorOptions {
  /** Where the answer is cached (`accel.json`). */
  cacheDir: string;
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
  const file = join(options.cacheDir, 'accel.json');
  if (!options.force) {
    const cached = await readFile(file, 'utf8').then((t) => JSON.parse(t) as { key: string; accel: Accelerator }, () => undefined);
    if (cached?.key === key) return cached.accel;
  }
  const accel = await bootsUnderKvm(kernel, options);
  await mkdir(options.cacheDir, { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify({ key, accel, probedAt: new Date().toISOString() })}\n`);
  return accel;
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
