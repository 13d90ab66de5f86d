#!/usr/bin/env node
// How long does `cosa build` take for the bundled example, and how much of it is the raw tools?
// Scenarios: cold (empty cache), forced rebuild with unchanged inputs (warm cache; with
// --force-nocache, the full compose, as the baseline; with --force, the tree reused), no-op check,
// image-only rebuild (image.yaml changed), one package added. For each, the wall time of cosa and
// the sum of the external tool steps it ran (measured in the same run, from command-end events):
// the ratio shows cosa's own overhead. The no-op check also runs through the CLI (process start
// included), as a user sees it. CPU is user+system time of this process and every child it reaped
// (/proc/self/stat); "written" is the bytes this process and its reaped children made the kernel
// write to storage (/proc/self/io write_bytes - cancelled_write_bytes; loop-device writeback done
// by kernel threads is not counted). After the cold build (and with --tools after every scenario)
// a second table splits its CPU by tool: each command's CPU is the reaped-children CPU that
// arrived between the previous command's end and its own (so a tool's children count with it:
// dpkg, apt and maintainer scripts under mmdebstrap; mkfs, ostree and grub under disk.sh), and
// "cosa (node) itself" is this process's own time (tar packing, sha256 of the tar and the qcow2,
// the planner). Needs: Linux /proc, mmdebstrap, ostree, qemu-img, network to the host's Debian
// mirror for the cold scenario.
// usage: node bench/build.mjs [--workdir DIR] [--keep] [--only cold,nocache,force,noop,image,package]
//                             [--baseline DIR] [--tools]     (root; after `pnpm -r run build`)
//   --only      run only these scenarios (default all; image and package need a built workdir:
//               they run after cold)
//   --baseline  another built checkout (e.g. /work/main): its cold build runs first, in its own
//               fresh workdir, then this checkout's: an A/B of the cold build in one run
//   --tools     print the per-tool CPU table after every scenario, not only the cold ones
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as core from '@cosa/core';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const keep = args.includes('--keep');
const allTools = args.includes('--tools');
const only = new Set(opt('--only', 'cold,nocache,force,noop,image,package').split(','));
const baselineDir = opt('--baseline', undefined);
const base = opt('--workdir', undefined) ?? mkdtempSync(join(tmpdir(), 'cosa-bench-build-'));

/** A fresh git checkout of the example and a workdir on it, under `dir`. */
async function freshWorkdir(dir, initWorkdir) {
  const config = join(dir, 'config');
  const workdir = join(dir, 'wd');
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(root, 'examples/debian'), config, { recursive: true });
  execFileSync('git', ['init', '-q', config]);
  execFileSync('git', ['-C', config, 'add', '-A']);
  execFileSync('git', ['-C', config, '-c', 'user.name=bench', '-c', 'user.email=b@x', 'commit', '-qm', 'bench config']);
  await initWorkdir({ dir: workdir, config });
  return { config, workdir };
}

/** CPU seconds (self, reaped children) and bytes written so far, from /proc. */
function usage() {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  const tick = 100; // USER_HZ
  const self = (Number(f[11]) + Number(f[12])) / tick;
  const children = (Number(f[13]) + Number(f[14])) / tick;
  const io = Object.fromEntries(readFileSync('/proc/self/io', 'utf8').trim().split('\n').map((l) => l.split(': ')).map(([k, v]) => [k, Number(v)]));
  return { cpu: self + children, self, children, written: io.write_bytes - io.cancelled_write_bytes };
}

/** The name a command's CPU is booked under: the tool (and the ostree / qemu-img verb). */
function toolKey(argv) {
  const a = argv.map((x) => String(x).split('/').pop());
  if (a.includes('disk.sh')) return 'disk.sh (mkfs, pull-local, deploy, grub, /boot)';
  const i = a[0] === 'chroot' ? 2 : 0;
  const cmd = a[i] ?? '?';
  if (cmd === 'ostree' || cmd === 'qemu-img') return `${cmd} ${a[i + 1] ?? ''}`.trim();
  return a[0] === 'chroot' ? `chroot ${cmd}` : cmd;
}

