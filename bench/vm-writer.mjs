#!/usr/bin/env node
// VM writer vs direct writer (issue #16): the disk step of createDisk for the same commit, written
// by the direct executor (loop device on the host) and by the VM executor (supermin appliance
// under qemu, TCG here), in the same run. Prints a table: direct s, VM s, VM / direct, the
// appliance boot and per-step times inside the guest, and the load (uptime).
//
//   node bench/vm-writer.mjs [--runs N] [--baseline DIR] [--rootfs xfs|ext4]   (as root, after `pnpm -r run build`)
// The disk is the bundled example's, as its image.yaml says (an ext4 root); --rootfs overrides.
// --baseline DIR also times the VM writer of another checkout with built packages (e.g. the
// commit before the #16 work: `git worktree add /tmp/base <rev> && cd /tmp/base && pnpm install
// && pnpm -r run build`), in the same run, on the same commit.
// --memory MiB / --cpus N (A/B of the appliance's size) also time this checkout's VM writer with
// that guest memory / that many vCPUs (default 2048 MiB, the host's CPUs up to 4).
//
// Needs what scripts/setup.sh installs (ostree, qemu-system-x86, supermin, linux-image-amd64,
// e2fsprogs, xfsprogs, gdisk, dosfstools, mtools, grub-pc-bin, grub-efi-amd64-bin, mmdebstrap
// for the example's compose). The commit is the bundled example composed into
// $COSA_TEST_CACHE (default /var/tmp/cosa-test-cache; a warm cache makes this quick).
// Everything else is written under a temp dir in /var/tmp that is removed at the end.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDebianComposer } from '@cosa/ostree';
import { manifestSchema, parseYamlText, validate, withLock } from '@cosa/schema';
import { loadImageConfig } from '@cosa/schema/internal';
import { createDisk, directExecutor, prepareAppliance, probeAccelerator, vmExecutor } from '@cosa/image';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 1;
const baseArg = args.indexOf('--baseline');
const baseline = baseArg >= 0 ? await import(join(args[baseArg + 1], 'packages', 'image', 'dist', 'index.js')) : undefined;
const optArg = (name) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : undefined; };
const memoryArg = optArg('--memory');
const cpusArg = optArg('--cpus');
// The disk is the bundled example's (its image.yaml: an ext4 root); --rootfs xfs|ext4 overrides
// the root file system (xfs: the default of image.yaml, as the original's).
const rootfsArg = args.indexOf('--rootfs') >= 0 ? args[args.indexOf('--rootfs') + 1] : undefined;
const exampleImage = (await loadImageConfig({ file: join(root, 'examples/debian/image.yaml') })).config;
const imageConfig = { ...exampleImage, ...(rootfsArg ? { rootfs: rootfsArg } : {}) };
const cacheRoot = process.env.COSA_TEST_CACHE ?? '/var/tmp/cosa-test-cache';
const cacheDir = join(cacheRoot, 'cache');
const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();

/** The bundled example composed into a bare-user repo of the test cache (as the image tests do). */
async function exampleCommit() {
  const example = join(root, 'examples', 'debian');
  const wdCache = join(cacheRoot, 'workdir-cache');
  mkdirSync(wdCache, { recursive: true });
  const repo = join(cacheRoot, 'image-test-repo');
  const ref = 'cosa-debian/x86_64/stable';
  const manifest = validate(manifestSchema, parseYamlText(readFileSync(join(example, 'manifest.yaml'), 'utf8'), 'manifest.yaml'), 'manifest.yaml');
  const r = await withLock(repo, () => createDebianComposer().compose({
    manifest, configDir: example, files: [join(example, 'manifest.yaml')], cacheDir: wdCache,
    tmpDir: join(cacheRoot, 'image-test-tmp'), repo, arch: 'x86_64', version: 'test.0', ref,
  }));
  return { repo, ref, commit: r.commit, osname: 'cosa-debian' };
}

