#!/usr/bin/env node
// Boot to login of the bundled example's qcow2, BIOS and UEFI, N cold boots each (qemu -snapshot,
// cosa's own qemu command line, the accelerator cosa picks: TCG on this machine class), medians,
// split from inside the guest (see bench/_boot.mjs): firmware + GRUB (host clock up to the kernel's
// start), kernel to /init (incl. unpacking the initramfs), initramfs (to systemd as PID 1 on the real
// root), systemd to the login prompt. Also qemu's CPU time to login (the guest's work under TCG: far
// less sensitive to the machine's load than wall time), `systemd-analyze time` and the slowest units
// of the last boot, and how long the accelerator answer takes in a fresh workdir on a machine that
// already probed (it must be cached per machine, not per workdir: no 20 s probe).
//
// Needs (as root or a user who can run qemu; after `pnpm -r run build`): qemu-system-x86, ovmf.
// usage: node bench/boot.mjs [--image QCOW2 | --workdir WD] [--baseline QCOW2] [--runs N] [--firmware bios,uefi]
//                            [--quick] [--blame] [--extra 'SHELL COMMAND']
//   no --image/--workdir: builds the bundled example in a temp workdir first (untimed, removed after)
//   --baseline: an A/B in one run: each round boots the baseline, then the image (same firmware),
//     and the tables get one row per image
//   --quick: one boot per firmware, no waiting for the load
//   --extra: run this in the guest after logging in (last boot of each image), print its output
//   --image-qemu-args 'ARGS': append these (split at spaces) to cosa's qemu line for --image only
//     (with --baseline set to the same image: an A/B of a qemu option)
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultAccelCacheDir, probeAccelerator } from '@cosa/image';
import { bootOnce, fmt, load1, median, settle, table } from './_boot.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'packages/cli/bin/cosa.js');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const quick = args.includes('--quick');
const runs = Number(opt('--runs', quick ? 1 : 5));
const firmwares = opt('--firmware', 'bios,uefi').split(',');
const settleMax = quick ? 0 : Number(opt('--settle-max', 300));

/** The qcow2 of the newest build in a workdir. */
function latestQcow2(wd) {
  const builds = JSON.parse(readFileSync(join(wd, 'builds/builds.json'), 'utf8'));
  const b = builds.builds?.[0];
  if (!b) throw new Error(`${wd}: no build`);
  const arch = b.arches?.[0] ?? 'x86_64';
  const meta = JSON.parse(readFileSync(join(wd, 'builds', b.id, arch, 'meta.json'), 'utf8'));
  return join(wd, 'builds', b.id, arch, meta.images.qemu.path);
}