async function timed(label, opts = {}, sdk = core) {
  let toolMs = 0;
  const phases = {};
  const tools = new Map();
  const u0 = usage();
  let lastChildren = u0.children;
  const t0 = performance.now();
  const r = await sdk.build({
    workdir: opts.workdir ?? workdir,
    ...opts,
    onProgress: (e) => {
      if (e.type === 'command-end') {
        toolMs += e.durationMs;
        const c = usage().children;
        const k = toolKey(e.argv);
        const t = tools.get(k) ?? { n: 0, cpu: 0, wall: 0 };
        tools.set(k, { n: t.n + 1, cpu: t.cpu + (c - lastChildren), wall: t.wall + e.durationMs / 1000 });
        lastChildren = c;
      }
      if (e.type === 'phase' && e.status === 'end') phases[e.phase] = e.elapsedMs;
    },
  });
  const wall = performance.now() - t0;
  const u1 = usage();
  if (u1.children - lastChildren > 0.005) tools.set('(children without a command-end event)', { n: 0, cpu: u1.children - lastChildren, wall: NaN });
  tools.set('cosa (node) itself', { n: 0, cpu: u1.self - u0.self, wall: NaN });
  return { label, wallS: wall / 1000, toolS: toolMs / 1000, ratio: toolMs > 0 ? wall / toolMs : NaN, status: r.status, phases, cpuS: u1.cpu - u0.cpu, writtenMB: (u1.written - u0.written) / 1e6, tools };
}

const n = (x, d) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));
const print = (r) => {
  const ph = Object.entries(r.phases).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(', ');
  console.log(`| ${r.label} | ${r.wallS.toFixed(2)} | ${n(r.toolS, 2)} | ${n(r.ratio, 2)} | ${n(r.cpuS, 1)} | ${n(r.writtenMB, 0)} | ${r.status} | ${ph} |`);
};
const header = () => {
  console.log('| scenario | cosa wall (s) | raw tool steps (s) | wall / tools | CPU (s) | written (MB) | result | phases (s) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |');
};
const toolTable = (r) => {
  if (!r.tools || r.tools.size === 0) return;
  console.log(`\nCPU by tool, ${r.label} (total ${r.cpuS.toFixed(1)} s):\n`);
  console.log('| tool | runs | CPU (s) | share | wall (s) |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [k, t] of [...r.tools].sort((a, b) => b[1].cpu - a[1].cpu)) {
    if (t.cpu < 0.05 && t.n > 0) continue;
    console.log(`| ${k} | ${t.n || '–'} | ${t.cpu.toFixed(1)} | ${((100 * t.cpu) / r.cpuS).toFixed(0)} % | ${n(t.wall, 1)} |`);
  }
  console.log('');
  header();
};
const rows = [];
const push = (r, tools) => {
  print(r);
  if (tools) toolTable(r);
  rows.push(r);
};

console.log(`# ${new Date().toISOString()} ${execFileSync('uptime', { encoding: 'utf8' }).trim()}`);
header();
if (baselineDir && only.has('cold')) {
  const sdk = await import(pathToFileURL(join(resolve(baselineDir), 'packages/core/dist/index.js')).href);
  const b = await freshWorkdir(join(base, 'baseline'), sdk.initWorkdir);
  push(await timed(`cold build (empty cache), baseline ${baselineDir}`, { workdir: b.workdir }, sdk), true);
  rmSync(join(base, 'baseline'), { recursive: true, force: true });
}
const { config, workdir } = await freshWorkdir(join(base, 'this'), core.initWorkdir);
// Every later scenario needs the first build: it is made (untimed in the table) when cold is not asked.
if (only.has('cold')) push(await timed('cold build (empty cache)'), true);
else if ([...only].some((x) => x !== 'cold')) await core.build({ workdir });
// The baseline first: the full compose that --force did before it reused the tree by input hash.
if (only.has('nocache')) push(await timed('rebuild, inputs unchanged, --force-nocache (compose again)', { force: true, forceNocache: true }), allTools);
if (only.has('force')) push(await timed('rebuild, inputs unchanged, --force', { force: true }), allTools);
if (only.has('noop')) {
  push(await timed('no-op check (SDK)'), false);
  const u0 = usage();
  const t0 = performance.now();
  execFileSync(process.execPath, [join(root, 'packages/cli/bin/cosa.js'), 'build'], { cwd: workdir, stdio: 'ignore' });
  const u1 = usage();
  push({ label: 'no-op check (cosa build, CLI)', wallS: (performance.now() - t0) / 1000, toolS: NaN, ratio: NaN, status: 'unchanged', phases: {}, cpuS: u1.cpu - u0.cpu, writtenMB: (u1.written - u0.written) / 1e6 }, false);
}
if (only.has('image')) {
  const img = join(config, 'image.yaml');
  writeFileSync(img, readFileSync(img, 'utf8').replace(/^extra-kargs:.*$/m, 'extra-kargs: [quiet]'));
  push(await timed('image-only rebuild (image.yaml changed)'), allTools);
}
if (only.has('package')) {
  const man = join(config, 'manifest.yaml');
  writeFileSync(man, readFileSync(man, 'utf8').replace(/^packages:\n/m, 'packages:\n  - jq\n'));
  push(await timed('one package added (jq)'), allTools);
}

console.log(`# ${new Date().toISOString()} ${execFileSync('uptime', { encoding: 'utf8' }).trim()}`);
if (!keep) rmSync(base, { recursive: true, force: true });
