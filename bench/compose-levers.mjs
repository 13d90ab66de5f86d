#!/usr/bin/env node
// The Debian composer's speed levers (#16), each old vs new in the same run, on the bundled
// example: a full compose from warm apt metadata and .debs (no base tree, no initramfs cached)
// with (old) dpkg under --force-unsafe-io only and `debian.initramfs-modules: most`, against
// (new) dpkg under the host's libeatmydata and the targeted initramfs. Rounds alternate old and
// new so load drifts hit both. For each compose: wall time, the mmdebstrap, initramfs and commit
// steps, the initramfs size, CPU (this process and its reaped children, /proc/self/stat) and bytes
// written to storage (/proc/self/io write_bytes - cancelled_write_bytes).
// Needs: root, mmdebstrap, ostree, eatmydata (libeatmydata1) on the host, network to the host's
// Debian mirror for the first `fetch` (skipped when --cache holds it). After `pnpm -r run build`.
// usage: node bench/compose-levers.mjs [--rounds N] [--cache DIR] [--keep]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manifestSchema, parseYamlText, validate } from '@cosa/schema';
import { createDebianComposer } from '@cosa/ostree';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : dflt);
const rounds = Number(opt('--rounds', '2'));
const keep = args.includes('--keep');
const base = mkdtempSync(join(tmpdir(), 'cosa-bench-levers-'));
const warm = opt('--cache', join(base, 'warm'));
const example = join(root, 'examples/debian');
const manifest = validate(manifestSchema, parseYamlText(readFileSync(join(example, 'manifest.yaml'), 'utf8'), 'manifest.yaml'), 'manifest.yaml');

function usage() {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  const cpu = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
  const io = Object.fromEntries(readFileSync('/proc/self/io', 'utf8').trim().split('\n').map((l) => l.split(': ')).map(([k, v]) => [k, Number(v)]));
  return { cpu, written: io.write_bytes - io.cancelled_write_bytes };
}
const load = () => execFileSync('uptime', { encoding: 'utf8' }).trim().replace(/^.*load average/, 'load average');

const opts = (cacheDir, work, m) => ({
  manifest: m, configDir: example, files: [], cacheDir, tmpDir: join(work, 'tmp'), repo: join(work, 'repo'), arch: 'x86_64', version: '1', ref: 'bench/x86_64',
});

// Warm apt metadata and .debs once; every compose gets a copy of them (hard links) and nothing else.
mkdirSync(warm, { recursive: true });
await createDebianComposer().fetch(opts(warm, join(base, 'fetch'), manifest));

async function compose(label, eatmydata, modules) {
  const work = join(base, `${label}-${Date.now()}`);
  const cache = join(work, 'cache');
  mkdirSync(join(cache, 'debian'), { recursive: true });
  // .debs as hard links (read only); apt's state copied (its apt.conf is rewritten per cache).
  for (const [d, flag] of [['apt', '-a'], ['debs', '-al'], ['resolve', '-a']]) execFileSync('cp', [flag, join(warm, 'debian', d), join(cache, 'debian', d)]);
  const m = { ...manifest, debian: { ...manifest.debian, 'initramfs-modules': modules } };
  const before = load();
  const u0 = usage();
  const t0 = performance.now();
  const r = await createDebianComposer({ eatmydata }).compose(opts(cache, work, m));
  const wall = (performance.now() - t0) / 1000;
  const u1 = usage();
  const imgs = readdirSync(join(cache, 'debian/initramfs')).filter((n) => n.endsWith('.img'));
  const size = imgs.length ? statSync(join(cache, 'debian/initramfs', imgs[0])).size / 1e6 : NaN;
  const s = r.stats;
  console.log(`| ${label} | ${wall.toFixed(1)} | ${(s.mmdebstrapMs / 1000).toFixed(1)} | ${(s.initramfsMs / 1000).toFixed(1)} | ${size.toFixed(1)} | ${(s.commitMs / 1000).toFixed(1)} | ${(u1.cpu - u0.cpu).toFixed(1)} | ${((u1.written - u0.written) / 1e6).toFixed(0)} | ${before} |`);
  rmSync(work, { recursive: true, force: true });
}

console.log(`# ${new Date().toISOString()} ${load()}`);
console.log('| compose | wall (s) | mmdebstrap (s) | initramfs (s) | initramfs (MB) | commit (s) | CPU (s) | written (MB) | load before |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (let i = 0; i < rounds; i++) {
  await compose('old: force-unsafe-io, MODULES=most', false, 'most');
  await compose('new: + eatmydata, targeted initramfs', true, 'targeted');
}
console.log(`# ${new Date().toISOString()} ${load()}`);
if (!keep) rmSync(base, { recursive: true, force: true });
