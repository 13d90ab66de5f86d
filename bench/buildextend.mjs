#!/usr/bin/env node
// buildextend benchmark: how long each platform image takes to derive from one base disk, N
// platforms concurrently vs one after the other, and cosa compress throughput vs the raw
// `xz -T0` / `gzip` / `zstd -T0` commands on the same file. Prints a table of medians and
// writes it into the "buildextend" section of docs/benchmarks.md.
//
//   node bench/buildextend.mjs                 # RUNS=1 DATA_MIB=512 DISK_MIB=3072
//   RUNS=3 DATA_MIB=1024 node bench/buildextend.mjs
//   PLATFORMS=qemu,aws,gcp node bench/buildextend.mjs
//
// The base disk is synthetic and made without root: the cosa GPT layout (sgdisk), an ext4 boot
// partition with an ostree-style BLS entry and grub.cfg (mkfs.ext4 -d), and DATA_MIB of real
// files (a tar of /usr) written into the root partition so conversions and compression see
// realistic, partly compressible data. Needs built packages (schema, ostree, image, core: done
// here when dist/ is missing), qemu-img, sgdisk, e2fsprogs, tar, xz, gzip, zstd. metal4k is left
// out (it needs a 4096-byte-sector install of its own from a real commit: bench/metal4k.mjs).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const RUNS = Number(process.env.RUNS ?? 1);
const DATA_MIB = Number(process.env.DATA_MIB ?? 512);
const DISK_MIB = Number(process.env.DISK_MIB ?? 3072);
const MiB = 1024 * 1024;

for (const p of ['schema', 'ostree', 'image', 'core']) {
  if (!existsSync(join(repo, 'packages', p, 'dist', 'index.js'))) {
    execFileSync('pnpm', ['--filter', `@cosa/${p}`, 'run', 'build'], { cwd: repo, stdio: 'inherit' });
  }
}
const image = await import(join(repo, 'packages', 'image', 'dist', 'index.js'));
const core = await import(join(repo, 'packages', 'core', 'dist', 'index.js'));
const schema = await import(join(repo, 'packages', 'schema', 'dist', 'index.js'));

