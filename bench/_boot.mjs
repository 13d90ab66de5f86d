// Shared by bench/boot.mjs and bench/peers.mjs: boot a disk image under qemu (cosa's own qemu
// command line, `-snapshot`: the image is never changed), drain the serial console from a unix
// socket with a host timestamp on every chunk, stop the clock at the first `login:`, then log in
// as root and read where the time went from inside the guest:
//   - /proc/uptime at a known host instant -> the host instant the kernel started
//     (before it: firmware + bootloader, measured on the host clock);
//   - dmesg: the kernel's own clock at `Run /init` (kernel + initramfs unpack) and when systemd
//     started as PID 1 after switch_root (the initramfs's part);
//   - the rest, to the login prompt, is systemd/userspace; `systemd-analyze time`, `blame` and
//     `critical-chain` are kept for the report.
// Helpers also: wait for the load to settle, format a table.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findOvmf, qemuArgs } from '@cosa/image';
import { makeTempDir } from '@cosa/schema/internal';

/** The 1-minute load average, as a string with two decimals. */
export const load1 = () => loadavg()[0].toFixed(2);

/**
 * Waits until the 1-minute load is below `below` (default 1), at most `maxS` seconds; prints the
 * load it started at and the one it ended at. Returns the load at the end.
 */
export async function settle(what, { below = 1, maxS = 600 } = {}) {
  const start = loadavg()[0];
  const t0 = Date.now();
  while (loadavg()[0] >= below && Date.now() - t0 < maxS * 1000) await sleep(5000);
  const end = loadavg()[0];
  const waited = Math.round((Date.now() - t0) / 1000);
  console.error(`# ${what}: load ${start.toFixed(2)} at start, ${end.toFixed(2)} after ${waited} s${end >= below ? ` (deadline ${maxS} s reached: measured under load)` : ''}`);
  return end;
}

/** Median of numbers (NaN for none). */
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

