/**
 * Where the Debian compose of the bundled example spends its time.
 * Usage (as root): node bench/_run.mjs bench/compose.ts [--work DIR] [--keep] [--runs N]
 *
 * Prints one table: wall time and CPU time (user+sys of the tools we ran) per step. The machine
 * may be shared, so CPU time is the steadier figure; wall time is what a user waits.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { manifestSchema, parseYamlText, validate, type Manifest } from '@cosa/schema';
import { createDebianComposer } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? dflt) : dflt;
};
const root = resolve(process.cwd());
const work = resolve(arg('--work', join(root, '.bench/compose')));
const runs = Number(arg('--runs', '5'));
const example = join(root, 'examples/debian');
const composer = createDebianComposer({ assetsDir: join(root, 'packages/ostree/assets') });

/** CPU seconds (user+sys) of this process's waited-for children, from /proc/self/stat. */
function childCpu(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  // Fields after "(comm) ": index 0 is field 3; cutime/cstime are fields 16/17.
  return (Number(f[13]) + Number(f[14])) / 100;
}
function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface Row {
  step: string;
  wall: number;
  cpu: number;
  note?: string;
}
const rows: Row[] = [];
async function measure<T>(step: string, fn: () => Promise<T>, note?: (r: T) => string): Promise<T> {
  const c0 = childCpu() + selfCpu();
  const t0 = performance.now();
  const r = await fn();
  const wall = (performance.now() - t0) / 1000;
  const cpu = childCpu() + selfCpu() - c0;
  rows.push({ step, wall, cpu, ...(note ? { note: note(r) } : {}) });
  process.stderr.write(`${step}: ${wall.toFixed(2)} s wall, ${cpu.toFixed(2)} s cpu${note ? ` (${note(r)})` : ''}\n`);
  return r;
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

const manifest: Manifest = validate(manifestSchema, parseYamlText(await readFile(join(example, 'manifest.yaml'), 'utf8'), 'manifest.yaml'), 'manifest.yaml');
const cacheDir = join(work, 'cache');
const opts = (o: { manifest?: Manifest; version: string; repo?: string }) => ({
  manifest: o.manifest ?? manifest,
  configDir: example,
  files: [],
  cacheDir,
  tmpDir: join(work, 'tmp'),
  repo: o.repo ?? join(work, 'repo'),
  arch: 'x86_64',
  version: o.version,
  ref: 'cosa-debian/x86_64/stable',
});
const fmtStats = (s: Record<string, number>) =>
  Object.entries(s)
    .filter(([k]) => k.endsWith('Ms') && (s[k] ?? 0) >= 50)
    .map(([k, v]) => `${k.replace(/Ms$/, '')} ${(v / 1000).toFixed(1)}`)
    .join(', ');

await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
try {
  // 1. Cold: empty cache/ (metadata, .debs, base tree, initramfs all built).
  const cold = await measure('compose, cold (empty cache/)', () => composer.compose(opts({ version: 'b.0' })), (r) => fmtStats(r.stats));
  // 2. Input hash with cached metadata (the no-op check), median of N.
  const hashWalls: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await createDebianComposer({ assetsDir: join(root, 'packages/ostree/assets') }).inputHash(opts({ version: 'x' }));
    hashWalls.push((performance.now() - t0) / 1000);
  }
  rows.push({ step: `input hash, cached metadata (median of ${runs})`, wall: median(hashWalls), cpu: Number.NaN });
  // 3. Input hash with cached metadata but no cached resolution (apt resolves the set).
  await measure('input hash, resolution not cached', async () => {
    await rm(join(cacheDir, 'debian/resolve'), { recursive: true, force: true });
    return composer.inputHash(opts({ version: 'x' }));
  });
  // 4. Forced rebuild, unchanged inputs: base tree + initramfs from cache, commit skipped.
  await measure('compose, unchanged inputs (forced)', () => composer.compose(opts({ version: 'b.1' })), (r) => `${fmtStats(r.stats)}; changed=${r.changed}`);
  // 5. mmdebstrap with a warm package cache (base tree dropped, .debs kept).
  await rm(join(cacheDir, 'debian/base'), { recursive: true, force: true });
  await measure('compose, warm .deb cache, no base tree', () => composer.compose(opts({ version: 'b.2' })), (r) => fmtStats(r.stats));
  // 6. One package added.
  const plusOne: Manifest = { ...manifest, packages: [...(manifest.packages ?? []), 'nano'] };
  await measure('compose, one package added (nano)', () => composer.compose(opts({ manifest: plusOne, version: 'b.3' })), (r) => fmtStats(r.stats));

  // 7. Commit the same tree into bare-user vs archive repos.
  const co = join(work, 'checkout');
  await run(['ostree', `--repo=${join(work, 'repo')}`, 'checkout', '-U', cold.commit, co]);
  for (const mode of ['bare-user', 'archive'] as const) {
    const repo = join(work, `repo-${mode}`);
    await run(['ostree', `--repo=${repo}`, 'init', `--mode=${mode}`]);
    await measure(`ostree commit into ${mode}`, () => run(['ostree', `--repo=${repo}`, 'commit', '--branch=b', `--tree=dir=${co}`, '--no-xattrs', '--fsync=false']));
  }
  const bareUser = join(work, 'repo-bare-user');
  const archive2 = join(work, 'repo-archive-pulled');
  await run(['ostree', `--repo=${archive2}`, 'init', '--mode=archive']);
  await measure('pull-local bare-user → archive', () => run(['ostree', `--repo=${archive2}`, 'pull-local', bareUser, 'b']));
  // 8. The build's repo tar (uncompressed tar of the archive repo), with the tar command.
  await measure('tar of the archive repo (tar -cf)', () => run(['tar', '-C', archive2, '-cf', join(work, 'repo.tar'), '.']), () => '');
  const tarSize = (await run(['stat', '-c', '%s', join(work, 'repo.tar')])).stdout.trim();
  rows[rows.length - 1]!.note = `${(Number(tarSize) / 1e6).toFixed(0)} MB`;
  const kv = (await readdir(join(co, 'usr/lib/modules')))[0] ?? '';
  const initrdSize = (await run(['stat', '-c', '%s', join(co, 'usr/lib/modules', kv, 'initramfs.img')])).stdout.trim();
  const treeSize = (await run(['du', '-sm', co])).stdout.split('\t')[0];

  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`\nDebian compose of examples/debian (${cold.packages.length} packages, tree ${treeSize} MB, initramfs ${(Number(initrdSize) / 1e6).toFixed(0)} MB), load average at the end: ${load}\n`);
  console.log('| step | wall s | cpu s | detail (phase: s) |');
  console.log('|---|---:|---:|---|');
  for (const r of rows) console.log(`| ${r.step} | ${r.wall.toFixed(2)} | ${Number.isNaN(r.cpu) ? '–' : r.cpu.toFixed(1)} | ${r.note ?? ''} |`);
} finally {
  if (!args.includes('--keep')) await rm(work, { recursive: true, force: true });
}
