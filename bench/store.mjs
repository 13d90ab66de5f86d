#!/usr/bin/env node
// Store benchmark (#16): upload and download of a fake ~1 GiB build (random data) over loopback
// against ONE moto_server, cosa vs awscli vs rclone in the same run; bytes on the wire for a
// re-upload of the unchanged build (a counting TCP proxy in front of the server); HTTP fetch
// (nginx) vs curl; peak RSS of the cosa process; the machine's load (uptime) before and after.
// Prints a table of medians and ratios and writes it into the "Transfers and memory (#16)"
// section of docs/benchmarks.md (between the store-bench markers).
//
//   node bench/store.mjs            # RUNS=3 SIZE_MIB=1024 by default
//   RUNS=1 SIZE_MIB=256 node bench/store.mjs
//   COSA_BASELINE=/work/main/packages/cli/bin/cosa.js node bench/store.mjs   # adds rows for another cosa (A/B)
//   ONLY=upload node bench/store.mjs   # the upload rows only (and the unchanged re-upload); prints, leaves docs/ alone
//   ONLY=download node bench/store.mjs # the S3 download rows only: the build is uploaded once (by cosa), then
//                                      # cosa, awscli, rclone (and COSA_BASELINE) fetch it RUNS times; prints, leaves docs/ alone
//
// rclone runs with its defaults (1.60: --transfers 4, --multi-thread-streams 4 above --multi-thread-cutoff
// 250M, so each large artifact comes in 4 ranged streams); awscli with its defaults (10 threads, 8 MB
// ranges). Like with like: cosa checks every artifact's sha256 against meta.json, fsyncs it and
// renames it into place; rclone checks no hash of an object uploaded in parts (its ETag is no MD5,
// and S3 keeps no sha256 it could compare) and does not fsync; awscli checks nothing either. So the
// download rows also time "rclone, then openssl dgst -sha256 of what it wrote" (the digests
// compared with meta.json's): the same guarantee as cosa's, by the fastest hasher on the machine.
//
// Needs: built packages (`pnpm -r run build`; schema, store and cli are built here when dist/ is
// missing), moto_server, aws (awscli, first on PATH), rclone, openssl, curl, nginx, /usr/bin/time.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, openSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const RUNS = Number(process.env.RUNS ?? 3);
const SIZE_MIB = Number(process.env.SIZE_MIB ?? 1024);
const MiB = 1024 * 1024;
const AWS = execFileSync('sh', ['-c', 'command -v aws']).toString().trim();
const BASELINE = process.env.COSA_BASELINE;
const ONLY_UPLOAD = process.env.ONLY === 'upload';
const ONLY_DOWNLOAD = process.env.ONLY === 'download';
const uptime = () => execFileSync('uptime').toString().trim().replace(/^.*load average/, 'load average');
const loadBefore = uptime();
const versions = {
  aws: execFileSync(AWS, ['--version']).toString().trim().split(' ')[0],
  rclone: execFileSync('rclone', ['version']).toString().split('\n')[0],
  moto: `moto_server ${execFileSync('sh', ['-c', "python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || true"]).toString().trim()}`,
};
const ID = '99.20261126.0';
const ARCH = 'x86_64';

for (const p of ['schema', 'store', 'cli']) {
  if (!existsSync(join(repo, 'packages', p, 'dist', 'index.js'))) {
    execFileSync('pnpm', ['--filter', `@cosa/${p}`, 'run', 'build'], { cwd: repo, stdio: 'inherit' });
  }
}

const scratch = await mkdtemp(join(tmpdir(), 'cosa-bench-store-'));
const children = [];
const cleanup = async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await rm(scratch, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => void cleanup().then(() => process.exit(130)));
// Also on a failure (a rejected top-level await ends the process): no server, no scratch left.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Runs argv under /usr/bin/time; resolves to seconds, peak RSS (MiB) and stdout. Asynchronous: the
 * counting proxy and the servers' log pipes live in this process and must keep moving meanwhile.
 */