let scratch;
let image = opt('--image');
try {
  if (!image && opt('--workdir')) image = latestQcow2(resolve(opt('--workdir')));
  if (!image) {
    scratch = mkdtempSync('/var/tmp/cosa-bench-boot-wd-');
    const config = join(scratch, 'config');
    cpSync(join(root, 'examples/debian'), config, { recursive: true });
    execFileSync('git', ['init', '-q', config]);
    execFileSync('git', ['-C', config, 'add', '-A']);
    execFileSync('git', ['-C', config, '-c', 'user.name=bench', '-c', 'user.email=b@x', 'commit', '-qm', 'bench config']);
    const wd = join(scratch, 'wd');
    mkdirSync(wd);
    execFileSync(process.execPath, [cli, 'init', config], { cwd: wd, stdio: 'ignore' });
    console.error('# building the bundled example (not timed)…');
    execFileSync(process.execPath, [cli, 'build'], { cwd: wd, stdio: ['ignore', 'ignore', 'inherit'] });
    image = latestQcow2(wd);
  }

  // The accelerator answer in a fresh workdir: the machine's answer is used, no probe.
  await probeAccelerator({});
  const fresh = mkdtempSync(join(tmpdir(), 'cosa-bench-accel-'));
  const t0 = performance.now();
  const accel = await probeAccelerator({ cacheDir: join(fresh, 'cache') });
  const probeS = (performance.now() - t0) / 1000;
  rmSync(fresh, { recursive: true, force: true });

  const baseline = opt('--baseline');
  const extra = opt('--extra');
  const imageQemu = (opt('--image-qemu-args') ?? '').split(' ').filter(Boolean);
  const images = baseline ? [['baseline', baseline, []], ['image', image, imageQemu]] : [['', image, imageQemu]];
  // One series per firmware and image: keys "bios", or "bios baseline" / "bios image".
  const series = firmwares.flatMap((f) => images.map(([tag]) => (tag ? `${f} ${tag}` : f)));
  const res = Object.fromEntries(series.map((k) => [k, []]));
  const loads = Object.fromEntries(series.map((k) => [k, []]));
  for (let i = 0; i < runs; i++) {
    for (const firmware of firmwares) {
      for (const [tag, img, qemuExtra] of images) {
        const k = tag ? `${firmware} ${tag}` : firmware;
        loads[k].push(settleMax > 0 ? await settle(`boot ${k} #${i + 1}`, { maxS: settleMax }) : Number(load1()));
        const r = await bootOnce({ image: img, firmware, accel, password: '', timeoutS: 600, qemuExtra, ...(extra && i === runs - 1 ? { extra } : {}) });
        console.error(`# ${k} #${i + 1}: ${r.ok ? `login after ${fmt(r.loginS)} s, qemu CPU ${fmt(r.cpuS)} s` : `FAILED: ${r.error}`} (load ${load1()})`);
        res[k].push(r);
      }
    }
  }
  console.log(`\nboot to login: ${image}${baseline ? ` (baseline: ${baseline})` : ''}\n${runs} boot(s) per firmware, accel ${accel}, ${new Date().toISOString()}, load now ${load1()}\n`);
  const rows = [];
  for (const f of series) {
    const rs = res[f].filter((r) => r.ok);
    const m = (pick) => fmt(median(rs.map(pick)));
    const l = loads[f];
    rows.push([
      `${f.replace(/^\w+/, (w) => w.toUpperCase())} (${rs.length}/${res[f].length} ok)`, m((r) => r.loginS), m((r) => r.cpuS), m((r) => r.split.firmware), m((r) => r.split.kernel),
      m((r) => r.split.initrd), m((r) => r.split.userspace), `${fmt(Math.min(...l), 2)}–${fmt(Math.max(...l), 2)}`,
    ]);
  }
  table(['firmware', 'login (s)', 'qemu CPU (s)', 'firmware + GRUB', 'kernel to /init', 'initramfs', 'systemd to login', 'load before'], rows);
  // The same split in qemu CPU time (host clock and CPU read when each console line arrived): the
  // figure to compare A/B when the machine is loaded.
  const cpuAt = (r, k) => r.marks?.[k]?.[1];
  const cpuRows = series.map((f) => {
    const rs = res[f].filter((r) => r.ok);
    const d = (a, b) => fmt(median(rs.map((r) => (a ? cpuAt(r, b) - cpuAt(r, a) : cpuAt(r, b)))));
    return [f.replace(/^\w+/, (w) => w.toUpperCase()), d(undefined, 'grub'), d('grub', 'grubBoot'), d('grubBoot', 'kernel'), d('kernel', 'init'), d('init', 'systemd'), d('systemd', 'login')];
  });
  console.log('\nqemu CPU (s) per phase, medians, from the console lines\' arrival:\n');
  table(['firmware', 'to GRUB menu', 'GRUB menu (timeout)', 'kernel + initrd load, kernel unpack', 'kernel to /init', 'initramfs', 'systemd to login'], cpuRows);
  console.log(`\naccelerator answer in a fresh workdir on a machine that already probed: ${probeS.toFixed(2)} s (${accel}; cached in ${defaultAccelCacheDir()})`);
  for (const [tag] of images) {
    const last = firmwares.map((f) => res[tag ? `${f} ${tag}` : f].filter((r) => r.ok).at(-1)).find(Boolean);
    if (last && (args.includes('--blame') || !quick)) console.log(`\nlast boot${tag ? ` of the ${tag}` : ''}, from the guest:\n${last.analyze}`);
    if (last?.extra !== undefined) console.log(`\n\`${extra}\`${tag ? ` (${tag})` : ''}:\n${last.extra}`);
  }
} finally {
  if (scratch && existsSync(scratch)) rmSync(scratch, { recursive: true, force: true });
}
