#!/usr/bin/env node
// metal4k benchmark: what the 4096-byte-sector image costs next to the derived 512-byte metal
// image, in a workdir that has a build (its own install from the commit, with each executor),
// and how long each boots to the login prompt (metal with BIOS, metal4k with UEFI; TCG here).
// Prints a table and writes it into the "metal4k" section of docs/benchmarks.md.
//
//   node bench/metal4k.mjs WORKDIR            # e.g. the workdir of scripts/setup.sh --example
//   SKIP_VM=1 SKIP_BOOT=1 node bench/metal4k.mjs WORKDIR
//
// Runs the CLI (`cosa` from packages/cli/bin) as a child process; needs root for the direct
// executor. The build's metal and metal4k images are replaced (--force).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const cli = join(repo, 'packages', 'cli', 'bin', 'cosa.js');
const wd = process.argv[2] ? resolve(process.argv[2]) : undefined;
if (!wd) {
  console.error('usage: node bench/metal4k.mjs WORKDIR (a cosa workdir with a build)');
  process.exit(2);
}

function cosa(...args) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: wd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`cosa ${args.join(' ')} failed (${r.status}):\n${r.stderr}\n${r.stdout.slice(-3000)}`);
  return { s, out: r.stdout + r.stderr };
}
/** The duration of a phase as printed by the CLI ("  12.3s  disk-4k done in 12.2s"). */
function phase(out, name) {
  const m = new RegExp(`\\s${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} done in ([\\d.]+)s`).exec(out);
  return m ? Number(m[1]) : undefined;
}
const f = (x) => (x === undefined ? '–' : x.toFixed(1));

const rows = [];
const metal = cosa('buildextend-metal', '--force');
rows.push(['metal (derived from the qemu disk)', metal.s, undefined, 'base-disk convert + copy + set-platform + hash']);
const direct = cosa('buildextend-metal4k', '--force', '--direct');
rows.push(['metal4k, direct executor (loop device, --sector-size 4096)', direct.s, phase(direct.out, 'disk-4k'), 'own install']);
if (!process.env.SKIP_VM) {
  const vm = cosa('buildextend-metal4k', '--force', '--vm');
  rows.push(['metal4k, VM executor (supermin, 4Kn virtio disk)', vm.s, phase(vm.out, 'disk-4k'), 'own install, TCG']);
}
const json = JSON.parse(cosa('meta', '--dump').out);
const imgs = json.images ?? {};
const dir = join(wd, 'builds', json.buildid, json['coreos-assembler.basearch'] ?? 'x86_64');
const boots = [];
if (!process.env.SKIP_BOOT) {
  for (const [key, fw] of [['metal', []], ['metal4k', []]]) {
    const r = cosa('run', '--qemu-image', join(dir, imgs[key].path), '--check', '--timeout', '600', ...fw);
    const m = /login prompt in ([\d.]+)s/.exec(r.out);
    boots.push([key, key === 'metal4k' ? 'UEFI (default for 4Kn)' : 'BIOS', m ? Number(m[1]) : r.s]);
  }
}

let table = `Workdir build ${json.buildid}; ${new Date().toISOString().slice(0, 16)} UTC; one run each, 2 cores.\n\n`;
table += '| image | wall (s) | disk write (s) | what |\n|---|---:|---:|---|\n';
for (const [n, s, d, w] of rows) table += `| ${n} | ${f(s)} | ${f(d)} | ${w} |\n`;
if (boots.length) {
  table += '\n| boot to login (TCG) | firmware | s |\n|---|---|---:|\n';
  for (const [k, fw, s] of boots) table += `| ${k} | ${fw} | ${f(s)} |\n`;
}
console.log(table);

const docPath = join(repo, 'docs', 'benchmarks.md');
let doc = readFileSync(docPath, 'utf8');
const begin = '<!-- metal4k:begin -->';
const end = '<!-- metal4k:end -->';
const section = `${begin}\n## metal4k: the 4096-byte-sector image\n\nMeasured with \`node bench/metal4k.mjs WORKDIR\` on ${new Date().toISOString().slice(0, 10)}.\n\n${table}${end}`;
doc = doc.includes(begin) ? doc.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), section) : doc.replace('<!-- store:begin -->', `${section}\n<!-- store:begin -->`);
writeFileSync(docPath, doc);
