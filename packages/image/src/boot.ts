/**
 * Boot checks and the qemu command line shared with `cosa run`: boot an image (BIOS or UEFI with
 * OVMF) with `-snapshot`, capture the serial console, wait for a pattern.
 */
import { existsSync } from 'node:fs';
import { copyFile, readFile, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { run } from '@cosa/ostree/internal';
import { CosaError, isCosaError, type OnProgress } from '@cosa/schema';
import { makeTempDir } from '@cosa/schema/internal';
import { followFile, lineSplitter } from './_console.js';
import { readGpt } from './_gpt.js';
import { QEMU_TOOLS, requireHostTools } from './_host-packages.js';
import { probeAccelerator, type Accelerator } from './accel.js';

/** Firmware to boot with. */
export type Firmware = 'bios' | 'uefi';

/** OVMF firmware files (from Debian's ovmf package). */
export interface OvmfFiles {
  code: string;
  vars: string;
}

/** Finds OVMF_CODE(_4M).fd and its VARS template, or throws COSA_TOOLS_MISSING (package ovmf). */
export function findOvmf(): OvmfFiles {
  for (const [code, vars] of [
    ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
    ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
    ['/usr/share/edk2/ovmf/OVMF_CODE.fd', '/usr/share/edk2/ovmf/OVMF_VARS.fd'],
  ] as const) {
    if (existsSync(code) && existsSync(vars)) return { code, vars };
  }
  throw new CosaError('COSA_TOOLS_MISSING', 'missing host packages: ovmf (UEFI firmware)', { hint: 'run scripts/setup.sh (or: apt-get install ovmf)' });
}

/** Options of {@link qemuArgs}. */
export interface QemuArgsOptions {
  image: string;
  firmware?: Firmware;
  accel: Accelerator;
  memoryMiB?: number;
  cpus?: number;
  /** Boot with `-snapshot` (default true): the image is not modified. */
  snapshot?: boolean;
  /**
   * Where the serial console goes: a file, `stdio` for an interactive terminal (default), or a
   * unix socket qemu listens on (and waits for before starting the guest), logged to `log`.
   */
  serial?: { file: string } | 'stdio' | { socket: string; log: string };
  /** Host directories exported to the guest over virtio-9p (`mount -t 9p -o trans=virtio TAG DIR`). */
  shares?: { tag: string; path: string }[];
  /** A writable copy of the OVMF variables (required for UEFI). */
  ovmfVars?: string;
  /** Extra blank disks: qcow2 files to attach (created by the caller, e.g. for `--add-disk 10G`). */
  extraDisks?: string[];
  /** Network: none (default) or qemu user networking. */
  network?: 'none' | 'user';
  /** Logical sector size the guest sees for the image (default 512; 4096 for metal4k). */
  sectorSize?: 512 | 4096;
}

/**
 * The logical sector size a disk image was written with: 4096 for a raw 4Kn image (metal4k),
 * else 512 (also for images that are not raw, whose GPT is not read here).
 */
export async function imageSectorSize(image: string): Promise<512 | 4096> {
  return readGpt(image).then((t) => t.sectorSize, () => 512 as const);
}

/** The qemu argv booting a disk image with the console on the serial port. */
export function qemuArgs(o: QemuArgsOptions): string[] {
  const fw = o.firmware ?? 'bios';
  const args = [
    'qemu-system-x86_64', '-accel', o.accel, '-m', String(o.memoryMiB ?? 2048), '-smp', String(o.cpus ?? Math.min(availableParallelism(), 4)),
    '-nodefaults', '-display', 'none', '-no-reboot',
  ];
  if (fw === 'uefi') {
    if (!o.ovmfVars) throw new CosaError('COSA_USAGE', 'UEFI boot needs a writable OVMF variables file (ovmfVars)');
    const ovmf = findOvmf();
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${ovmf.code}`, '-drive', `if=pflash,format=raw,unit=1,file=${o.ovmfVars}`);
  }
  const snap = o.snapshot === false ? '' : ',snapshot=on';
  if ((o.sectorSize ?? 512) === 512) args.push('-drive', `file=${o.image},if=virtio${snap}`);
  else {
    if (fw !== 'uefi') throw new CosaError('COSA_USAGE', `${o.image} has ${o.sectorSize}-byte sectors: it boots with UEFI only`, { hint: 'boot it with UEFI (cosa run --uefi)' });
    args.push('-drive', `file=${o.image},if=none,id=disk0${snap}`, '-device', `virtio-blk-pci,drive=disk0,logical_block_size=${o.sectorSize},physical_block_size=${o.sectorSize}`);
  }
  for (const d of o.extraDisks ?? []) args.push('-drive', `file=${d},if=virtio,format=qcow2`);
  if (o.serial === undefined || o.serial === 'stdio') args.push('-serial', 'mon:stdio');
  else if ('socket' in o.serial) {
    args.push('-chardev', `socket,id=con0,path=${o.serial.socket},server=on,wait=on,logfile=${o.serial.log},logappend=on`, '-serial', 'chardev:con0', '-monitor', 'none');
  } else args.push('-serial', `file:${o.serial.file}`, '-monitor', 'none');
  for (const s of o.shares ?? []) args.push('-virtfs', `local,path=${s.path},mount_tag=${s.tag},security_model=none,id=${s.tag}`);
  if (o.network === 'user') args.push('-nic', 'user,model=virtio-net-pci');
  else args.push('-nic', 'none');
  return args;
}

/** Creates a blank qcow2 disk for `cosa run --add-disk SIZE` (SIZE as qemu-img takes it, e.g. `10G`). */
export async function createBlankDisk(path: string, size: string, signal?: AbortSignal): Promise<void> {
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, size], { signal });
}

/** Options of {@link bootCheck}. */
export interface BootCheckOptions {
  image: string;
  /** Default: UEFI for a 4096-byte-sector image, else BIOS. */
  firmware?: Firmware;
  /** Default: read from the image (see {@link imageSectorSize}). */
  sectorSize?: 512 | 4096;
  /** What success looks like on the console (default `/login:/`). */
  pattern?: RegExp;
  /** Give up after this long (default 5 minutes). */
  timeoutMs?: number;
  /** Default: probed (see probeAccelerator; needs cacheDir) or tcg. */
  accel?: Accelerator;
  cacheDir?: string;
  memoryMiB?: number;
  cpus?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** The outcome of a boot check. */
export interface BootCheckResult {
  ok: boolean;
  /** The whole serial console output. */
  consoleLog: string;
  elapsedMs: number;
  /** Why it failed: the pattern did not show up in time, or qemu exited first. */
  reason?: 'timeout' | 'exited';
}

/**
 * Boots `image` with qemu (`-snapshot`, the image is untouched) and watches the serial console
 * for `pattern`. qemu is killed as soon as the pattern shows up, on timeout and on abort. The
 * console goes to a file, so the guest never blocks on output.
 */
export async function bootCheck(options: BootCheckOptions): Promise<BootCheckResult> {
  await requireHostTools(QEMU_TOOLS);
  const pattern = options.pattern ?? /login:/;
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;
  const accel = options.accel ?? (options.cacheDir ? await probeAccelerator({ cacheDir: options.cacheDir, signal: options.signal }) : 'tcg');
  const dir = await makeTempDir('cosa-boot-');
  const log = join(dir, 'console.log');
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const t0 = performance.now();
  let seen = '';
  let matched = false;
  const emit = options.onProgress;
  const toLines = emit ? lineSplitter((line) => emit({ type: 'log', line, phase: 'boot-console' })) : undefined;
  const follower = followFile(log, (text) => {
    seen += text;
    toLines?.(text);
    // Keep the search window small: a console log may grow large.
    if (!matched && pattern.test(seen.slice(-4096 - text.length))) {
      matched = true;
      stop.abort();
    }
  }, 100);
  let reason: BootCheckResult['reason'];
  let consoleLog = '';
  const sectorSize = options.sectorSize ?? (await imageSectorSize(options.image));
  const firmware = options.firmware ?? (sectorSize === 4096 ? 'uefi' : 'bios');
  try {
    let ovmfVars: string | undefined;
    if (firmware === 'uefi') {
      ovmfVars = join(dir, 'OVMF_VARS.fd');
      await copyFile(findOvmf().vars, ovmfVars);
    }
    const argv = qemuArgs({
      image: options.image, firmware, sectorSize, accel, serial: { file: log },
      ...(ovmfVars ? { ovmfVars } : {}),
      ...(options.memoryMiB ? { memoryMiB: options.memoryMiB } : {}),
      ...(options.cpus ? { cpus: options.cpus } : {}),
    });
    try {
      await run(argv, { signal: stop.signal, timeoutMs, onProgress: options.onProgress, phase: 'qemu' });
      reason = 'exited';
    } catch (e) {
      if (options.signal?.aborted) throw e;
      if (isCosaError(e, 'COSA_EXEC_ABORTED')) {
        if (!matched) throw e;
      } else if (isCosaError(e, 'COSA_EXEC_TIMEOUT')) {
        reason = 'timeout';
      } else throw e;
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await follower.stop();
    stop.abort();
    consoleLog = await readFile(log, 'utf8').catch(() => seen);
    // Also on abort and on a failed qemu: nothing of the boot stays in the temp dir.
    await rm(dir, { recursive: true, force: true });
  }
  const ok = matched || pattern.test(consoleLog);
  return { ok, consoleLog, elapsedMs: Math.round(performance.now() - t0), ...(ok ? {} : { reason: reason ?? 'exited' }) };
}
