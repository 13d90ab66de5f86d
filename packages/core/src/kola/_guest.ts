/**
 * A booted guest kola talks to: qemu with the serial console on a unix socket (logged to a file),
 * a virtio-9p share for scripts and their output, root logged in on the console. Commands are
 * short lines typed on the console; what they print goes to files on the share, so kernel or
 * systemd messages on the console never mix with a test's output.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '@cosa/ostree/internal';
import { findOvmf, qemuArgs, type Accelerator, type Firmware } from '@cosa/image';
import { CosaError, type OnProgress } from '@cosa/schema';

/** Where the share is mounted inside the guest. */
export const GUEST_SHARE = '/run/kola';

/** Options of {@link Guest.boot}. */
export interface GuestOptions {
  /** Disk to boot; with `writable` it is modified (a per-run overlay), else booted with `-snapshot`. */
  image: string;
  writable?: boolean;
  firmware: Firmware;
  sectorSize: 512 | 4096;
  accel: Accelerator;
  /** Host directory for sockets, the share and the console log (created). */
  dir: string;
  /** qemu user networking (the host is 10.0.2.2 inside the guest). */
  network?: boolean;
  memoryMiB?: number;
  cpus?: number;
  /** Deadline for boot + login (default 10 minutes: TCG on a loaded machine). */
  bootTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What a command run in the guest left behind. */
export interface GuestExecResult {
  exitCode: number;
  /** stdout and stderr, interleaved as written. */
  output: string;
  durationMs: number;
}

/** Text typed on the console: CR ends a line as a terminal's Enter key does. */
const ENTER = '\r';

/** A running guest. Create with {@link Guest.boot}; always `stop()` it (in `finally`). */
export class Guest {
  readonly consoleLog: string;
  readonly share: string;
  private readonly o: GuestOptions;
  private readonly nonce = randomBytes(4).toString('hex');
  private seq = 0;
  private text = '';
  private cursor = 0;
  private socket: Socket | undefined;
  private qemu: Promise<unknown> | undefined;
  private qemuExited = false;
  private stopper = new AbortController();
  private wake: (() => void) | undefined;

  private constructor(o: GuestOptions) {
    this.o = o;
    this.consoleLog = join(o.dir, 'console.txt');
    this.share = join(o.dir, 'share');
  }

  /** Boots the image and logs in as root on the serial console; throws COSA_BOOT_TIMEOUT or COSA_VM_FAILED. */
  static async boot(o: GuestOptions): Promise<Guest> {
    const g = new Guest(o);
    await mkdir(join(g.share, 'cmd'), { recursive: true });
    await mkdir(join(g.share, 'out'), { recursive: true });
    try {
      await g.start();
    } catch (e) {
      await g.stop();
      throw e;
    }
    return g;
  }

  private async start(): Promise<void> {
    const o = this.o;
    this.stopper = new AbortController();
    this.qemuExited = false;
    const sock = join(o.dir, 'console.sock');
    let ovmfVars: string | undefined;
    if (o.firmware === 'uefi') {
      ovmfVars = join(o.dir, 'OVMF_VARS.fd');
      if (!existsSync(ovmfVars)) await copyFile(findOvmf().vars, ovmfVars);
    }
    const argv = qemuArgs({
      image: o.image, firmware: o.firmware, sectorSize: o.sectorSize, accel: o.accel, snapshot: !o.writable,
      serial: { socket: sock, log: this.consoleLog }, shares: [{ tag: 'kola', path: this.share }],
      network: o.network ? 'user' : 'none',
      ...(ovmfVars ? { ovmfVars } : {}),
      ...(o.memoryMiB ? { memoryMiB: o.memoryMiB } : {}),
      ...(o.cpus ? { cpus: o.cpus } : {}),
    });
    const onAbort = () => this.stopper.abort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    this.qemu = run(argv, { signal: this.stopper.signal, onProgress: o.onProgress, phase: 'qemu', streamLines: false })
      .catch((e: unknown) => e)
      .finally(() => {
        this.qemuExited = true;
        o.signal?.removeEventListener('abort', onAbort);
        this.wake?.();
      });
    this.socket = await this.connect(sock);
    await this.login(o.bootTimeoutMs ?? 10 * 60_000);
  }