/** CPU seconds (user + system) of this process's waited-for children: qemu, ostree, tar, ... */
function childrenCpu() {
  const f = readFileSync('/proc/self/stat', 'utf8').slice(readFileSync('/proc/self/stat', 'utf8').lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of stat(5) (cutime, cstime), counted from field 3 (state) here.
  return (Number(f[13]) + Number(f[14])) / 100;
}

/** Runs createDisk and returns its wall time, its children's CPU time and the disk script's step marks. */
async function write(executor, commit, tmp, label, writeDisk = createDisk) {
  const marks = [];
  const phases = {};
  const cpu0 = childrenCpu();
  const t0 = performance.now();
  await writeDisk({
    repo: commit.repo, commit: commit.commit, ref: commit.ref, osname: commit.osname, platform: 'qemu', buildId: 'bench.1', imageConfig,
    executor, output: join(tmp, `${label}.raw`), tmpDir: join(tmp, 'tmp'), cacheDir, hash: false,
    onProgress: (e) => {
      if (e.type === 'log') {
        const m = /(cosa-disk|cosa-appliance): (\d+(?:\.\d+)?) (\S+)/.exec(e.line);
        if (m) marks.push([m[1], Number(m[2]), m[3]]);
        const u = /cosa-appliance: (init|command exited with \d+) at uptime (\S+)/.exec(e.line);
        if (u) marks.push(['cosa-appliance', Number(u[2]), u[1].startsWith('init') ? 'init' : 'exit']);
      }
      if (e.type === 'phase' && e.status === 'end') phases[e.phase] = e.elapsedMs / 1000;
    },
  });
  const wall = (performance.now() - t0) / 1000;
  rmSync(join(tmp, `${label}.raw`), { force: true });
  return { wall, cpu: childrenCpu() - cpu0, phases, marks };
}

const commit = await exampleCommit();
console.log(`commit ${commit.commit.slice(0, 12)} (${commit.repo})`);
const accel = await probeAccelerator({ cacheDir });
await prepareAppliance({ cacheDir });
const tmp = mkdtempSync('/var/tmp/cosa-bench-vmw-');
const results = [];
try {
  const loadBefore = uptime();
  for (let i = 0; i < RUNS; i++) {
    results.push(['direct', await write(directExecutor(), commit, tmp, 'direct')]);
    if (baseline) results.push(['vm, baseline', await write(baseline.vmExecutor({ cacheDir, accel }), commit, tmp, 'vm-old', baseline.createDisk)]);
    results.push(['vm', await write(vmExecutor({ cacheDir, accel }), commit, tmp, 'vm')]);
    if (memoryArg) results.push([`vm, ${memoryArg} MiB`, await write(vmExecutor({ cacheDir, accel, memoryMiB: memoryArg }), commit, tmp, 'vm-mem')]);
    if (cpusArg) results.push([`vm, ${cpusArg} vCPUs`, await write(vmExecutor({ cacheDir, accel, cpus: cpusArg }), commit, tmp, 'vm-cpus')]);
  }
  const loadAfter = uptime();
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  const by = (name) => results.filter(([n]) => n === name).map(([, r]) => r);
  const direct = median(by('direct').map((r) => r.phases['disk-direct'] ?? r.wall));
  console.log(`\n${new Date().toISOString().slice(0, 16)} UTC, accel ${accel}, rootfs ${imageConfig.rootfs}, ${RUNS} run(s) each, median`);
  console.log(`load before: ${loadBefore}\nload after:  ${loadAfter}\n`);
  console.log('| writer | createDisk wall (s) | disk step (s) | disk step / direct | CPU of children (s) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const name of ['direct', 'vm, baseline', 'vm', `vm, ${memoryArg} MiB`, `vm, ${cpusArg} vCPUs`]) {
    const rs = by(name);
    if (rs.length === 0) continue;
    const step = median(rs.map((r) => r.phases[name === 'direct' ? 'disk-direct' : 'disk-vm'] ?? r.wall));
    console.log(`| ${name} | ${median(rs.map((r) => r.wall)).toFixed(1)} | ${step.toFixed(1)} | ${(step / direct).toFixed(2)}× | ${median(rs.map((r) => r.cpu)).toFixed(1)} |`);
  }
  for (const [name, r] of results) {
    // The host's sysroot stage (host-* steps) and the guest each count from their own start.
    const parts = [true, false].flatMap((host) => {
      const steps = r.marks.filter(([k, , s]) => k === 'cosa-disk' && s.startsWith('host-') === host);
      return steps.slice(0, -1).map(([, ms, s], j) => `${s} ${((steps[j + 1][1] - ms) / 1000).toFixed(1)}`);
    });
    const boot = r.marks.find(([k, , s]) => k === 'cosa-appliance' && s === 'init');
    const ph = Object.entries(r.phases).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
    console.log(`\n${name}: phases: ${ph}; CPU of children ${r.cpu.toFixed(1)} s${boot ? `; guest uptime at /init ${boot[1]} s` : ''}\n  script steps (s): ${parts.join(', ')}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
