#!/usr/bin/env node
// How long does `cosa build` take for the bundled example, and how much of it is the raw tools?
// Scenarios: cold (empty cache), forced rebuild with unchanged inputs (warm cache; with
// --force-nocache, the full compose, as the baseline; with --force, the tree reused), no-op check,
// image-only rebuild (image.yaml changed), one package added. For each, the wall time of cosa and
// the sum of the external tool steps it ran (measured in the same run, from command-end events):
// the ratio shows cosa's own overhead. The no-op check also runs through the CLI (process start
// included), as a user sees it.
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

async function timed(label, opts = {}) {
  let toolMs = 0;
  const phases = {};
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
  return { label, wallS: wall / 1000, toolS: toolMs / 1000, ratio: toolMs > 0 ? wall / toolMs : NaN, status: r.status, phases };
}

const rows = [];
const print = (r) => {
  const ph = Object.entries(r.phases).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(', ');
  console.log(`| ${r.label} | ${r.wallS.toFixed(2)} | ${Number.isNaN(r.toolS) ? '–' : r.toolS.toFixed(2)} | ${Number.isNaN(r.ratio) ? '–' : r.ratio.toFixed(2)} | ${r.status} | ${ph} |`);
};
console.log('| scenario | cosa wall (s) | raw tool steps (s) | wall / tools | result | phases (s) |');
console.log('| --- | ---: | ---: | ---: | --- | --- |');
const origPush = rows.push.bind(rows);
rows.push = (r) => { print(r); return origPush(r); };
rows.push(await timed('cold build (empty cache)'));
// The baseline first: the full compose that --force did before it reused the tree by input hash.
rows.push(await timed('rebuild, inputs unchanged, --force-nocache (compose again)', { force: true, forceNocache: true }));
rows.push(await timed('rebuild, inputs unchanged, --force', { force: true }));
rows.push(await timed('no-op check (SDK)'));
{
  const t0 = performance.now();
  execFileSync(process.execPath, [join(root, 'packages/cli/bin/cosa.js'), 'build'], { cwd: workdir, stdio: 'ignore' });
  rows.push({ label: 'no-op check (cosa build, CLI)', wallS: (performance.now() - t0) / 1000, toolS: NaN, ratio: NaN, status: 'unchanged', phases: {} });
}
const img = join(config, 'image.yaml');
writeFileSync(img, readFileSync(img, 'utf8').replace(/^extra-kargs:.*$/m, 'extra-kargs: [quiet]'));
rows.push(await timed('image-only rebuild (image.yaml changed)'));
const man = join(config, 'manifest.yaml');
writeFileSync(man, readFileSync(man, 'utf8').replace(/^packages:\n/m, 'packages:\n  - jq\n'));
rows.push(await timed('one package added (jq)'));

if (!keep) rmSync(base, { recursive: true, force: true });