/** Prints a markdown table (header row + rows of cells). */
export function table(header, rows) {
  console.log(`| ${header.join(' | ')} |`);
  console.log(`| ${header.map((h, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

/** CPU time (user+sys, s) the process has used so far: under TCG, the guest's work, less sensitive to load than wall time. */
export function qemuCpuS(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

const strip = (s) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');

/**
 * Boots `image` once. Returns { ok, loginS, cpuS, split: { firmware, kernel, initrd, userspace },
 * marks: { grub, grubBoot, kernel, init, systemd, login: [host s, qemu CPU s] } (see MARKS),
 * analyze (text from the guest), console (text) }. `password` answers a `Password:` prompt
 * (`qemuExtra`: arguments appended to cosa's qemu line; `extra`: a shell command run after logging in)
 * (the debos image has root:root; cosa's example has none). Never throws for a failed boot.
 */
export async function bootOnce({ image, firmware = 'bios', accel = 'tcg', timeoutS = 300, password = 'root', analyze = true, keepLog, extra, qemuExtra = [] }) {
  // cosa's own temp-dir naming (<prefix><pid>-…): what a killed bench leaves here (the console log
  // and the serial socket) is swept by the next cosa process, this bench's included.
  const dir = await makeTempDir('cosa-boot-');
  const sock = join(dir, 'serial.sock');
  let ovmfVars;
  if (firmware === 'uefi') {
    ovmfVars = join(dir, 'OVMF_VARS.fd');
    copyFileSync(findOvmf().vars, ovmfVars);
  }
  const argv = [...qemuArgs({ image, firmware, accel, serial: { socket: sock, log: join(dir, 'console.log') }, ...(ovmfVars ? { ovmfVars } : {}) }), ...qemuExtra];
  const t0 = performance.now();
  const now = () => (performance.now() - t0) / 1000;
  const qemu = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let qemuErr = '';
  let exited = false;
  qemu.stderr.on('data', (b) => (qemuErr += b));
  qemu.on('exit', () => (exited = true));
  let text = '';
  /** [offset in text, host seconds since qemu started, qemu CPU seconds] of every console chunk. */
  const stamps = [];
  let cursor = 0;
  let socket;
  const deadline = Date.now() + timeoutS * 1000;
  const result = { ok: false, loginS: NaN, cpuS: NaN, split: {}, analyze: '', console: '' };
  try {
    while (!socket) {
      if (exited) throw new Error(`qemu exited: ${qemuErr.trim()}`);
      if (Date.now() > deadline) throw new Error('console socket never opened');
      if (existsSync(sock)) {
        socket = await new Promise((resolve) => {
          const c = createConnection(sock);
          c.once('connect', () => resolve(c));
          c.once('error', () => resolve(undefined));
        });
      }
      if (!socket) await sleep(20);
    }
    let wake;
    socket.on('data', (b) => {
      stamps.push([text.length, now(), qemuCpuS(qemu.pid)]);
      text += b.toString('utf8');
      wake?.();
    });
    socket.on('error', () => {});
    const waitFor = async (re, until = deadline, poke) => {
      let lastPoke = Date.now();
      for (;;) {
        const m = re.exec(text.slice(cursor));
        if (m) {
          cursor += m.index + m[0].length;
          return m;
        }
        if (exited || Date.now() > until) return undefined;
        if (poke && Date.now() - lastPoke > 3000) {
          lastPoke = Date.now();
          poke();
        }
        await new Promise((resolve) => {
          const t = setTimeout(resolve, 200);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    };
    const type = (line) => socket.write(`${line}\r`);
    if (!(await waitFor(/login: *$/m))) throw new Error(exited ? `qemu exited: ${qemuErr.trim()}` : `no login prompt within ${timeoutS} s`);
    result.loginS = now();
    result.cpuS = qemuCpuS(qemu.pid);
    result.ok = true;
    if (!analyze) return result;
    type('root');
    const pw = await waitFor(/Password: *$|[#$] *$/m, Date.now() + 60_000);
    if (pw && /Password/.test(pw[0])) type(password);
    // A shell reads what was typed while it started: repeat the marker until it comes back.
    const ready = () => type("echo BENCH''READY");
    ready();
    if (!(await waitFor(/BENCHREADY/, Date.now() + 120_000, ready))) throw new Error('could not log in as root');
    type("stty -echo; dmesg -n 1; echo BENCH''UP $(cut -d' ' -f1 /proc/uptime) BENCH''END");
    const up = await waitFor(/BENCHUP ([\d.]+) BENCHEND/, Date.now() + 60_000);
    if (up) {
      const kernelAt = now() - Number(up[1]);
      result.split.firmware = kernelAt;
      // Everything in one line, in one output block between markers.
      type(
        "{ echo BENCH''BEGIN; dmesg | grep -m1 -E 'Run /init|Run .* as init process'; dmesg | grep -m1 -E 'systemd\\[1\\]: systemd [0-9]+'; " +
          "systemd-analyze time; systemd-analyze blame --no-pager | head -n 15; systemd-analyze critical-chain --no-pager; echo BENCH''FINISH; } 2>&1 | cat",
      );
      const m = await waitFor(/BENCHBEGIN([\s\S]*?)BENCHFINISH/, Date.now() + 180_000);
      if (m) {
        const out = strip(m[1]);
        result.analyze = out.trim();
        const init = /\[\s*([\d.]+)\][^\n]*Run \/init/.exec(out) ?? /\[\s*([\d.]+)\][^\n]*as init process/.exec(out);
        const sd = /\[\s*([\d.]+)\][^\n]*systemd\[1\]: systemd \d+/.exec(out);
        const loginFromKernel = result.loginS - kernelAt;
        if (init) result.split.kernel = Number(init[1]);
        if (init && sd) result.split.initrd = Number(sd[1]) - Number(init[1]);
        if (sd) result.split.userspace = loginFromKernel - Number(sd[1]);
      }
      if (extra) {
        type(`{ echo BENCH''XBEGIN; ${extra}; echo BENCH''XFINISH; } 2>&1 | cat`);
        const x = await waitFor(/BENCHXBEGIN([\s\S]*?)BENCHXFINISH/, Date.now() + 180_000);
        result.extra = x ? strip(x[1]).trim() : '';
      }
    }
  } catch (e) {
    result.error = e.message;
  } finally {
    socket?.destroy();
    if (!exited) qemu.kill('SIGKILL');
    await new Promise((resolve) => (exited ? resolve() : qemu.once('exit', resolve)));
    result.console = strip(text);
    result.marks = consoleMarks(text, stamps);
    if (keepLog) copyFileSync(join(dir, 'console.log'), keepLog);
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

/** Console lines whose host time tells where the boot went before the kernel's clock starts. */
const MARKS = {
  firmware: /SeaBIOS|BdsDxe|UEFI Interactive Shell|Booting from Hard Disk/,
  grub: /Welcome to GRUB|GNU GRUB/,
  grubBoot: /Booting `|Loading Linux/,
  kernel: /Linux version/,
  init: /Run \/init|as init process/,
  systemd: /systemd\[1\]: systemd \d+|Welcome to (?!GRUB).*!/,
  // The first prompt (the name typed after it lands on the same line).
  login: / login: /,
};

/**
 * Host time and qemu CPU time (s since qemu started) when the console chunk holding the first
 * match of each of MARKS arrived: { name: [wall, cpu] }.
 */
function consoleMarks(text, stamps) {
  const out = {};
  for (const [k, re] of Object.entries(MARKS)) {
    const m = re.exec(text);
    if (!m) continue;
    let at = [NaN, NaN];
    for (const [off, s, c] of stamps) {
      if (off > m.index) break;
      at = [s, c];
    }
    out[k] = at;
  }
  return out;
}

/** Reads a file if it exists, else ''. */
export const readIf = (p) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
