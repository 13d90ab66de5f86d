#!/usr/bin/env node
// Memory benchmark (#16): peak RSS of the cosa process per step on a build with a 3 GiB raw
// image, against the 300 MB budget: buildupload to a local S3 server, buildfetch back from it
// (S3: the lean reader's buffers written straight to the file; one GET, split into up to 4 ranged
// streams when it runs below 128 MiB/s) and over HTTP
// (parallel ranged GETs, sha256 on the way), compress (zstd --fast). Each step runs
// `node packages/cli/bin/cosa.js` as a child; its own peak (VmHWM of /proc/<pid>/status, polled
// every 50 ms; compressor children are not counted) and the wall time are reported. Also: the
// time to sha256 a 3 GiB raw file that is mostly holes vs one of real data (does sparse-aware
// hashing matter?).
//
// The image is REAL data, not a sparse file: the files under /usr (binaries, libraries, text)
// concatenated over and over up to the size, so hashing, compression and upload see bytes with
// the compressibility of an OS image. A sparse image would flatter compress (zeros) and nothing
// else: holes are read as zeros by every step here.
//
//   node bench/memory.mjs                      # SIZE_MIB=3072, S3 server s3rver
//   SIZE_MIB=512 STEPS=upload,s3fetch,fetch node bench/memory.mjs
//   S3_SERVER=moto node bench/memory.mjs       # moto_server instead of s3rver
//   COSA_BASELINE=/path/to/other/packages/cli/bin/cosa.js node bench/memory.mjs   # the fetches by that CLI too (A/B)
//
// The S3 server is test-utils' s3rver by default (it keeps objects and parts on disk and serves
// a range by reading only that range). moto_server 5.2.1 answered 500 to CompleteMultipartUpload
// of the 3 GiB image (384 parts of 8 MiB) on every attempt here, with "ValueError: seek of closed
// file" in its log (one part's temp file was already closed when it joined them; a 512 MiB upload
// completes), and reads the whole object for every range it serves. On a failed upload the
// script prints the server's log tail (successful requests left out) and `free -m`.
//
// Needs: built packages (`pnpm -r run build`), `pnpm install` (s3rver is test-utils' dependency),
// zstd; with S3_SERVER=moto, moto_server and awscli (`aws`, to make the bucket).
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:http';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const MiB = 1024 * 1024;
const SIZE = Number(process.env.SIZE_MIB ?? 3072) * MiB;
const STEPS = (process.env.STEPS ?? 'upload,s3fetch,fetch,compress,hash').split(',');
const ID = '99.20261127.0';
const ARCH = 'x86_64';
const BUDGET_MB = 300;
const S3_SERVER = process.env.S3_SERVER ?? 's3rver';
const BASELINE = process.env.COSA_BASELINE;
const uptime = () => execFileSync('uptime').toString().trim().replace(/^.*load average/, 'load average');
const loadBefore = uptime();

const scratch = await mkdtemp(join(process.env.BENCH_TMP ?? tmpdir(), 'cosa-bench-memory-'));
const children = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

/** Runs the cosa CLI; resolves to wall seconds and the process's peak RSS (MiB) from VmHWM. */
function cosa(args, env = {}, cli = join(repo, 'packages/cli/bin/cosa.js')) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(c);
    let err = '';
    let hwmKiB = 0;
    c.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${c.pid}/status`, 'utf8'));
        if (m) hwmKiB = Math.max(hwmKiB, Number(m[1]));
      } catch {
        // gone
      }
    }, 50);
    c.once('close', (code) => {
      clearInterval(poll);
      if (code !== 0) reject(new Error(`cosa ${args.join(' ')} failed (${code}): ${err}`));
      else resolve({ secs: (performance.now() - t0) / 1000, rssMiB: hwmKiB / 1024 });
    });
  });
}

/** Writes `size` bytes of real data (the files under /usr, cycled) to `path`; returns the sha256. */
async function realImage(path, size) {
  const files = execFileSync('sh', ['-c', 'find /usr/lib /usr/bin /usr/share -xdev -type f -size +4k 2>/dev/null | head -20000'], { maxBuffer: 64 * MiB })
    .toString().split('\n').filter(Boolean);
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  let left = size;
  for (let i = 0; left > 0; i = (i + 1) % files.length) {
    let data;
    try {
      data = await readFile(files[i]);
    } catch {
      continue;
    }
    const chunk = data.subarray(0, Math.min(data.length, left));
    hash.update(chunk);
    left -= chunk.length;
    if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
  return hash.digest('hex');
}

async function hashSecs(path) {
  const t0 = performance.now();
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(c);
  h.digest('hex');
  return (performance.now() - t0) / 1000;
}

// --- the build ------------------------------------------------------------------------------
const workdir = join(scratch, 'work');
const dir = join(workdir, 'builds', ID, ARCH);
await mkdir(dir, { recursive: true });
await mkdir(join(workdir, 'tmp'), { recursive: true });
await mkdir(join(workdir, 'src', 'config'), { recursive: true }); // compress wants a workdir shape
const metal = `benchos-${ID}-metal.${ARCH}.raw`;
process.stderr.write(`writing a ${SIZE / MiB} MiB image of real data…\n`);
const t0 = performance.now();
const sha256 = await realImage(join(dir, metal), SIZE);
const writeSecs = (performance.now() - t0) / 1000;
// meta.json wants an ostree artifact: a small one.
const ostree = `benchos-${ID}-ostree.${ARCH}.tar`;
const ostreeData = Buffer.alloc(MiB, 7);
const ostreeSha = createHash('sha256').update(ostreeData).digest('hex');
await writeFile(join(dir, ostree), ostreeData);
const meta = {
  buildid: ID, name: 'benchos', 'ostree-commit': 'c'.repeat(64), 'ostree-timestamp': '2026-11-27T00:00:00Z', 'ostree-version': ID,
  'coreos-assembler.basearch': ARCH, images: { metal: { path: metal, sha256, size: SIZE }, ostree: { path: ostree, sha256: ostreeSha, size: ostreeData.length } },
};
await writeFile(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 4)}\n`);
await writeFile(join(workdir, 'builds', 'builds.json'), `${JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: ID, arches: [ARCH] }] }, null, 4)}\n`);
await symlink(ID, join(workdir, 'builds', 'latest'));