const scratch = await mkdtemp(join(tmpdir(), 'cosa-bench-buildextend-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

const sh = (argv, opts = {}) => {
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', opts.stdout ?? 'pipe', 'pipe'], ...opts });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return r.stdout?.toString() ?? '';
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const secs = (ms) => (ms / 1000).toFixed(1);
async function timed(fn) {
  const t0 = performance.now();
  const r = await fn();
  return { ms: performance.now() - t0, r };
}

// ---- the base disk ----------------------------------------------------------------------------
async function makeBase() {
  const disk = join(scratch, 'base.raw');
  sh(['truncate', '-s', `${DISK_MIB}M`, disk]);
  const bootStart = 129;
  const rootStart = bootStart + 384;
  sh(['sgdisk', '-n1:2048:4095', '-t1:ef02', '-c1:BIOS-BOOT', '-n2:4096:264191', '-t2:ef00', '-c2:EFI-SYSTEM',
    `-n3:${bootStart * 2048}:${rootStart * 2048 - 1}`, '-t3:8300', '-c3:boot', `-n4:${rootStart * 2048}:0`, '-t4:8300', '-c4:root', disk]);
  const tree = join(scratch, 'bootfs');
  await mkdir(join(tree, 'loader.0', 'entries'), { recursive: true });
  await symlink('loader.0', join(tree, 'loader')).catch(() => {});
  await mkdir(join(tree, 'grub'), { recursive: true });
  const opts = 'root=LABEL=root rw console=ttyS0,115200n8 ignition.platform.id=qemu $ignition_firstboot ostree=/ostree/boot.1/debian/0/0';
  await writeFile(join(tree, 'loader.0', 'entries', 'ostree-1-debian.conf'), `title Bench\nversion 1\noptions ${opts}\nlinux /vmlinuz\ninitrd /initrd\n`);
  await writeFile(join(tree, 'grub', 'grub.cfg'),
    `# CONSOLE-SETTINGS-START\nserial --speed=115200\nterminal_input serial console\nterminal_output serial console\n# CONSOLE-SETTINGS-END\nmenuentry 'Bench' {\n  linux /vmlinuz ${opts}\n  initrd /initrd\n}\n`);
  const bootImg = join(scratch, 'boot.img');
  sh(['mkfs.ext4', '-q', '-F', '-L', 'boot', '-d', tree, bootImg, '384M']);
  sh(['dd', `if=${bootImg}`, `of=${disk}`, 'bs=1M', `seek=${bootStart}`, 'conv=notrunc,sparse', 'status=none']);
  await rm(bootImg);
  // Real data in the root partition: the first DATA_MIB of a tar of /usr.
  const data = join(scratch, 'data.tar');
  if (!existsSync(data)) {
    spawnSync('sh', ['-c', 'tar -cf - --ignore-failed-read -C / usr 2>/dev/null | head -c "$1" > "$2"', 'sh', String(DATA_MIB * MiB), data]);
  }
  sh(['dd', `if=${data}`, `of=${disk}`, 'bs=1M', `seek=${rootStart}`, 'conv=notrunc', 'status=none']);
  return disk;
}

const base = await makeBase();
const allocated = Number(sh(['du', '-B1', base]).split('\t')[0]);
console.log(`base disk: ${DISK_MIB} MiB virtual, ${(allocated / MiB).toFixed(0)} MiB allocated; ${cpus().length} CPUs`);

const common = { name: 'bench', buildId: '1', arch: 'x86_64', tmpDir: join(scratch, 'tmp'), imageConfig: {} };
const platforms = (process.env.PLATFORMS ?? image.listPlatforms().filter((p) => p !== 'metal4k').join(',')).split(',');

// ---- 1. time per platform ---------------------------------------------------------------------
const perPlatform = [];
for (const platform of platforms) {
  const times = [];
  let last;
  for (let i = 0; i < RUNS; i++) {
    const out = join(scratch, 'out-single');
    const { ms, r } = await timed(() => image.derivePlatformImage({ ...common, baseRaw: base, platform, output: out }));
    times.push(ms);
    last = r;
    await rm(r.path);
  }
  perPlatform.push({ platform, ms: median(times), size: last.size, format: last.format });
  console.log(`${platform.padEnd(13)} ${secs(median(times)).padStart(6)} s  ${(last.size / MiB).toFixed(0).padStart(6)} MiB  ${last.format}`);
}

// ---- 2. N platforms concurrently vs serially --------------------------------------------------
async function serialVsParallel(set) {
  const ser = [];
  const par = [];
  for (let i = 0; i < RUNS; i++) {
    const s = await timed(async () => {
      for (const platform of set) {
        const r = await image.derivePlatformImage({ ...common, baseRaw: base, platform, output: join(scratch, 'out-ser') });
        await rm(r.path);
      }
    });
    ser.push(s.ms);
    const p = await timed(() => image.derivePlatformImages({ ...common, baseRaw: base, platforms: set, output: join(scratch, 'out-par'), concurrency: set.length }));
    par.push(p.ms);
    for (const r of p.r) await rm(r.path);
  }
  return { set, serial: median(ser), parallel: median(par) };
}
const sets = [['openstack', 'ibmcloud', 'exoscale'], ['aws', 'azure', 'gcp']];
const concurrency = [];
for (const set of sets) {
  const r = await serialVsParallel(set);
  const one = perPlatform.find((p) => p.platform === set[0])?.ms;
  concurrency.push({ ...r, one });
  console.log(`${set.join('+')}: serial ${secs(r.serial)} s, parallel ${secs(r.parallel)} s, one ${one ? secs(one) : '?'} s`);
}

// ---- 3. compress throughput vs the tools ------------------------------------------------------
const qcow = await image.derivePlatformImage({ ...common, baseRaw: base, platform: 'qemu', output: join(scratch, 'c') });
const qcowSize = qcow.size;
const compress = [];
for (const [compressor, cli] of [
  ['xz', ['xz', '-T0', '-9', '-c']],
  ['zstd', ['zstd', '-q', '-T0', '-10', '-c']],
  ['gzip', ['gzip', '-6', '-n', '-c']],
]) {
  const cosaMs = [];
  const cliMs = [];
  let outSize = 0;
  for (let i = 0; i < RUNS; i++) {
    const buildDir = join(scratch, 'builds', '1');
    const archDir = join(buildDir, 'x86_64');
    await rm(buildDir, { recursive: true, force: true });
    await mkdir(archDir, { recursive: true });
    sh(['cp', '--reflink=auto', qcow.path, join(archDir, 'bench-1-qemu.x86_64.qcow2')]);
    const meta = {
      buildid: '1', name: 'bench', 'ostree-commit': 'a'.repeat(64), 'ostree-timestamp': '2026-11-26T00:00:00Z', 'ostree-version': '1',
      images: { ostree: { path: 'x.tar', sha256: 'b'.repeat(64), 'skip-compression': true }, qemu: { path: 'bench-1-qemu.x86_64.qcow2', sha256: qcow.sha256, size: qcowSize } },
    };
    await writeFile(join(archDir, 'meta.json'), schema.serializeMetaJson(meta));
    const c = await timed(() => core.compressBuild({ buildDir, compressor }));
    cosaMs.push(c.ms);
    outSize = c.r.done[0].toSize;
    const t = await timed(async () => {
      const r = spawnSync('sh', ['-c', `${cli.join(' ')} "$1" > "$2"`, 'sh', qcow.path, join(scratch, 'cli.out')]);
      if (r.status !== 0) throw new Error(String(r.stderr));
    });
    cliMs.push(t.ms);
    await rm(join(scratch, 'cli.out'));
  }
  compress.push({ compressor, cosa: median(cosaMs), cli: median(cliMs), cliArgv: cli.join(' '), outSize });
  console.log(`${compressor}: cosa ${secs(median(cosaMs))} s vs ${cli.join(' ')} ${secs(median(cliMs))} s`);
}

// ---- report ------------------------------------------------------------------------------------
const mbps = (bytes, ms) => (bytes / MiB / (ms / 1000)).toFixed(2);
const lines = [];
lines.push(`Base disk: ${DISK_MIB} MiB virtual, ${(allocated / MiB).toFixed(0)} MiB allocated (${DATA_MIB} MiB of /usr in the root partition); ` +
  `${cpus().length} CPUs; medians of ${RUNS} run(s). The machine is shared, so absolute times are noisy.`);
lines.push('', '| platform | format | time (s) | artifact (MiB) |', '|---|---|---:|---:|');
for (const p of perPlatform) lines.push(`| ${p.platform} | ${p.format} | ${secs(p.ms)} | ${(p.size / MiB).toFixed(0)} |`);
lines.push('', '| platforms | one alone (s) | serial (s) | concurrent (s) | concurrent / serial | concurrent / one |', '|---|---:|---:|---:|---:|---:|');
for (const c of concurrency) {
  lines.push(`| ${c.set.join(' + ')} | ${c.one ? secs(c.one) : '?'} | ${secs(c.serial)} | ${secs(c.parallel)} | ${(c.parallel / c.serial).toFixed(2)} | ${c.one ? (c.parallel / c.one).toFixed(2) : '?'} |`);
}
lines.push('', `Compression of the ${(qcowSize / MiB).toFixed(0)} MiB qemu qcow2 (cosa compress includes hashing the output and the meta.json update):`,
  '', '| compressor | cosa (s) | MiB/s | tool alone | tool (s) | MiB/s | cosa / tool | output (MiB) |', '|---|---:|---:|---|---:|---:|---:|---:|');
for (const c of compress) {
  lines.push(`| ${c.compressor} | ${secs(c.cosa)} | ${mbps(qcowSize, c.cosa)} | \`${c.cliArgv}\` | ${secs(c.cli)} | ${mbps(qcowSize, c.cli)} | ${(c.cosa / c.cli).toFixed(2)} | ${(c.outSize / MiB).toFixed(0)} |`);
}
const table = lines.join('\n');
console.log(`\n${table}`);

const docPath = join(repo, 'docs', 'benchmarks.md');
let doc = existsSync(docPath) ? await readFile(docPath, 'utf8') : '# Benchmarks\n';
const begin = '<!-- buildextend:begin -->';
const end = '<!-- buildextend:end -->';
const section = `${begin}\n## buildextend: platform images from one base disk, compress\n\nMeasured with \`node bench/buildextend.mjs\` on ${new Date().toISOString().slice(0, 10)}.\n\n${table}\n${end}`;
doc = doc.includes(begin) ? doc.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), section) : `${doc.trimEnd()}\n\n${section}\n`;
await mkdir(dirname(docPath), { recursive: true });
await writeFile(docPath, doc);
