#!/usr/bin/env node
// cosa against a peer (debos 1.1.1) on the same package set, back to back, one tool at a time:
//   cold build      wall, CPU (user+sys), bytes written (all from /usr/bin/time -v; cosa's
//                   workdir cache and debos's run both start empty: both download the debs)
//   one package     jq added to the package list (cosa: an incremental `cosa build`; debos has no
//                   incremental mode: the whole recipe again, as a user of it would do)
//   boot to login   under the accelerator cosa picks (TCG on this machine class), the cold
//                   builds' images: debos BIOS (its only firmware), cosa BIOS and UEFI, N boots each,
//                   interleaved, medians; every boot is cold (qemu -snapshot) with cosa's qemu line.
// The package set is the example's: the `packages:` of examples/debian/manifest.yaml are passed
// to the debos recipe (bench/peers/bookworm.yaml, -t packages:...), so the two lists cannot drift.
// Both tools use the host apt's Debian mirror (and security mirror). Before every measurement the
// script waits (at most --settle-max seconds) for the 1-minute load to drop below 1 and prints the
// load beside each row. Never two builds at once. Everything is made under one temp dir in /var/tmp
// and removed at the end (--keep to keep it).
//
// Needs (Debian 12 host, as root, after `pnpm -r run build`): debos (apt-get install -y
// --no-install-recommends debos), qemu-system-x86, ovmf, grub-pc-bin, /usr/bin/time (package time),
// and what `cosa build` needs (scripts/setup.sh). debos runs without fakemachine (no usable KVM
// here) and with a udevadm shim (no udevd on this host): see bench/peers/udevadm-shim.
//
// usage: node bench/peers.mjs [--only cold,package,boot] [--quick] [--boots N] [--settle-max S] [--keep]
//   --only   run only these parts (boot alone still builds both images first, untimed)
//   --quick  one boot per image and at most 60 s of waiting for the load per step
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeAccelerator } from '@cosa/image';
import { hostDebianMirrors } from '@cosa/ostree/internal';
import { bootOnce, fmt, load1, median, settle, table } from './_boot.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'packages/cli/bin/cosa.js');
const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const quick = args.includes('--quick');
const keep = args.includes('--keep');
const only = new Set((opt('--only', 'cold,package,boot')).split(','));
const boots = Number(opt('--boots', quick ? 1 : 3));
const settleMax = Number(opt('--settle-max', quick ? 60 : 600));

if (process.getuid?.() !== 0) throw new Error('run as root (debos without fakemachine, cosa direct disk writer)');
for (const [tool, pkg] of [['debos', 'debos'], ['/usr/bin/time', 'time'], ['qemu-system-x86_64', 'qemu-system-x86']]) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing: apt-get install -y --no-install-recommends ${pkg}`);
}
if (!existsSync(join(root, 'packages/cli/dist'))) throw new Error('the CLI is not built: run `pnpm -r run build` first');

const base = mkdtempSync('/var/tmp/cosa-peers-');
const createdDevDisk = !existsSync('/dev/disk');
console.error(`# work dir ${base}; load at start ${load1()} (uptime: ${execFileSync('uptime', { encoding: 'utf8' }).trim()})`);