  private async connect(path: string): Promise<Socket> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.qemuExited) throw new CosaError('COSA_VM_FAILED', `qemu exited before its console socket opened (${await this.qemuError()})`);
      if (existsSync(path)) {
        const s = await new Promise<Socket | undefined>((resolve) => {
          const c = createConnection(path);
          c.once('connect', () => resolve(c));
          c.once('error', () => resolve(undefined));
        });
        if (s) {
          s.on('data', (b: Buffer) => {
            this.text += b.toString('utf8');
            this.wake?.();
          });
          s.on('error', () => {});
          return s;
        }
      }
      if (Date.now() > deadline) throw new CosaError('COSA_VM_FAILED', `qemu's console socket ${path} did not open within 60 s`);
      await sleep(100);
    }
  }

  private async qemuError(): Promise<string> {
    const e = await this.qemu;
    return e instanceof Error ? e.message.split('\n')[0]! : 'no error';
  }

  /**
   * Waits until `re` matches the console text after the cursor; moves the cursor past the match.
   * Rejects on timeout, when qemu exits, and when `fail` matches first.
   */
  private async waitFor(re: RegExp, timeoutMs: number, what: string, fail?: RegExp, poke?: () => void): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    let lastPoke = Date.now();
    for (;;) {
      const rest = this.text.slice(this.cursor);
      const m = re.exec(rest);
      if (m) {
        this.cursor += m.index + m[0].length;
        return m;
      }
      const f = fail?.exec(rest);
      if (f) throw new CosaError('COSA_VM_FAILED', `${what}: the console showed "${f[0]}"`, { hint: kolaLoginHint });
      if (this.qemuExited) throw new CosaError('COSA_VM_FAILED', `${what}: qemu exited (${await this.qemuError()})`);
      this.o.signal?.throwIfAborted();
      if (Date.now() > deadline) throw new CosaError('COSA_BOOT_TIMEOUT', `${what}: nothing after ${Math.round(timeoutMs / 1000)} s (console: ${this.consoleLog})`);
      if (poke && Date.now() - lastPoke > 5000) {
        lastPoke = Date.now();
        poke();
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private type(line: string): void {
    this.socket?.write(line + ENTER);
  }

  private async login(timeoutMs: number): Promise<void> {
    const t0 = Date.now();
    await this.waitFor(/login: *$/m, timeoutMs, 'waiting for the login prompt on the serial console');
    this.type('root');
    // A shell reads what was typed while it started: repeat the marker until it comes back.
    const ready = `KOLA''READY-${this.nonce}`;
    this.type(`echo ${ready}`);
    await this.waitFor(new RegExp(`KOLAREADY-${this.nonce}`), Math.max(60_000, timeoutMs - (Date.now() - t0)), 'logging in as root on the serial console',
      /Password: *$|Login incorrect/m, () => this.type(`echo ${ready}`));
    // No echo (the typed lines stay out of the log), no kernel messages on the console, the share mounted.
    const setup = `stty -echo; dmesg -n 1; mkdir -p ${GUEST_SHARE} && { mountpoint -q ${GUEST_SHARE} || mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 kola ${GUEST_SHARE}; }`;
    const rc = await this.typeAndWait(setup, 120_000);
    if (rc !== 0) throw new CosaError('COSA_VM_FAILED', `cannot mount the kola share in the guest (9p over virtio, exit ${rc})`, { hint: 'the kernel needs the 9p and 9pnet_virtio modules' });
  }

  private async typeAndWait(line: string, timeoutMs: number): Promise<number> {
    const n = ++this.seq;
    this.type(`${line}; echo "KOLA""DONE-${this.nonce}-${n}-$?"`);
    const m = await this.waitFor(new RegExp(`KOLADONE-${this.nonce}-${n}-(\\d+)`), timeoutMs, `waiting for a command in the guest`);
    return Number(m[1]);
  }

  /**
   * Runs `script` (sh) as root in the guest with `env`, killed after `timeoutMs` (exit 124).
   * Output goes to a file on the share and is returned.
   */
  async exec(script: string, o: { timeoutMs: number; env?: Record<string, string>; cwd?: string }): Promise<GuestExecResult> {
    const n = this.seq + 1;
    const cmd = join(this.share, 'cmd', `${n}.sh`);
    const envLines = Object.entries(o.env ?? {}).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
    await writeFile(cmd, ['#!/bin/sh', ...envLines, ...(o.cwd ? [`cd ${shellQuote(o.cwd)} || exit 1`] : []), script, ''].join('\n'), { mode: 0o755 });
    const secs = Math.max(1, Math.ceil(o.timeoutMs / 1000));
    const t0 = performance.now();
    const exitCode = await this.typeAndWait(`timeout -k 10 ${secs} sh ${GUEST_SHARE}/cmd/${n}.sh </dev/null >${GUEST_SHARE}/out/${n}.log 2>&1`, o.timeoutMs + 60_000);
    const output = await readFile(join(this.share, 'out', `${n}.log`), 'utf8').catch(() => '');
    return { exitCode, output, durationMs: Math.round(performance.now() - t0) };
  }

  /** Reboots the guest (qemu runs with -no-reboot, so it exits and is started again) and logs in. */
  async reboot(): Promise<void> {
    this.type('systemctl reboot');
    const deadline = Date.now() + 5 * 60_000;
    while (!this.qemuExited) {
      if (Date.now() > deadline) throw new CosaError('COSA_VM_TIMEOUT', 'the guest did not power off within 5 minutes of `systemctl reboot`');
      await sleep(250);
    }
    this.socket?.destroy();
    this.text = '';
    this.cursor = 0;
    await this.start().then(undefined, async (e: unknown) => {
      await this.stop();
      throw e;
    });
  }

  /** Stops qemu (if running) and closes the console. */
  async stop(): Promise<void> {
    this.socket?.destroy();
    this.stopper.abort();
    await this.qemu;
  }
}

const kolaLoginHint =
  'kola logs in as root on the serial console without a password (the bundled example sets `unattended-login: true`)';

/** Quotes a string for sh. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
