/**
 * Executors: where the privileged disk work runs. Both run the same shell script with the same
 * variables (COSA_DISK, COSA_PART_PREFIX, COSA_WORK, COSA_MNT, COSA_IN_<NAME>, COSA_BLK_<NAME> and
 * the caller's env), so the two cannot drift apart:
 * - direct: on the host, the disk attached as a loop device (root with working loop devices);
 * - vm: inside the supermin appliance under qemu, the disk as /dev/vdb, directories over 9p,
 *   block inputs as read-only virtio disks.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { run } from '@cosa/ostree/internal';
import { CommandFailedError, CosaError, isCosaError, type OnProgress } from '@cosa/schema';
import { makeTempDir } from '@cosa/schema/internal';
import { followFile, lineSplitter, tail } from './_console.js';
import { DIRECT_TOOLS, requireHostTools, VM_TOOLS } from './_host-packages.js';
import { probeAccelerator, type Accelerator } from './accel.js';
import { prepareAppliance } from './appliance.js';
import { assetPath } from './_assets.js';

/** What an executor runs. */
export interface ExecutorRunOptions {
  /** The shell script (a host path); run with bash. */
  script: string;
  /** Variables for the script (names must be shell identifiers; values are passed verbatim). */
  env?: Record<string, string>;
  /** A read-write host directory, the script's `$COSA_WORK` (and its cwd). */
  workDir: string;
  /** Read-only host directories, seen by the script as `$COSA_IN_<NAME>` (name upper-cased). */
  inputs?: Record<string, string>;
  /**
   * Read-only files the script reads whole (a tar), seen as `$COSA_BLK_<NAME>`: the file itself on
   * the host, a read-only virtio disk in the VM (/dev/vdc, ... after the target disk).
   */
  blockInputs?: Record<string, string>;
  /** A raw disk image file; the script sees it as the block device `$COSA_DISK`. */
  disk?: string;
  /** The disk's logical (and physical) sector size, as the script's kernel sees it (default 512). */
  diskSectorSize?: 512 | 4096;
  /** Scratch space of this run (console log, mount point); the caller removes it. */
  tmpDir: string;
  /** Kill the run after this long (default 30 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** Runs a script with a disk and directories, on the host or in a VM. */
export interface Executor {
  readonly kind: 'direct' | 'vm';
  /**
   * Runs the script; resolves when it exited 0. A failing script throws a CommandFailedError
   * with code COSA_IMAGE_FAILED carrying its stderr (and, in the VM, the console tail).
   */
  run(options: ExecutorRunOptions): Promise<void>;
}

const DEFAULT_TIMEOUT = 30 * 60_000;

function inputEnv(inputs: Record<string, string> | undefined, map: (name: string, path: string, index: number) => string, prefix = 'COSA_IN_'): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [i, [name, path]] of Object.entries(inputs ?? {}).entries()) {
    if (!/^[a-z][a-z0-9_]*$/i.test(name)) throw new CosaError('COSA_INTERNAL', `bad executor input name: ${name}`);
    env[`${prefix}${name.toUpperCase()}`] = map(name, path, i);
  }
  return env;
}

function scriptFailed(script: string, exitCode: number | undefined, stderr: string, consoleTail?: string, cause?: unknown): CommandFailedError {
  const err = tail(stderr, 30);
  const msg =
    `the disk script failed${exitCode === undefined ? '' : ` with exit code ${exitCode}`}` +
    (err ? `\n--- stderr (tail) ---\n${err}` : '') +
    (consoleTail ? `\n--- console (tail) ---\n${consoleTail}` : '');
  return new CommandFailedError(['bash', script], exitCode, stderr, { code: 'COSA_IMAGE_FAILED', message: msg, cause });
}

// ---------------------------------------------------------------- direct

