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
// by kernel threads is not counted). Needs: Linux /proc, mmdebstrap, ostree, qemu-img, network to
// the host's Debian mirror for the cold scenario.
// usage: node bench/build.mjs [--workdir DIR] [--keep]     (root; after `pnpm -r run build`)
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, initWorkdir } from '@cosa/core';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const keep = args.includes('--keep');
const wdArg = args.indexOf('--workdir');
const base = wdArg >= 0 ? args[wdArg + 1] : mkdtempSync(join(tmpdir(), 'cosa-bench-build-'));
const config = join(base, 'config');
const workdir = join(base, 'wd');
rmSync(base, { recursive: true, force: true });
cpSync(join(root, 'examples/debian'), config, { recursive: true });
execFileSync('git', ['init', '-q', config]);
execFileSync('git', ['-C', config, 'add', '-A']);
execFileSync('git', ['-C', config, '-c', 'user.name=bench', '-c', 'user.email=b@x', 'commit', '-qm', 'bench config']);
await initWorkdir({ dir: workdir, config });

/** CPU seconds (self + reaped children) and bytes written so far, from /proc. */
function usage() {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  const tick = 100; // USER_HZ
  const cpu = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / tick;
  const io = Object.fromEntries(readFileSync('/proc/self/io', 'utf8').trim().split('\n').map((l) => l.split(': ')).map(([k, v]) => [k, Number(v)]));
  return { cpu, written: io.write_bytes - io.cancelled_write_bytes };
}

async function timed(label, opts = {}) {
  let toolMs = 0;
  const phases = {};
  const u0 = usage();
  const t0 = performance.now();
  const r = await build({
    workdir,
    ...opts,
    onProgress: (e) => {
      if (e.type === 'command-end') toolMs += e.durationMs;
      if (e.type === 'phase' && e.status === 'end') phases[e.phase] = e.elapsedMs;
    },
  });
  const wall = performance.now() - t0;
  const u1 = usage();
  return { label, wallS: wall / 1000, toolS: toolMs / 1000, ratio: toolMs > 0 ? wall / toolMs : NaN, status: r.status, phases, cpuS: u1.cpu - u0.cpu, writtenMB: (u1.written - u0.written) / 1e6 };
}

const rows = [];
const print = (r) => {
  const ph = Object.entries(r.phases).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(', ');
  const n = (x, d) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));
  console.log(`| ${r.label} | ${r.wallS.toFixed(2)} | ${n(r.toolS, 2)} | ${n(r.ratio, 2)} | ${n(r.cpuS, 1)} | ${n(r.writtenMB, 0)} | ${r.status} | ${ph} |`);
};
console.log(`# ${new Date().toISOString()} ${execFileSync('uptime', { encoding: 'utf8' }).trim()}`);
console.log('| scenario | cosa wall (s) | raw tool steps (s) | wall / tools | CPU (s) | written (MB) | result | phases (s) |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |');
const origPush = rows.push.bind(rows);
rows.push = (r) => { print(r); return origPush(r); };
rows.push(await timed('cold build (empty cache)'));
// The baseline first: the full compose that --force did before it reused the tree by input hash.
rows.push(await timed('rebuild, inputs unchanged, --force-nocache (compose again)', { force: true, forceNocache: true }));
rows.push(await timed('rebuild, inputs unchanged, --force', { force: true }));
rows.push(await timed('no-op check (SDK)'));
{
  const u0 = usage();
  const t0 = performance.now();
  execFileSync(process.execPath, [join(root, 'packages/cli/bin/cosa.js'), 'build'], { cwd: workdir, stdio: 'ignore' });
  const u1 = usage();
  rows.push({ label: 'no-op check (cosa build, CLI)', wallS: (performance.now() - t0) / 1000, toolS: NaN, ratio: NaN, status: 'unchanged', phases: {}, cpuS: u1.cpu - u0.cpu, writtenMB: (u1.written - u0.written) / 1e6 });
}
const img = join(config, 'image.yaml');
writeFileSync(img, readFileSync(img, 'utf8').replace(/^extra-kargs:.*$/m, 'extra-kargs: [quiet]'));
rows.push(await timed('image-only rebuild (image.yaml changed)'));
const man = join(config, 'manifest.yaml');
writeFileSync(man, readFileSync(man, 'utf8').replace(/^packages:\n/m, 'packages:\n  - jq\n'));
rows.push(await timed('one package added (jq)'));

console.log(`# ${new Date().toISOString()} ${execFileSync('uptime', { encoding: 'utf8' }).trim()}`);
if (!keep) rmSync(base, { recursive: true, force: true });
