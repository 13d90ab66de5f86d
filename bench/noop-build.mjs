#!/usr/bin/env node
// How long does the no-op check of `cosa build` take from the CLI (process start included), with
// override trees present, and what does the file-hash cache save? Bundled example, commit only
// (`cosa build ostree`). Baseline in the same run: the CLI start alone (`cosa --help`).
// Scenarios, each the median of N runs: no overrides; overrides/rootfs with FILES files (warm
// file-hash cache); the same with the cache deleted before each run (every file hashed again).
// Also the start of `node` alone, and with COSA_BASELINE=/path/to/other/bin/cosa.js (e.g. main's
// checkout, built) that CLI's `--help` and no-op in the same workdir, in the same run.
// usage: node bench/noop-build.mjs [--runs N] [--files N] [--cache DIR] [--keep]
//        (root; after `pnpm -r run build`; --cache: a warm workdir cache/ to link, e.g.
//        $COSA_TEST_CACHE/workdir-cache, so the one compose reuses the Debian base tree)
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'packages/cli/bin/cosa.js');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const runs = Number(opt('--runs', '7'));
const files = Number(opt('--files', '2000'));
const cache = opt('--cache', undefined);
const base = mkdtempSync(join(tmpdir(), 'cosa-bench-noop-'));
const config = join(base, 'config');
const wd = join(base, 'wd');
const baseline = process.env.COSA_BASELINE;
const run = (bin, a) => execFileSync(process.execPath, [bin, ...a], { cwd: wd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const cosa = (...a) => run(cli, a);
const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');

function median(label, fn, before = () => {}) {
  const t = [];
  for (let i = 0; i < runs; i++) {
    before();
    const t0 = performance.now();
    const out = fn();
    t.push(performance.now() - t0);
    if (!/start/.test(label) && !/up to date/.test(out)) throw new Error(`${label}: not a no-op:\n${out}`);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)] / 1000;
}

try {
  cpSync(join(root, 'examples/debian'), config, { recursive: true });
  mkdirSync(wd);
  cosa('init', config);
  if (cache) {
    rmSync(join(wd, 'cache'), { recursive: true });
    symlinkSync(cache, join(wd, 'cache'));
  }
  console.log(`load average at start: ${load()} (2 cores)`);
  cosa('build', 'ostree');
  const rows = [];
  rows.push(['`node -e 0` (process start alone)', median('node start', () => execFileSync(process.execPath, ['-e', '0'], { encoding: 'utf8' }))]);
  if (baseline) {
    rows.push([`baseline CLI start (\`${baseline} --help\`)`, median('baseline cli start', () => run(baseline, ['--help']))]);
    rows.push(['baseline CLI no-op, no overrides', median('baseline no overrides', () => run(baseline, ['build', 'ostree']))]);
  }
  rows.push(['CLI start only (`cosa --help`, baseline)', median('cli start', () => cosa('--help'))]);
  rows.push(['no-op, no overrides', median('no overrides', () => cosa('build', 'ostree'))]);
  // Override trees: FILES small files in 20 directories, plus a few larger ones.
  const ov = join(wd, 'overrides/rootfs/usr/share/cosa-bench');
  for (let i = 0; i < files; i++) {
    const d = join(ov, `d${i % 20}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}`), `file ${i}\n`.repeat(1 + (i % 50)));
  }
  for (let i = 0; i < 4; i++) writeFileSync(join(ov, `big${i}`), Buffer.alloc(8 << 20, i));
  cosa('build', 'ostree'); // a compose with the overrides
  cosa('build', 'ostree'); // fills the file-hash cache (files written > 2 s ago)
  const hashCache = join(wd, 'cache', 'inputs-file-hashes.json');
  rows.push([`no-op, overrides/rootfs ${files + 4} files (32 MB), warm file-hash cache`, median('warm', () => cosa('build', 'ostree'))]);
  rows.push([`no-op, same overrides, file-hash cache deleted before each run`, median('cold', () => cosa('build', 'ostree'), () => rmSync(hashCache, { force: true }))]);
  console.log(`load average at end: ${load()}`);
  console.log(`\n| scenario (median of ${runs}) | wall (s) |\n| --- | ---: |`);
  for (const [l, s] of rows) console.log(`| ${l} | ${s.toFixed(2)} |`);
} finally {
  if (!args.includes('--keep')) rmSync(base, { recursive: true, force: true });
}