/** Why the direct executor cannot run here, or undefined when it can. */
export async function directUnavailable(): Promise<CosaError | undefined> {
  if (process.getuid?.() !== 0) {
    return new CosaError('COSA_IMAGE_NOT_ROOT', 'the direct executor needs root (it attaches loop devices and mounts)', {
      hint: 'run as root, or use the VM executor (--vm)',
    });
  }
  if (!existsSync('/dev/loop-control')) {
    return new CosaError('COSA_IMAGE_NO_LOOP', 'no loop devices on this host (/dev/loop-control is missing)', { hint: 'use the VM executor (--vm)' });
  }
  const dir = await makeTempDir('cosa-loop-probe-');
  try {
    const f = join(dir, 'probe.img');
    await writeFile(f, Buffer.alloc(1024 * 1024));
    const loop = (await run(['losetup', '--find', '--show', f])).stdout.trim();
    await run(['losetup', '-d', loop]);
    return undefined;
  } catch (e) {
    return new CosaError('COSA_IMAGE_NO_LOOP', 'loop devices do not work on this host', { hint: 'use the VM executor (--vm)', cause: e });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mounts', 'utf8');
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text
    .split('\n')
    .map((l) => unescape(l.split(' ')[1] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/**
 * Detaches loop devices whose backing file lies under `root` and has been deleted: those a
 * killed direct writer left attached (its disk file was removed with its tmp dir, the loop
 * kept the space). Live loops of running builds have their file in place and are left alone.
 * Returns the devices detached.
 */
export async function detachStaleLoops(root: string): Promise<string[]> {
  const r = await run(['losetup', '--list', '--json', '--output', 'NAME,BACK-FILE']).catch(() => undefined);
  if (!r?.stdout.trim()) return [];
  const list = (JSON.parse(r.stdout) as { loopdevices?: Array<{ name?: string; 'back-file'?: string | null }> }).loopdevices ?? [];
  const detached: string[] = [];
  for (const d of list) {
    const back = d['back-file'] ?? '';
    if (!d.name || !back.endsWith(' (deleted)')) continue;
    const file = back.slice(0, -' (deleted)'.length);
    if (file !== root && !file.startsWith(`${root}/`)) continue;
    await run(['losetup', '-d', d.name]).then(() => detached.push(d.name!), () => {});
  }
  return detached;
}

/** Loop devices attached to `file` (`losetup --associated`). */
async function loopsOf(file: string): Promise<string[]> {
  const r = await run(['losetup', '--noheadings', '--output', 'NAME', '--associated', file]).catch(() => undefined);
  return (r?.stdout ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
}

/**
 * Waits for the auto-clearing loop device(s) of `file` to go once their last holder (the script's
 * namespace) is gone; the kernel clears them asynchronously. Detaches any still there after 30 s.
 */
async function awaitLoopsCleared(file: string, onProgress?: OnProgress): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await loopsOf(file)).length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const d of await loopsOf(file)) {
    onProgress?.({ type: 'warning', message: `loop device ${d} of ${file} did not clear itself; detaching it` });
    await run(['losetup', '-d', d]).catch(() => {});
  }
}

/**
 * The command line running `script` confined: `setpriv --pdeathsig KILL` ties it to this process
 * (a SIGKILLed cosa takes it along), `unshare --mount --propagation private --pid --fork
 * --kill-child` gives it a private mount namespace (its mounts are never seen on the host and
 * vanish with it) and a PID namespace (every process it started dies with it). With a disk,
 * assets/loop-exec.pl attaches it as an auto-clearing loop device held open by the script only,
 * so the device detaches itself whichever way the script ends.
 */
function directCommand(script: string, disk?: string, sectorSize: 512 | 4096 = 512): string[] {
  const loop = disk ? ['perl', assetPath('loop-exec.pl'), disk, String(sectorSize)] : [];
  return [
    'setpriv', '--pdeathsig', 'KILL', '--',
    'unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--',
    ...loop, 'bash', script,
  ];
}

/**
 * The direct executor: runs the script on the host with the disk attached as a loop device.
 * Needs root and working loop devices. The script runs in private mount and PID namespaces
 * tied to this process, the loop device clears itself (see {@link directCommand}): a cosa killed
 * by SIGKILL leaves no process, mount or loop device behind. Loops left by older versions are
 * detached at the next start.
 */
export function directExecutor(): Executor {
  return {
    kind: 'direct',
    async run(o) {
      await requireHostTools(DIRECT_TOOLS);
      const why = await directUnavailable();
      if (why) throw why;
      // A writer killed by SIGKILL never reached its finally: free what it left under our tmp/.
      const stale = await detachStaleLoops(dirname(o.tmpDir));
      if (stale.length > 0) o.onProgress?.({ type: 'warning', message: `detached loop devices left by a killed run: ${stale.join(', ')}` });
      const mnt = join(o.tmpDir, 'mnt');
      await mkdir(mnt, { recursive: true });
      const env = {
        ...o.env,
        ...inputEnv(o.inputs, (_n, p) => p),
        ...inputEnv(o.blockInputs, (_n, p) => p, 'COSA_BLK_'),
        COSA_WORK: o.workDir,
        COSA_MNT: mnt,
        COSA_DISK: '', // set by loop-exec.pl when there is a disk
        COSA_PART_PREFIX: 'p',
      };
      try {
        await run(directCommand(o.script, o.disk, o.diskSectorSize ?? 512), {
          env, cwd: o.workDir, signal: o.signal, timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT, onProgress: o.onProgress, phase: 'disk-script',
        });
      } catch (e) {
        if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') throw scriptFailed(o.script, e.exitCode, e.stderr, undefined, e);
        throw e;
      } finally {
        // Nothing of the namespace shows here; this only guards against a script that escaped it.
        for (const m of (await mountsUnder(mnt)).reverse()) {
          await run(['umount', m]).catch(() => run(['umount', '-l', m]).catch(() => {}));
        }
        if (o.disk) await awaitLoopsCleared(o.disk, o.onProgress);
      }
    },
  };
}

// ---------------------------------------------------------------- vm

/** Options of {@link vmExecutor}. */
export interface VmExecutorOptions {
  /** Where the appliance and the accelerator answer are cached. */
  cacheDir: string;
  /** Guest memory in MiB (default `COSA_SUPERMIN_MEMORY` or 2048). */
  memoryMiB?: number;
  /**
   * Guest CPUs (default `COSA_SUPERMIN_CPUS`, else 1 under TCG, the host's up to 4 under KVM).
   * Under TCG a second vCPU made the disk script slower and costlier, not faster: the guest's
   * cross-CPU work (IPIs, TLB shootdowns, lock hand-offs) waits for another emulating host thread
   * (docs/benchmarks.md, "VM writer: /boot on the host").
   */
  cpus?: number;
  /** Accelerator (default: probed once, see {@link probeAccelerator}). */
  accel?: Accelerator;
}

/**
 * qemu arguments attaching the appliance root (/dev/vda, copy-on-write) and the target disk
 * (/dev/vdb, 4Kn when asked). Both are explicit virtio-blk-pci devices in this order: with
 * `-drive if=virtio` qemu creates its device after the explicit ones, so a 4Kn target (which
 * needs `-device` for its block sizes) would become /dev/vda.
 */
export function vmDiskArgs(root: string, disk: string | undefined, sectorSize: 512 | 4096 = 512, readOnly: string[] = []): string[] {
  const args = ['-drive', `file=${root},format=raw,if=none,id=approot,snapshot=on`, '-device', 'virtio-blk-pci,drive=approot'];
  if (disk) {
    const blocks = sectorSize === 512 ? '' : `,logical_block_size=${sectorSize},physical_block_size=${sectorSize}`;
    args.push('-drive', `file=${disk},format=raw,if=none,id=target,cache=unsafe,discard=unmap`, '-device', `virtio-blk-pci,drive=target${blocks}`);
  }
  readOnly.forEach((file, i) => args.push('-drive', `file=${file},format=raw,if=none,id=ro${i},readonly=on`, '-device', `virtio-blk-pci,drive=ro${i}`));
  return args;
}

/** The guest's name of the `index`-th read-only disk of {@link vmDiskArgs} (after the root and the target). */
export function vmReadOnlyDevice(index: number, hasDisk: boolean): string {
  return `/dev/vd${String.fromCharCode('a'.charCodeAt(0) + 1 + (hasDisk ? 1 : 0) + index)}`;
}

/**
 * The appliance's kernel command line. mitigations=off: the guest runs only our script, and
 * under TCG every mitigation (page-table isolation, flushes on entry) is emulated work.
 * no_timer_check: on a loaded host the emulated timer can miss the kernel's IO-APIC timer check,
 * which then panics ("IO-APIC + timer doesn't work!", seen here at load 20).
 */
export const APPLIANCE_KARGS = 'console=ttyS0 root=/dev/vda panic=-1 quiet mitigations=off no_timer_check';

/**
 * The guest CPU model. Under TCG `max` exposes what qemu emulates beyond qemu64, notably SSE4.2's
 * crc32 instruction: xfs and ext4 checksum every metadata block with crc32c, which the default
 * model leaves to the kernel's table-driven code (mkfs.xfs of the root: 4 s -> 0.4 s here).
 * Under KVM, `host`.
 */
export function vmCpuArgs(accel: Accelerator): string[] {
  return ['-cpu', accel === 'kvm' ? 'host' : 'max'];
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The VM executor: runs the script inside the cached supermin appliance under qemu (no root
 * needed). The work directory and inputs are 9p shares, the disk is the second virtio disk
 * (/dev/vdb), the appliance root is booted with `snapshot=on`. The exit status comes back in an
 * `rc` file; the serial console is logged to `<tmpDir>/runvm-console.txt` and its tail goes into
 * the error on failure. qemu is always killed on timeout and abort.
 */
export function vmExecutor(options: VmExecutorOptions): Executor {
  return {
    kind: 'vm',
    async run(o) {
      await requireHostTools(VM_TOOLS, { kernel: true });
      const app = await prepareAppliance({ cacheDir: options.cacheDir, signal: o.signal, onProgress: o.onProgress });
      const accel = options.accel ?? (await probeAccelerator({ cacheDir: options.cacheDir, signal: o.signal, onProgress: o.onProgress }));
      const memory = options.memoryMiB ?? (Number(process.env.COSA_SUPERMIN_MEMORY) || 2048);
      const cpus = options.cpus ?? (Number(process.env.COSA_SUPERMIN_CPUS) || (accel === 'tcg' ? 1 : Math.min(availableParallelism(), 4)));
      const env: Record<string, string> = {
        ...o.env,
        ...inputEnv(o.inputs, (n) => `/cosa/in/${n}`),
        ...inputEnv(o.blockInputs, (_n, _p, i) => vmReadOnlyDevice(i, o.disk !== undefined), 'COSA_BLK_'),
        COSA_WORK: '/cosa/work',
        // The work dir is 9p: images the script makes and copies (the ext4 /boot) go to the guest's tmpfs.
        COSA_SCRATCH: '/tmp',
        COSA_MNT: '/tmp/cosa-mnt',
        COSA_DISK: o.disk ? '/dev/vdb' : '',
        COSA_PART_PREFIX: '',
      };
      for (const k of Object.keys(env)) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new CosaError('COSA_INTERNAL', `bad variable name: ${k}`);
      const files = ['.cosa-rc', '.cosa-out', '.cosa-err'].map((f) => join(o.workDir, f));
      for (const f of files) await rm(f, { force: true });
      await copyFile(o.script, join(o.workDir, '.cosa-cmd.sh'));
      await writeFile(join(o.workDir, '.cosa-env'), Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}\n`).join(''));
      const consoleLog = join(o.tmpDir, 'runvm-console.txt');
      await rm(consoleLog, { force: true });
      const names = Object.keys(o.inputs ?? {});
      const argv = [
        'qemu-system-x86_64', '-accel', accel, '-m', String(memory), '-smp', String(cpus), ...vmCpuArgs(accel),
        '-nodefaults', '-display', 'none', '-monitor', 'none', '-no-reboot',
        '-kernel', app.vmlinux ?? app.kernel, '-initrd', app.initrd,
        '-append', `${APPLIANCE_KARGS}${names.length ? ` cosa.in=${names.join(',')}` : ''}`,
        '-serial', `file:${consoleLog}`,
        ...vmDiskArgs(app.root, o.disk, o.diskSectorSize ?? 512, Object.values(o.blockInputs ?? {})),
        '-virtfs', `local,path=${o.workDir},mount_tag=work,security_model=none,id=work`,
        ...Object.entries(o.inputs ?? {}).flatMap(([n, p]) => ['-virtfs', `local,path=${p},mount_tag=in_${n},security_model=none,id=in_${n},readonly=on`]),
      ];
      const emit = o.onProgress;
      const follower = emit ? followFile(consoleLog, lineSplitter((line) => emit({ type: 'log', line, phase: 'vm-console' }))) : undefined;
      let qemuError: unknown;
      try {
        await run(argv, { signal: o.signal, timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT, onProgress: o.onProgress, phase: 'qemu' });
      } catch (e) {
        qemuError = e;
      } finally {
        await follower?.stop();
      }
      const consoleTail = tail(await readFile(consoleLog, 'utf8').catch(() => ''), 40);
      if (qemuError) {
        if (isCosaError(qemuError, 'COSA_EXEC_ABORTED')) throw qemuError;
        if (isCosaError(qemuError, 'COSA_EXEC_TIMEOUT')) {
          throw new CosaError('COSA_VM_TIMEOUT', `the VM did not finish within ${Math.round((o.timeoutMs ?? DEFAULT_TIMEOUT) / 1000)} s\n--- console (tail) ---\n${consoleTail}`, { cause: qemuError });
        }
        throw new CosaError('COSA_VM_FAILED', `qemu failed: ${(qemuError as Error).message}\n--- console (tail) ---\n${consoleTail}`, { cause: qemuError });
      }
      const rcText = await readFile(join(o.workDir, '.cosa-rc'), 'utf8').catch(() => undefined);
      if (rcText === undefined) {
        throw new CosaError('COSA_VM_FAILED', `no rc file: the appliance did not run the script (failure inside its init?)\n--- console (tail) ---\n${consoleTail}`, {
          hint: `the whole console log is ${consoleLog}`,
        });
      }
      const rc = Number(rcText.trim());
      if (rc !== 0) {
        const stderr = await readFile(join(o.workDir, '.cosa-err'), 'utf8').catch(() => '');
        throw scriptFailed(o.script, rc, stderr, consoleTail);
      }
    },
  };
}

// ---------------------------------------------------------------- selection

/** Which executor to use: `auto` picks direct when it can run here, else the VM. */
export type ExecutorChoice = 'auto' | 'vm' | 'direct';

/** Options of {@link selectExecutor}. */
export interface SelectExecutorOptions extends VmExecutorOptions {
  choice?: ExecutorChoice;
}

/**
 * Returns an executor: `direct` (throws COSA_IMAGE_NOT_ROOT / COSA_IMAGE_NO_LOOP when it cannot
 * run here), `vm`, or `auto` = direct when root with working loop devices, else the VM.
 */
export async function selectExecutor(options: SelectExecutorOptions): Promise<Executor> {
  const choice = options.choice ?? 'auto';
  if (choice === 'vm') return vmExecutor(options);
  const why = await directUnavailable();
  if (choice === 'direct') {
    if (why) throw why;
    return directExecutor();
  }
  return why ? vmExecutor(options) : directExecutor();
}
