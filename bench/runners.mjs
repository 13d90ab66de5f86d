#!/usr/bin/env node
// One build, many runners: N runners (separate `cosa buildupload --artifact P` processes, each
// with its own workdir holding the build plus its own platform image) upload into one build on a
// loopback S3 server (s3rver 3.7.1 behind the tests' conditional-write hook) at the same moment,
// beside the same N uploads made one after another. Prints wall time, conditional writes merged
// again (412 → re-read → re-merge) and bytes sent, median of RUNS, for N = 4 and 8.
//
//   node bench/runners.mjs                  # RUNS=3 SIZE_MIB=64 RUNNERS=4,8
//   RUNS=1 SIZE_MIB=16 node bench/runners.mjs
//
// Needs built packages (`pnpm -r run build`).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const RUNS = Number(process.env.RUNS ?? 3);
const SIZE_MIB = Number(process.env.SIZE_MIB ?? 64);
const COUNTS = (process.env.RUNNERS ?? '4,8').split(',').map(Number);
const PLATFORMS = ['aws', 'azure', 'gcp', 'openstack', 'vmware', 'exoscale', 'ibmcloud', 'digitalocean'];
const MiB = 1024 * 1024;
const ID = '77.20261127.0';
const cli = join(repo, 'packages/cli/bin/cosa.js');
if (!existsSync(join(repo, 'packages/cli/dist/index.js'))) throw new Error('build the packages first: pnpm -r run build');

const scratch = await mkdtemp(join(tmpdir(), 'cosa-bench-runners-'));
const children = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
// --json prints progress as JSON Lines, then the result as one indented document.
const lastJson = (o) => JSON.parse(o.slice(o.lastIndexOf('\n{\n') + 1));
const sha = (b) => createHash('sha256').update(b).digest('hex');

// --- the S3 server ---------------------------------------------------------------------------
const s3dir = join(scratch, 's3');
await mkdir(s3dir);
const s3 = spawn(process.execPath, [join(repo, 'packages/test-utils/src/_s3-child.mjs'), s3dir, '1', 'bench'], {
  env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(s3);
const port = await new Promise((resolve) => createInterface({ input: s3.stdout }).once('line', (l) => resolve(JSON.parse(l).port)));
const endpoint = `http://127.0.0.1:${port}`;
const env = { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: endpoint };
const stats = async (reset) => (await fetch(`${endpoint}/__cosa/stats`, { method: reset ? 'POST' : 'GET' })).json();

function cosa(cwd, args) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [cli, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`cosa ${args.join(' ')}: exit ${code}\n${err}`))));
  });
}

// --- the build (ostree + qemu) and one workdir per runner with its platform image ---------------
const base = join(scratch, 'base');
const archDir = join(base, 'builds', ID, 'x86_64');
await mkdir(archDir, { recursive: true });
const images = {};
for (const [k, mib] of [['ostree', 8], ['qemu', 16]]) {
  const data = randomBytes(mib * MiB);
  const path = `bench-${ID}-${k}.x86_64.${k === 'ostree' ? 'tar' : 'qcow2'}`;
  await writeFile(join(archDir, path), data);
  images[k] = { path, sha256: sha(data), size: data.length };
}
const meta = { buildid: ID, name: 'bench', 'ostree-commit': 'b'.repeat(64), 'ostree-timestamp': '2026-11-27T00:00:00Z', 'ostree-version': ID, 'coreos-assembler.build-timestamp': '2026-11-27T00:00:00Z', images };
await writeFile(join(archDir, 'meta.json'), `${JSON.stringify(meta, null, 4)}\n`);
await writeFile(join(base, 'builds', 'builds.json'), JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: ID, arches: ['x86_64'] }] }));
await symlink(ID, join(base, 'builds', 'latest'));

const runners = [];
for (const p of PLATFORMS.slice(0, Math.max(...COUNTS))) {
  const wd = join(scratch, `r-${p}`);
  await cp(base, wd, { recursive: true, verbatimSymlinks: true });
  const data = randomBytes(SIZE_MIB * MiB);
  const path = `bench-${ID}-${p}.x86_64.img`;
  await writeFile(join(wd, 'builds', ID, 'x86_64', path), data);
  const m = { ...meta, images: { ...images, [p]: { path, sha256: sha(data), size: data.length } } };
  await writeFile(join(wd, 'builds', ID, 'x86_64', 'meta.json'), `${JSON.stringify(m, null, 4)}\n`);
  runners.push({ p, wd });
}

// --- runs --------------------------------------------------------------------------------------
const rows = [];
let prefixN = 0;
async function once(n, mode) {
  const prefix = `bench/p${prefixN++}`;
  await cosa(base, ['buildupload', '--json', 's3', prefix]); // the build, uploaded once (not timed)
  await stats(true);
  const upload = (r) => cosa(r.wd, ['buildupload', '--artifact', r.p, '--json', 's3', prefix]).then(lastJson);
  const set = runners.slice(0, n);
  const t0 = performance.now();
  let results;
  if (mode === 'concurrent') results = await Promise.all(set.map(upload));
  else {
    results = [];
    for (const r of set) results.push(await upload(r));
  }
  const secs = (performance.now() - t0) / 1000;
  const server = await stats(false);
  const remote = await (await fetch(`${endpoint}/${prefix}/${ID}/x86_64/meta.json`)).json();
  const missing = set.filter((r) => !remote.images[r.p]);
  if (missing.length > 0) throw new Error(`${mode} ${n}: lost ${missing.map((r) => r.p).join(', ')}`);
  await rm(join(s3dir, prefix), { recursive: true, force: true });
  return { secs, retries: results.reduce((k, r) => k + r.retries, 0), sent: results.reduce((k, r) => k + r.bytesSent, 0), putBytes: server.putBytes, rejects: server.conditionalRejects - n };
}

const load0 = loadavg();
for (const n of COUNTS) {
  for (const mode of ['one after another', 'concurrent']) {
    const got = [];
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`${n} runners, ${mode}, run ${i + 1}/${RUNS}\n`);
      got.push(await once(n, mode));
    }
    rows.push({ n, mode, secs: median(got.map((g) => g.secs)), retries: median(got.map((g) => g.retries)), rejects: median(got.map((g) => g.rejects)), sentMiB: median(got.map((g) => g.sent)) / MiB, putMiB: median(got.map((g) => g.putBytes)) / MiB });
  }
}
const load1 = loadavg();

const lines = [
  `${RUNS} run(s), median; each runner uploads one ${SIZE_MIB} MiB platform image into one build (ostree 8 MiB + qemu 16 MiB already uploaded); s3rver 3.7.1 on 127.0.0.1; load average ${load0[0].toFixed(1)} before, ${load1[0].toFixed(1)} after (${process.env.LOADNOTE ?? 'uptime'}).`,
  '',
  '| runners | how | wall time | vs one after another | conditional writes merged again | 412s at the server (beyond each process probe) | bytes sent by the runners | PUT bytes at the server |',
  '|---|---|---|---|---|---|---|---|',
];
for (const r of rows) {
  const seq = rows.find((x) => x.n === r.n && x.mode === 'one after another');
  lines.push(`| ${r.n} | ${r.mode} | ${r.secs.toFixed(2)} s | ${(seq.secs / r.secs).toFixed(2)}× | ${r.retries} | ${r.rejects} | ${r.sentMiB.toFixed(1)} MiB | ${r.putMiB.toFixed(1)} MiB |`);
}
process.stdout.write(`${lines.join('\n')}\n`);
// The S3 server child keeps the event loop alive: exit (the exit handler stops it and cleans up).
process.exit(0);
