#!/usr/bin/env node
// kola benchmark: wall time of `cosa kola run` with 1, 5 and 20 non-exclusive external tests
// (plus the built-in basic checks, all in one VM), of `cosa kola run-upgrade` (three boots), and
// as the baseline, in the same run, `cosa run --check` (one boot to the login prompt).
//
//   node bench/kola.mjs WORKDIR [--from BUILD]   # a workdir with a build; run-upgrade needs two
//                                                # (FROM defaults to the second newest build)
//   SKIP_UPGRADE=1 node bench/kola.mjs WORKDIR
//
// The tests are generated in a scratch workdir beside WORKDIR (its config copied, builds/ and
// cache/ linked): WORKDIR's config is never changed. Prints a table with the load (uptime).
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const cli = join(repo, 'packages', 'cli', 'bin', 'cosa.js');
const wd = process.argv[2] ? resolve(process.argv[2]) : undefined;
if (!wd) {
  console.error('usage: node bench/kola.mjs WORKDIR [--from BUILD]');
  process.exit(2);
}
const fromIdx = process.argv.indexOf('--from');
let from = fromIdx > 0 ? process.argv[fromIdx + 1] : undefined;

function cosa(cwd, ...args) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`cosa ${args.join(' ')} failed (${r.status}):\n${r.stderr}\n${r.stdout.slice(-3000)}`);
  return { s, out: r.stdout + r.stderr };
}
const uptime = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
const f = (x) => (x === undefined ? '–' : x.toFixed(1));

// A scratch workdir: same builds and cache, a config with N generated non-exclusive tests.
const scratch = mkdtempSync(join(dirname(wd), 'kola-bench-'));
const config = join(scratch, 'src', 'config');
mkdirSync(join(scratch, 'src'), { recursive: true });
cpSync(join(wd, 'src', 'config'), config, { recursive: true, dereference: true });
rmSync(join(config, 'tests', 'kola'), { recursive: true, force: true });
symlinkSync(join(wd, 'builds'), join(scratch, 'builds'));
symlinkSync(join(wd, 'cache'), join(scratch, 'cache'));
mkdirSync(join(scratch, 'tmp'));
function writeTests(n) {
  rmSync(join(config, 'tests', 'kola'), { recursive: true, force: true });
  for (let i = 0; i < n; i++) {
    const d = join(config, 'tests', 'kola', 'bench', `t${String(i).padStart(2, '0')}`);
    mkdirSync(d, { recursive: true });
    // A small but real check: the kind of test a config ships (read state, compare).
    writeFileSync(join(d, 'test.sh'), '#!/bin/sh\nset -e\ntest -e /run/ostree-booted\nsystemctl is-active --quiet multi-user.target\nostree admin status >/dev/null\n', { mode: 0o755 });
    writeFileSync(join(d, 'kola.json'), '{"exclusive": false}\n');
  }
}

const rows = [];
try {
  const loadBefore = uptime();
  const base = cosa(wd, 'run', '--check', '--timeout', '900');
  const m = /login prompt in ([\d.]+)s/.exec(base.out);
  rows.push(['baseline: `cosa run --check` (one boot to the login prompt)', base.s, m ? Number(m[1]) : undefined, 1]);
  for (const n of [1, 5, 20]) {
    writeTests(n);
    const r = cosa(scratch, 'kola', 'run');
    const rep = JSON.parse(readFileSync(join(scratch, 'tmp', 'kola', 'reports', 'report.json'), 'utf8'));
    if (rep.result !== 'PASS' || rep.tests.length !== n + 1) throw new Error(`kola run with ${n} tests: ${rep.result}, ${rep.tests.length} results`);
    const vm = /kola:non-exclusive-test-bucket-0 done in ([\d.]+)s/.exec(r.out);
    const inTests = rep.tests.reduce((a, t) => a + t.duration, 0) / 1e9;
    rows.push([`\`cosa kola run\`: basic + ${n} non-exclusive test(s)`, r.s, vm ? Number(vm[1]) : undefined, 1, inTests]);
  }
  if (!process.env.SKIP_UPGRADE) {
    if (!from) {
      const builds = JSON.parse(readFileSync(join(wd, 'builds', 'builds.json'), 'utf8')).builds;
      if (builds.length < 2) throw new Error('run-upgrade needs two builds (cosa build --force makes a second), or SKIP_UPGRADE=1');
      from = builds[1].id;
    }
    const r = cosa(wd, 'kola', 'run-upgrade', '--from', from);
    const rep = JSON.parse(readFileSync(join(wd, 'tmp', 'kola-upgrade', 'reports', 'report.json'), 'utf8'));
    const inSteps = rep.tests.reduce((a, t) => a + t.duration, 0) / 1e9;
    rows.push([`\`cosa kola run-upgrade --from ${from}\` (boot, upgrade, reboot, roll back, reboot)`, r.s, undefined, 3, inSteps]);
  }
  const loadAfter = uptime();
  let table = `${new Date().toISOString().slice(0, 16)} UTC, 2 cores, TCG. Load before: \`${loadBefore}\`; after: \`${loadAfter}\`.\n\n`;
  table += '| run | wall (s) | VM (boot + tests, s) | in the tests (s) | boots | ratio to baseline |\n|---|---:|---:|---:|---:|---:|\n';
  for (const [name, s, vm, boots, inTests] of rows) table += `| ${name} | ${f(s)} | ${f(vm)} | ${f(inTests)} | ${boots} | ${(s / rows[0][1]).toFixed(2)} |\n`;
  console.log(table);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