const rows = [];
// --- moto_server ----------------------------------------------------------------------------
let s3env;
let s3log = '';
if (STEPS.includes('upload') || STEPS.includes('s3fetch')) {
  const log = join(scratch, `${S3_SERVER}.log`);
  s3log = log;
  let port;
  if (S3_SERVER === 's3rver') {
    const dir = join(scratch, 's3rver');
    await mkdir(dir);
    const child = spawn(process.execPath, [join(repo, 'packages/test-utils/src/_s3-child.mjs'), dir, '1', 'bench'], {
      env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' }, stdio: ['ignore', 'pipe', openSync(log, 'w')],
    });
    children.push(child);
    port = await new Promise((resolve, reject) => {
      child.stdout.once('data', (d) => {
        child.stdout.resume();
        resolve(JSON.parse(String(d).split('\n')[0]).port);
      });
      child.once('exit', (c) => reject(new Error(`s3rver exited (${c}): ${readFileSync(log, 'utf8')}`)));
    });
    s3env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1', AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` };
  } else {
    const moto = spawn('moto_server', ['-H', '127.0.0.1', '-p', '0'], { stdio: ['ignore', openSync(log, 'w'), openSync(log, 'a')] });
    children.push(moto);
    for (let i = 0; i < 600 && !port; i++) {
      await new Promise((r) => setTimeout(r, 100));
      port = Number(/Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(log, 'utf8'))?.[1]) || undefined;
    }
    if (!port) throw new Error('moto_server did not start');
    s3env = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1', AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` };
    execFileSync('sh', ['-c', 'env -u AWS_CA_BUNDLE aws s3 mb s3://bench'], { env: { ...process.env, ...s3env }, stdio: 'ignore' });
  }
}
if (STEPS.includes('upload')) {
  const r = await cosa(['--workdir', workdir, 'buildupload', 's3', 'bench/m'], s3env).catch((e) => {
    // Say why: the server's last words and the machine's memory (moto needs RAM to complete).
    const tail = readFileSync(s3log, 'utf8').split('\n').filter((l) => !/ HTTP\/1\.1" 20\d /.test(l)).slice(-25).join('\n');
    process.stderr.write(`\n${S3_SERVER} log (tail, successful requests left out):\n${tail}\n\nfree -m:\n${execFileSync('free', ['-m']).toString()}\n`);
    throw e;
  });
  rows.push([`buildupload s3 (${S3_SERVER === 's3rver' ? 's3rver' : 'moto_server'}), raw image`, r]);
}
if (STEPS.includes('s3fetch')) {
  // Back from the same S3 server: one large artifact alone, so one GET that is split into up to 4
  // ranged streams when it runs below 128 MiB/s (RangeSplit), each written
  // from the lean reader's buffers straight into the file, the sha256 in a thread behind them.
  if (!STEPS.includes('upload')) await cosa(['--workdir', workdir, 'buildupload', 's3', 'bench/m'], s3env);
  for (const [who, cli] of [['', undefined], ...(BASELINE ? [[' (baseline cosa)', BASELINE]] : [])]) {
    const dst = join(scratch, 'fetched-s3');
    await mkdir(dst);
    const r = await cosa(['--workdir', dst, 'buildfetch', '--url', 's3://bench/m', '--arch', ARCH, '--artifact', 'metal'], s3env, cli);
    if ((await stat(join(dst, 'builds', ID, ARCH, metal))).size !== SIZE) throw new Error('fetched image has the wrong size');
    rows.push([`buildfetch --artifact metal from S3 (${S3_SERVER === 's3rver' ? 's3rver' : 'moto_server'}; one GET, up to 4 ranges when slow, sha256 on the way)${who}`, r]);
    await rm(dst, { recursive: true, force: true });
  }
}
if (STEPS.includes('fetch')) {
  // Over HTTP from a static server in this process (byte ranges cost it nothing; moto_server
  // reads the whole object for every range it serves, which makes a 3 GiB ranged fetch from it
  // take hours; see docs/benchmarks.md).
  const root = join(workdir, 'builds');
  const server = createServer(async (req, res) => {
    const path = join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const st = await stat(path).catch(() => undefined);
    if (!path.startsWith(root) || !st?.isFile()) return res.writeHead(404).end();
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m && m[2] ? Math.min(Number(m[2]), st.size - 1) : st.size - 1;
    res.writeHead(m ? 206 : 200, { 'content-length': end - start + 1, ...(m ? { 'content-range': `bytes ${start}-${end}/${st.size}` } : {}) });
    createReadStream(path, { start, end }).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  for (const [who, cli] of [['', undefined], ...(BASELINE ? [[' (baseline cosa)', BASELINE]] : [])]) {
    const dst = join(scratch, 'fetched');
    await mkdir(dst);
    const r = await cosa(['--workdir', dst, 'buildfetch', '--url', `http://127.0.0.1:${server.address().port}`, '--arch', ARCH, '--artifact', 'metal'], {}, cli);
    if ((await stat(join(dst, 'builds', ID, ARCH, metal))).size !== SIZE) throw new Error('fetched image has the wrong size');
    rows.push([`buildfetch --artifact metal over HTTP (parallel ranges, sha256 on the way)${who}`, r]);
    await rm(dst, { recursive: true, force: true });
  }
  server.close();
}
if (STEPS.includes('compress')) {
  const r = await cosa(['--workdir', workdir, 'compress', '--compressor', 'zstd', '--fast', '--artifact', 'metal']);
  const names = await readdir(dir);
  rows.push([`compress --compressor zstd --fast (${names.filter((n) => n.includes('metal')).join(', ')})`, r]);
}
let hashLine = '';
if (STEPS.includes('hash')) {
  // Real data: the image itself if it is still there, else write it again.
  const real = existsSync(join(dir, metal)) ? join(dir, metal) : join(scratch, 'real.raw');
  if (!existsSync(real)) await realImage(real, SIZE);
  const sparse = join(scratch, 'sparse.raw');
  execFileSync('sh', ['-c', `truncate -s ${SIZE} ${sparse} && head -c ${64 * MiB} ${real} | dd of=${sparse} conv=notrunc status=none`]);
  const hs = await hashSecs(sparse);
  const hr = await hashSecs(real);
  const alloc = Number(execFileSync('du', ['-k', sparse]).toString().split('\t')[0]) / 1024;
  hashLine = `sha256 of ${SIZE / MiB} MiB (Node, streamed): real data ${hr.toFixed(1)} s (${(SIZE / MiB / hr).toFixed(0)} MiB/s); sparse file with ${alloc.toFixed(0)} MiB allocated ${hs.toFixed(1)} s (${(SIZE / MiB / hs).toFixed(0)} MiB/s).`;
}
const loadAfter = uptime();

const lines = [
  `Image: ${SIZE / MiB} MiB raw of real data (files under /usr, cycled; written in ${writeSecs.toFixed(0)} s). Peak RSS = VmHWM of the cosa process (not its compressor children). Budget ${BUDGET_MB} MB (${(BUDGET_MB * 1e6 / MiB).toFixed(0)} MiB).`,
  `Load: before ${loadBefore}; after ${loadAfter}. ${execFileSync('nproc').toString().trim()} cores, shared.`,
  '',
  '| step | wall | peak RSS of cosa | within budget |',
  '|---|---:|---:|---|',
  ...rows.map(([what, r]) => `| ${what} | ${r.secs.toFixed(1)} s | ${r.rssMiB.toFixed(0)} MiB | ${r.rssMiB * MiB <= BUDGET_MB * 1e6 ? 'yes' : '**no**'} |`),
  ...(hashLine ? ['', hashLine] : []),
];
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(0); // the exit handler stops moto_server and removes the scratch dir