function timed(argv, env = {}, cwd = scratch) {
  return new Promise((resolve, reject) => {
    const c = spawn('/usr/bin/time', ['-f', '__TIME__ %e %M', ...argv], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr = (stderr + d).slice(-100_000)));
    c.once('error', reject);
    c.once('close', (status) => {
      const m = /__TIME__ ([\d.]+) (\d+)/.exec(stderr);
      if (status !== 0 || !m) reject(new Error(`${argv.join(' ')} failed (${status}):\n${stderr.slice(-2000)}`));
      else resolve({ secs: Number(m[1]), rssMiB: Number(m[2]) / 1024, stdout });
    });
  });
}

// --- the fake build -------------------------------------------------------------------------
const workdir = join(scratch, 'work');
const buildDir = join(workdir, 'builds', ID, ARCH);
await mkdir(buildDir, { recursive: true });
await mkdir(join(workdir, 'tmp'), { recursive: true });
const parts = { ostree: 0.25, qemu: 0.375, metal: 0.375 };
const images = {};
for (const [key, frac] of Object.entries(parts)) {
  const size = Math.round((SIZE_MIB * MiB * frac) / MiB) * MiB;
  const path = `benchos-${ID}-${key}.${ARCH}.${key === 'ostree' ? 'tar' : key === 'qemu' ? 'qcow2' : 'raw'}`;
  const hash = createHash('sha256');
  const out = createWriteStream(join(buildDir, path));
  for (let left = size; left > 0; left -= 4 * MiB) {
    const chunk = randomBytes(Math.min(4 * MiB, left));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
  images[key] = { path, sha256: hash.digest('hex'), size };
}
const meta = {
  buildid: ID, name: 'benchos', 'ostree-commit': 'b'.repeat(64), 'ostree-timestamp': '2026-11-26T00:00:00Z', 'ostree-version': ID, images,
};
await writeFile(join(buildDir, 'meta.json'), `${JSON.stringify(meta, null, 4)}\n`);
await writeFile(join(buildDir, 'commitmeta.json'), '{}\n');
await writeFile(join(workdir, 'builds', 'builds.json'), `${JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: ID, arches: [ARCH] }] }, null, 4)}\n`);
await symlink(ID, join(workdir, 'builds', 'latest'));
const totalBytes = Object.values(images).reduce((n, i) => n + i.size, 0);

// --- moto_server, and a counting TCP proxy in front of it for the re-upload ---------------
const motoLog = join(scratch, 'moto.log');
const moto = spawn('moto_server', ['-H', '127.0.0.1', '-p', '0'], { env: { ...process.env, PYTHONUNBUFFERED: '1' }, stdio: ['ignore', openSync(motoLog, 'w'), openSync(motoLog, 'a')] });
children.push(moto);
let motoPort;
for (let i = 0; i < 600 && !motoPort; i++) {
  if (moto.exitCode !== null) throw new Error(`moto_server exited: ${await readFile(motoLog, 'utf8')}`);
  await new Promise((r) => setTimeout(r, 100));
  motoPort = Number(/Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(await readFile(motoLog, 'utf8'))?.[1]) || undefined;
}
if (!motoPort) throw new Error('moto_server did not start within 60 s');
const endpoint = `http://127.0.0.1:${motoPort}`;
let wireBytes = 0;
const proxy = createServer((client) => {
  const up = connect(motoPort, '127.0.0.1');
  client.on('data', (c) => (wireBytes += c.length));
  client.pipe(up).pipe(client);
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
const proxyEndpoint = `http://127.0.0.1:${proxy.address().port}`;
const s3env = {
  AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1',
  AWS_ENDPOINT_URL: endpoint, AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED', AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
};
const rcloneEnv = {
  RCLONE_CONFIG_BENCH_TYPE: 's3', RCLONE_CONFIG_BENCH_PROVIDER: 'Other', RCLONE_CONFIG_BENCH_ENDPOINT: endpoint,
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: 'testing', RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: 'testing', RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
};
const cosa = ['node', join(repo, 'packages/cli/bin/cosa.js')];
const env = (e) => ['env', '-u', 'AWS_CA_BUNDLE', ...Object.entries(e).map(([k, v]) => `${k}=${v}`)];
const dropPrefix = (prefix) => timed([...env(s3env), AWS, '--endpoint-url', endpoint, 's3', 'rm', '--recursive', '--only-show-errors', `s3://bench/${prefix}`]);
await timed([...env(s3env), AWS, '--endpoint-url', endpoint, 's3', 'mb', 's3://bench']);
const baseline = BASELINE ? ['node', BASELINE] : undefined;

const results = {};
const add = (name, v) => (results[name] ??= []).push(v);

/** Checks `openssl dgst -sha256` output (one line per file, in order) against the images' sha256. */
function verified(stdout, imgs) {
  const got = stdout.split('\n').map((l) => /= ([0-9a-f]{64})$/.exec(l.trim())?.[1]).filter(Boolean);
  if (got.join() !== imgs.map((i) => i.sha256).join()) throw new Error(`rclone + openssl: the files do not match meta.json:\n${stdout}`);
}

const fetchInto = (cli, dst, prefix) => timed([...cli, '--workdir', dst, 'buildfetch', '--url', `s3://bench/${prefix}`, '--arch', ARCH, '--artifact', 'all'], s3env);

if (ONLY_DOWNLOAD) await timed([...cosa, '--workdir', workdir, 'buildupload', '--json', 's3', 'bench/cosa-dl'], s3env);
for (let run = 0; run < RUNS; run++) {
  process.stderr.write(`run ${run + 1}/${RUNS} (${uptime()})\n`);
  const src = ONLY_DOWNLOAD ? 'cosa-dl' : `cosa-${run}`;
  if (!ONLY_DOWNLOAD) {
    // Upload: each tool to its own prefix; the order rotates so no tool always goes first.
    const uploads = {
      cosa: () => timed([...cosa, '--workdir', workdir, 'buildupload', '--json', 's3', `bench/cosa-${run}`], s3env),
      awscli: () => timed([...env(s3env), AWS, '--endpoint-url', endpoint, 's3', 'cp', '--recursive', '--only-show-errors', join(workdir, 'builds', ID), `s3://bench/aws-${run}/${ID}`]),
      rclone: () => timed([...env(rcloneEnv), 'rclone', 'copy', join(workdir, 'builds', ID), `bench:bench/rclone-${run}/${ID}`]),
      ...(baseline ? { baseline: () => timed([...baseline, '--workdir', workdir, 'buildupload', '--json', 's3', `bench/base-${run}`], s3env) } : {}),
    };
    const order = Object.keys(uploads);
    for (let i = 0; i < order.length; i++) {
      const k = order[(i + run) % order.length];
      const r = await uploads[k]();
      add(`upload ${k}`, r.secs);
      if (k === 'cosa' || k === 'baseline') add(`rss upload ${k}`, r.rssMiB);
    }

    // Re-upload of the unchanged build, through the counting proxy: bytes really sent.
    wireBytes = 0;
    const again = await timed([...cosa, '--workdir', workdir, 'buildupload', '--json', 's3', `bench/cosa-${run}`], { ...s3env, AWS_ENDPOINT_URL: proxyEndpoint });
    add('re-upload cosa wire bytes', wireBytes);
    const doc = again.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((e) => e.event === 'result');
    add('re-upload cosa', again.secs);
    add('re-upload cosa bytes sent', doc.bytesSent);
    wireBytes = 0;
    const syncA = await timed([...env({ ...s3env, AWS_ENDPOINT_URL: proxyEndpoint }), AWS, '--endpoint-url', proxyEndpoint, 's3', 'sync', '--only-show-errors', join(workdir, 'builds', ID), `s3://bench/aws-${run}/${ID}`]);
    add('re-upload awscli sync', syncA.secs);
    add('re-upload awscli wire bytes', wireBytes);

    if (baseline) await dropPrefix(`base-${run}`);
    if (ONLY_UPLOAD) {
      for (const p of [`cosa-${run}`, `aws-${run}`, `rclone-${run}`]) await dropPrefix(p);
      process.stderr.write(`so far: ${JSON.stringify(results)}\n`);
      continue;
    }
  }
  // Download of the same objects (the cosa upload) by each tool, order rotating.
  const downloads = {
    cosa: async () => {
      const dst = join(scratch, `dl-cosa-${run}`);
      await mkdir(dst);
      const r = await fetchInto(cosa, dst, src);
      if (!existsSync(join(dst, 'builds', ID, ARCH, images.metal.path))) throw new Error('cosa buildfetch fetched nothing');
      add('rss download cosa', r.rssMiB);
      await rm(dst, { recursive: true, force: true });
      return r;
    },
    awscli: async () => {
      const dst = join(scratch, `dl-aws-${run}`);
      const r = await timed([...env(s3env), AWS, '--endpoint-url', endpoint, 's3', 'cp', '--recursive', '--only-show-errors', `s3://bench/${src}/${ID}`, dst]);
      await rm(dst, { recursive: true, force: true });
      return r;
    },
    rclone: async () => {
      const dst = join(scratch, `dl-rclone-${run}`);
      const r = await timed([...env(rcloneEnv), 'rclone', 'copy', `bench:bench/${src}/${ID}`, dst]);
      await rm(dst, { recursive: true, force: true });
      return r;
    },
    'rclone+sha256': async () => {
      const dst = join(scratch, `dl-rclone-v-${run}`);
      const files = Object.values(images).map((i) => `'${join(dst, ARCH, i.path)}'`).join(' ');
      const r = await timed([...env(rcloneEnv), 'sh', '-c', `rclone copy bench:bench/${src}/${ID} '${dst}' && openssl dgst -sha256 ${files}`]);
      verified(r.stdout, Object.values(images));
      await rm(dst, { recursive: true, force: true });
      return r;
    },
    ...(baseline
      ? {
          baseline: async () => {
            const dst = join(scratch, `dl-base-${run}`);
            await mkdir(dst);
            const r = await fetchInto(baseline, dst, src);
            await rm(dst, { recursive: true, force: true });
            return r;
          },
        }
      : {}),
  };
  // One large artifact alone (`--artifact metal`): one GET, split into parallel ranges only when it runs below 128 MiB/s.
  const metalKey = `${src}/${ID}/${ARCH}/${images.metal.path}`;
  Object.assign(downloads, {
    'one cosa': async () => {
      const dst = join(scratch, `one-cosa-${run}`);
      await mkdir(dst);
      const r = await timed([...cosa, '--workdir', dst, 'buildfetch', '--url', `s3://bench/${src}`, '--arch', ARCH, '--artifact', 'metal'], s3env);
      if (!existsSync(join(dst, 'builds', ID, ARCH, images.metal.path))) throw new Error('cosa buildfetch fetched nothing');
      add('rss download one cosa', r.rssMiB);
      await rm(dst, { recursive: true, force: true });
      return r;
    },
    'one awscli': async () => {
      const r = await timed([...env(s3env), AWS, '--endpoint-url', endpoint, 's3', 'cp', '--only-show-errors', `s3://bench/${metalKey}`, join(scratch, 'one-aws')]);
      await rm(join(scratch, 'one-aws'), { force: true });
      return r;
    },
    'one rclone': async () => {
      const r = await timed([...env(rcloneEnv), 'rclone', 'copyto', `bench:bench/${metalKey}`, join(scratch, 'one-rclone')]);
      await rm(join(scratch, 'one-rclone'), { force: true });
      return r;
    },
    'one rclone+sha256': async () => {
      const out = join(scratch, 'one-rclone-v');
      const r = await timed([...env(rcloneEnv), 'sh', '-c', `rclone copyto bench:bench/${metalKey} '${out}' && openssl dgst -sha256 '${out}'`]);
      verified(r.stdout, [images.metal]);
      await rm(out, { force: true });
      return r;
    },
    ...(baseline
      ? {
          'one baseline': async () => {
            const dst = join(scratch, `one-base-${run}`);
            await mkdir(dst);
            const r = await timed([...baseline, '--workdir', dst, 'buildfetch', '--url', `s3://bench/${src}`, '--arch', ARCH, '--artifact', 'metal'], s3env);
            await rm(dst, { recursive: true, force: true });
            return r;
          },
        }
      : {}),
  });
  const dorder = Object.keys(downloads);
  for (let i = 0; i < dorder.length; i++) {
    const k = dorder[(i + run) % dorder.length];
    add(`download ${k}`, (await downloads[k]()).secs);
  }
  if (!ONLY_DOWNLOAD) for (const p of [`cosa-${run}`, `aws-${run}`, `rclone-${run}`]) await dropPrefix(p);
  process.stderr.write(`so far: ${JSON.stringify(results)}\n`);
}
const loadAfterS3 = uptime();
if (ONLY_DOWNLOAD) {
  // Download rows only (ONLY=download): printed, docs/benchmarks.md left alone.
  const mm = (k) => median(results[k]);
  const raw = (k) => results[k].map((x) => x.toFixed(1)).join(', ');
  const row = (what, k, ref, size) => `| ${what} | ${mm(k).toFixed(1)} s [${raw(k)}] | ${(size / MiB / mm(k)).toFixed(0)} MiB/s | ${(mm(k) / mm(ref)).toFixed(2)}× |`;
  const one = images.metal.size;
  const out = [
    `${RUNS} run(s), ${(totalBytes / MiB).toFixed(0)} MiB build, ${versions.moto}, ${versions.aws}, ${versions.rclone}; load before: ${loadBefore}; after: ${loadAfterS3}`,
    '',
    '| download (S3, moto_server) | median [runs] | throughput | time of this row / cosa |',
    '|---|---|---|---|',
    row('build: cosa buildfetch --artifact all (sha256 checked)', 'download cosa', 'download cosa', totalBytes),
    ...(baseline ? [row(`build: baseline cosa (${BASELINE})`, 'download baseline', 'download cosa', totalBytes)] : []),
    row('build: aws s3 cp --recursive', 'download awscli', 'download cosa', totalBytes),
    row('build: rclone copy (no hash checked, no fsync)', 'download rclone', 'download cosa', totalBytes),
    row('build: rclone copy, then openssl dgst -sha256 (checked against meta.json)', 'download rclone+sha256', 'download cosa', totalBytes),
    row('one artifact (metal): cosa buildfetch --artifact metal', 'download one cosa', 'download one cosa', one),
    ...(baseline ? [row('one artifact: baseline cosa', 'download one baseline', 'download one cosa', one)] : []),
    row('one artifact: aws s3 cp', 'download one awscli', 'download one cosa', one),
    row('one artifact: rclone copyto (no hash checked, no fsync)', 'download one rclone', 'download one cosa', one),
    row('one artifact: rclone copyto, then openssl dgst -sha256', 'download one rclone+sha256', 'download one cosa', one),
    '',
    `Peak RSS of cosa (median): build ${mm('rss download cosa').toFixed(0)} MiB, one artifact ${mm('rss download one cosa').toFixed(0)} MiB.`,
  ];
  process.stdout.write(`${out.join('\n')}\n\nraw: ${JSON.stringify(results)}\n`);
  await cleanup();
  process.exit(0);
}
if (ONLY_UPLOAD) {
  // Upload rows only (ONLY=upload): printed, docs/benchmarks.md left alone.
  const mm = (k) => median(results[k]);
  const up = (what, k) => `| ${what} | ${mm(k).toFixed(1)} s | ${(totalBytes / MiB / mm(k)).toFixed(0)} MiB/s | ${k === 'upload cosa' ? '' : `${(mm(k) / mm('upload cosa')).toFixed(2)}x`} |`;
  const out = [
    `${RUNS} run(s), ${(totalBytes / MiB).toFixed(0)} MiB build, ${versions.moto}, ${versions.aws}; load before: ${loadBefore}; after: ${loadAfterS3}`,
    '',
    '| upload | median | throughput | time of this row / cosa |',
    '|---|---|---|---|',
    up('cosa buildupload s3', 'upload cosa'),
    ...(baseline ? [up(`baseline cosa (${BASELINE})`, 'upload baseline')] : []),
    up('aws s3 cp --recursive', 'upload awscli'),
    up('rclone copy', 'upload rclone'),
    `| re-upload unchanged: cosa (bytes on the wire ${mm('re-upload cosa wire bytes')}, object bodies ${mm('re-upload cosa bytes sent')}) | ${mm('re-upload cosa').toFixed(2)} s | | |`,
    '',
    `Peak RSS of the upload (median): cosa ${mm('rss upload cosa').toFixed(0)} MiB${baseline ? `, baseline ${mm('rss upload baseline').toFixed(0)} MiB` : ''}.`,
  ];
  process.stdout.write(`${out.join('\n')}\n\nraw: ${JSON.stringify(results)}\n`);
  await cleanup();
  process.exit(0);
}

// --- HTTP: nginx serving a store laid out like the bucket ----------------------------------
const httpRoot = join(scratch, 'http');
await mkdir(join(httpRoot, ID), { recursive: true });
execFileSync('cp', ['-r', buildDir, join(httpRoot, ID, ARCH)]);
execFileSync('cp', [join(workdir, 'builds', 'builds.json'), httpRoot]);
const httpPort = await freePort();
const ngx = join(scratch, 'nginx');
await mkdir(ngx);
await writeFile(
  join(ngx, 'nginx.conf'),
  `daemon off; worker_processes 1; ${process.getuid?.() === 0 ? 'user root;' : ''} pid ${ngx}/nginx.pid; error_log ${ngx}/error.log;
events {}
http { access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path ${ngx}/cb; proxy_temp_path ${ngx}/p; fastcgi_temp_path ${ngx}/f; uwsgi_temp_path ${ngx}/u; scgi_temp_path ${ngx}/s;
  server { listen 127.0.0.1:${httpPort}; root ${httpRoot}; } }
`,
);
const nginx = spawn('nginx', ['-c', join(ngx, 'nginx.conf'), '-p', ngx], { stdio: 'inherit' });
children.push(nginx);
for (let i = 0; i < 50; i++) {
  if (spawnSync('curl', ['-sf', '-o', '/dev/null', `http://127.0.0.1:${httpPort}/builds.json`]).status === 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
for (let run = 0; run < RUNS; run++) {
  const dst = join(scratch, `http-cosa-${run}`);
  await mkdir(dst);
  const h = await timed([...cosa, '--workdir', dst, 'buildfetch', '--url', `http://127.0.0.1:${httpPort}`, '--arch', ARCH, '--artifact', 'all']);
  if (!existsSync(join(dst, 'builds', ID, ARCH, images.metal.path))) throw new Error('cosa buildfetch over HTTP fetched nothing');
  add('http fetch cosa (sha256 checked)', h.secs);
  add('rss http fetch cosa', h.rssMiB);
  await rm(dst, { recursive: true, force: true });
  const dstC = join(scratch, `http-curl-${run}`);
  await mkdir(dstC);
  const urls = Object.values(images).flatMap((i) => ['-o', join(dstC, i.path), `http://127.0.0.1:${httpPort}/${ID}/${ARCH}/${i.path}`]);
  add('http fetch curl', (await timed(['curl', '-sf', ...urls])).secs);
  add('http fetch curl + sha256sum', (await timed(['sh', '-c', `curl -sf ${urls.map((u) => `'${u}'`).join(' ')} && sha256sum ${dstC}/*`])).secs);
  await rm(dstC, { recursive: true, force: true });
}
nginx.kill('SIGTERM');
moto.kill('SIGTERM');
proxy.close();
const loadAfter = uptime();
await cleanup();

// --- report ---------------------------------------------------------------------------------
const m = (k) => median(results[k]);
const mibs = (secs) => `${(totalBytes / MiB / secs).toFixed(0)} MiB/s`;
const row = (what, k, ref) =>
  `| ${what} | ${m(k).toFixed(2)} s | ${mibs(m(k))} | ${ref ? `${(m(k) / m(ref)).toFixed(2)}×` : ''} |`;
const rowOne = (what, k, ref) =>
  `| ${what} | ${m(k).toFixed(2)} s | ${(images.metal.size / MiB / m(k)).toFixed(0)} MiB/s | ${ref ? `${(m(k) / m(ref)).toFixed(2)}×` : ''} |`;
const ratio = (k, ref) => `${(m(k) / m(ref)).toFixed(2)}×`;
const lines = [
  `Build of ${(totalBytes / MiB).toFixed(0)} MiB of random data (3 artifacts + metadata), one ${versions.moto} on 127.0.0.1 for every S3 client, ${RUNS} run(s), median; `,
  `speed-up = that row's time / cosa's time (> 1: cosa is faster). ${versions.aws} (${AWS}), ${versions.rclone}. Machine: ${execFileSync('nproc').toString().trim()} cores, shared.`,
  `Load: before ${loadBefore}; after the S3 rows ${loadAfterS3}; at the end ${loadAfter}.`,
  '',
  '| operation | median | throughput | speed-up of cosa vs this row |',
  '|---|---|---|---|',
  row('upload: cosa buildupload s3', 'upload cosa'),
  row('upload: aws s3 cp --recursive', 'upload awscli', 'upload cosa'),
  row('upload: rclone copy', 'upload rclone', 'upload cosa'),
  row('download: cosa buildfetch --artifact all (sha256 checked)', 'download cosa'),
  row('download: aws s3 cp --recursive', 'download awscli', 'download cosa'),
  row('download: rclone copy (no hash checked, no fsync)', 'download rclone', 'download cosa'),
  row('download: rclone copy, then openssl dgst -sha256', 'download rclone+sha256', 'download cosa'),
  ...(baseline ? [row(`download: baseline cosa (${BASELINE})`, 'download baseline', 'download cosa')] : []),
  rowOne('one artifact (metal): cosa buildfetch --artifact metal', 'download one cosa'),
  rowOne('one artifact: aws s3 cp', 'download one awscli', 'download one cosa'),
  rowOne('one artifact: rclone copyto (no hash checked, no fsync)', 'download one rclone', 'download one cosa'),
  rowOne('one artifact: rclone copyto, then openssl dgst -sha256', 'download one rclone+sha256', 'download one cosa'),
  ...(baseline ? [rowOne(`one artifact: baseline cosa (${BASELINE})`, 'download one baseline', 'download one cosa')] : []),
  `| re-upload unchanged: cosa (bytes on the wire ${m('re-upload cosa wire bytes')}, of which object bodies ${m('re-upload cosa bytes sent')}) | ${m('re-upload cosa').toFixed(2)} s | | |`,
  `| re-upload unchanged: aws s3 sync (bytes on the wire ${m('re-upload awscli wire bytes')}) | ${m('re-upload awscli sync').toFixed(2)} s | | ${ratio('re-upload awscli sync', 're-upload cosa')} |`,
  row('HTTP (nginx): cosa buildfetch, sha256 checked', 'http fetch cosa (sha256 checked)'),
  row('HTTP (nginx): curl, no check', 'http fetch curl', 'http fetch cosa (sha256 checked)'),
  row('HTTP (nginx): curl + sha256sum', 'http fetch curl + sha256sum', 'http fetch cosa (sha256 checked)'),
  '',
  `Peak RSS of the cosa process (median): upload ${m('rss upload cosa').toFixed(0)} MiB, S3 download ${m('rss download cosa').toFixed(0)} MiB (one artifact in ranges: ${m('rss download one cosa').toFixed(0)} MiB), HTTP download ${m('rss http fetch cosa').toFixed(0)} MiB (budget 300 MB).`,
];
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
process.stdout.write(`\nraw: ${JSON.stringify(results)}\n`);

const docPath = join(repo, 'docs', 'benchmarks.md');
let doc = existsSync(docPath) ? await readFile(docPath, 'utf8') : '# Benchmarks\n';
const begin = '<!-- store-bench:begin -->';
const end = '<!-- store-bench:end -->';
const section = `${begin}\nMeasured with \`node bench/store.mjs\` on ${new Date().toISOString().slice(0, 16)}Z.\n\n${table}\n${end}`;
doc = doc.includes(begin) ? doc.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), section) : `${doc.trimEnd()}\n\n## Transfers and memory (#16)\n\n${section}\n`;
await mkdir(dirname(docPath), { recursive: true });
await writeFile(docPath, doc);