// ---- the two configs: cosa's example (a git checkout), debos's recipe fed the same package list
const config = join(base, 'config');
cpSync(join(root, 'examples/debian'), config, { recursive: true });
const git = (...a) => execFileSync('git', ['-C', config, '-c', 'user.name=bench', '-c', 'user.email=b@x', ...a], { stdio: 'ignore' });
execFileSync('git', ['init', '-q', config]);
git('add', '-A');
git('commit', '-qm', 'bench config');
const manifestPath = join(config, 'manifest.yaml');
const packages = [];
{
  let inList = false;
  for (const line of readFileSync(manifestPath, 'utf8').split('\n')) {
    if (/^packages:\s*$/.test(line)) inList = true;
    else if (inList && /^\s+-\s+\S/.test(line)) packages.push(line.replace(/^\s+-\s+/, '').replace(/\s+#.*$/, '').trim());
    else if (inList && /^\S/.test(line)) inList = false;
  }
}
if (packages.length === 0) throw new Error(`no packages: list in ${manifestPath}`);
const recipe = join(base, 'debos');
cpSync(join(root, 'bench/peers'), recipe, { recursive: true });
const shim = join(base, 'shim');
mkdirSync(shim);
cpSync(join(recipe, 'udevadm-shim'), join(shim, 'udevadm'));
chmodSync(join(shim, 'udevadm'), 0o755);
mkdirSync('/dev/disk', { recursive: true });
const mirrors = await hostDebianMirrors();
if (!mirrors.mirror) throw new Error('no Debian mirror in the host apt configuration');
const wd = join(base, 'cosa-wd');
mkdirSync(wd);
execFileSync(process.execPath, [cli, 'init', config], { cwd: wd, stdio: 'ignore' });
console.error(`# package set (${packages.length}): ${packages.join(' ')}; mirror ${mirrors.mirror}${mirrors.securityMirror ? ` + ${mirrors.securityMirror}` : ''}`);

/** Runs argv under /usr/bin/time -v; returns wall/cpu seconds and bytes written (ru_oublock × 512). */
function timed(label, argv, { cwd, env }) {
  const tv = join(base, `${label}.time`);
  const log = join(base, `${label}.log`);
  const r = spawnSync('/usr/bin/time', ['-v', '-o', tv, ...argv], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  writeFileSync(log, `${r.stdout ?? ''}\n${r.stderr ?? ''}`);
  const t = existsSync(tv) ? readFileSync(tv, 'utf8') : '';
  const num = (re) => Number((re.exec(t) ?? [])[1]);
  const wallM = /Elapsed \(wall clock\) time \([^)]*\): (?:(\d+):)?(\d+):([\d.]+)/.exec(t);
  const wall = wallM ? Number(wallM[1] ?? 0) * 3600 + Number(wallM[2]) * 60 + Number(wallM[3]) : NaN;
  const cpu = num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/);
  const written = num(/File system outputs: (\d+)/) * 512;
  if (r.status !== 0) {
    console.error(`# ${label} FAILED (exit ${r.status}); last lines of ${log}:\n${`${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-25).join('\n')}`);
  }
  return { ok: r.status === 0, wall, cpu, written, rssKiB: num(/Maximum resident set size \(kbytes\): (\d+)/) };
}

function debos(label, pkgs) {
  const out = join(base, `debos-${label}`);
  mkdirSync(out, { recursive: true });
  const argv = ['debos', '--disable-fakemachine', '--artifactdir', out, '-t', `mirror:${mirrors.mirror}`,
    ...(mirrors.securityMirror ? ['-t', `security:${mirrors.securityMirror}`] : []), '-t', `packages:${pkgs.join(', ')}`, 'bookworm.yaml'];
  const r = timed(`debos-${label}`, argv, { cwd: recipe, env: { PATH: `${shim}:${process.env.PATH}` } });
  return { ...r, image: join(out, 'debos-bookworm.img') };
}

function cosaBuild(label) {
  const r = timed(`cosa-${label}`, [process.execPath, cli, 'build'], { cwd: wd });
  if (!r.ok) return { ...r, image: undefined };
  const builds = JSON.parse(readFileSync(join(wd, 'builds/builds.json'), 'utf8'));
  const newest = builds.builds?.[0]?.id;
  const arch = builds.builds?.[0]?.arches?.[0] ?? 'x86_64';
  const meta = newest ? JSON.parse(readFileSync(join(wd, 'builds', newest, arch, 'meta.json'), 'utf8')) : undefined;
  const q = meta?.images?.qemu?.path;
  return { ...r, image: q ? join(wd, 'builds', newest, arch, q) : undefined };
}

// Ctrl-C / SIGTERM: the running step ends (the signal reaches its process group), then the table
// so far is printed and the work dir removed.
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => (interrupted = true));
const check = () => {
  if (interrupted) throw new Error('interrupted: the table below has the steps that finished');
};

const rows = [];
const gb = (b) => fmt(b / 1e9, 2);
const ratio = (c, d) => (Number.isFinite(c) && Number.isFinite(d) && d > 0 ? `${(c / d).toFixed(2)}×` : '–');
const addBuildRows = (what, d, c, ld, lc) => {
  if (!d.ok || !c.ok) {
    rows.push([`${what}: FAILED`, d.ok ? fmt(d.wall) : 'FAILED', c.ok ? fmt(c.wall) : 'FAILED', '–', `${ld} / ${lc}`]);
    return;
  }
  rows.push([`${what}: wall (s)`, fmt(d.wall), fmt(c.wall), ratio(c.wall, d.wall), `${ld} / ${lc}`]);
  rows.push([`${what}: CPU user+sys (s)`, fmt(d.cpu), fmt(c.cpu), ratio(c.cpu, d.cpu), `${ld} / ${lc}`]);
  rows.push([`${what}: written (GB)`, gb(d.written), gb(c.written), ratio(c.written, d.written), `${ld} / ${lc}`]);
};

let debosImage;
let cosaImage;
try {
  // ---- cold builds (always run: the boot part needs their images; timed rows only if asked)
  const wantCold = only.has('cold');
  const needImages = only.has('boot') || only.has('package');
  if (wantCold || needImages) {
    const ld = await settle('debos cold', { maxS: settleMax }).then((x) => x.toFixed(2));
    const d = debos('cold', packages);
    check();
    const lc = await settle('cosa cold', { maxS: settleMax }).then((x) => x.toFixed(2));
    const c = cosaBuild('cold');
    check();
    debosImage = d.ok ? d.image : undefined;
    cosaImage = c.ok ? c.image : undefined;
    if (wantCold) addBuildRows('cold build', d, c, ld, lc);
    else console.error(`# (setup, not timed: cold builds took debos ${fmt(d.wall)} s, cosa ${fmt(c.wall)} s)`);
  }
  // ---- one package added
  if (only.has('package')) {
    const ld = await settle('debos +jq', { maxS: settleMax }).then((x) => x.toFixed(2));
    const d = debos('jq', [...packages, 'jq']);
    check();
    rmSync(join(base, 'debos-jq'), { recursive: true, force: true });
    writeFileSync(manifestPath, readFileSync(manifestPath, 'utf8').replace(/^packages:\n/m, 'packages:\n  - jq\n'));
    git('commit', '-qam', 'add jq');
    const lc = await settle('cosa +jq', { maxS: settleMax }).then((x) => x.toFixed(2));
    const c = cosaBuild('jq');
    check();
    addBuildRows('one package added (jq)', d, c, ld, lc);
  }
  // ---- boot to login
  if (only.has('boot')) {
    const accel = await probeAccelerator({});
    const runs = { debos: [], cosaBios: [], cosaUefi: [] };
    const cpu = { debos: [], cosaBios: [], cosaUefi: [] };
    const loads = [];
    const splits = { debos: [], cosaBios: [], cosaUefi: [] };
    for (let i = 0; i < boots; i++) {
      for (const [key, image, firmware, password] of [['debos', debosImage, 'bios', 'root'], ['cosaBios', cosaImage, 'bios', ''], ['cosaUefi', cosaImage, 'uefi', '']]) {
        if (!image) continue;
        loads.push(await settle(`boot ${key} #${i + 1}`, { maxS: Math.min(settleMax, 180) }));
        const r = await bootOnce({ image, firmware, accel, password, timeoutS: 600 });
        console.error(`# boot ${key} #${i + 1}: ${r.ok ? `login after ${fmt(r.loginS)} s` : `FAILED (${r.error})`} (load ${load1()})`);
        runs[key].push(r.ok ? r.loginS : NaN);
        cpu[key].push(r.ok ? r.cpuS : NaN);
        splits[key].push(r.split);
        check();
      }
    }
    const lr = `${fmt(Math.min(...loads), 2)}–${fmt(Math.max(...loads), 2)}`;
    const d = median(runs.debos);
    const b = median(runs.cosaBios);
    const u = median(runs.cosaUefi);
    rows.push([`boot to login, BIOS, median of ${boots} (s, ${accel})`, fmt(d), fmt(b), ratio(b, d), lr]);
    rows.push([`boot to login, cosa UEFI vs debos BIOS (s, ${accel})`, fmt(d), fmt(u), ratio(u, d), lr]);
    const [cd, cb, cu] = [median(cpu.debos), median(cpu.cosaBios), median(cpu.cosaUefi)];
    rows.push([`qemu CPU to login, BIOS (s; cosa UEFI ${fmt(cu)})`, fmt(cd), fmt(cb), ratio(cb, cd), lr]);
    for (const part of ['firmware', 'kernel', 'initrd', 'userspace']) {
      const m = (k) => median(splits[k].map((s) => s[part]));
      rows.push([`  of which ${part === 'firmware' ? 'firmware + GRUB' : part === 'kernel' ? 'kernel to /init' : part === 'initrd' ? 'initramfs' : 'systemd to login'} (BIOS; cosa UEFI ${fmt(m('cosaUefi'))})`, fmt(m('debos')), fmt(m('cosaBios')), ratio(m('cosaBios'), m('debos')), '']);
    }
  }
} catch (e) {
  console.error(`# ${e.message}`);
  process.exitCode = 1;
} finally {
  console.log(`\npeers: debos 1.1.1 vs cosa, the bundled example's ${packages.length} packages (${new Date().toISOString()}, ${execFileSync('nproc', { encoding: 'utf8' }).trim()} CPUs, load now ${load1()})\n`);
  table(['measure', 'debos', 'cosa', 'cosa / debos', 'load before (debos / cosa)'], rows);
  if (keep) console.error(`# kept ${base}`);
  else rmSync(base, { recursive: true, force: true });
  if (createdDevDisk) {
    try {
      if (readdirSync('/dev/disk').length === 0) rmdirSync('/dev/disk');
    } catch {
      /* not ours to remove any more */
    }
  }
}
