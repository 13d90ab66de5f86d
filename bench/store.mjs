#!/usr/bin/env node
// Store benchmark: upload and download of a fake ~1 GiB build over loopback against s3rver,
// cosa vs awscli (Debian, /usr/bin/aws) vs rclone; re-upload of an unchanged build; HTTP fetch
// (nginx) vs curl; peak RSS of the cosa process. Prints a table of medians and ratios and
// writes it into the "store" section of docs/benchmarks.md.
//
//   node bench/store.mjs            # RUNS=3 SIZE_MIB=1024 by default
//   RUNS=1 SIZE_MIB=256 node bench/store.mjs
//
// Needs built packages (schema, store, cli: `pnpm --filter @cosa/<p> run build`; done here when
// dist/ is missing), /usr/bin/aws, rclone, curl, nginx, /usr/bin/time.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const RUNS = Number(process.env.RUNS ?? 3);
const SIZE_MIB = Number(process.env.SIZE_MIB ?? 1024);
const MiB = 1024 * 1024;
const AWS = '/usr/bin/aws';
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
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
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

/** Runs argv under /usr/bin/time; returns seconds, peak RSS (MiB) and stdout. */
function timed(argv, env = {}, cwd = scratch) {
  const r = spawnSync('/usr/bin/time', ['-f', '__TIME__ %e %M', ...argv], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 256 * MiB,
  });
  const m = /__TIME__ ([\d.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  return { secs: Number(m[1]), rssMiB: Number(m[2]) / 1024, stdout: r.stdout };
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

// --- s3rver (same child as the tests: conditional writes honoured) --------------------------
const s3dir = join(scratch, 's3rver');
await mkdir(s3dir);
const s3 = spawn(process.execPath, [join(repo, 'packages/test-utils/src/_s3-child.mjs'), s3dir, '1', 'bench'], {
  env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(s3);
const s3port = await new Promise((resolve) => createInterface({ input: s3.stdout }).once('line', (l) => resolve(JSON.parse(l).port)));
const endpoint = `http://127.0.0.1:${s3port}`;
const s3env = {
  AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1',
  AWS_ENDPOINT_URL: endpoint, AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED', AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
};
const rcloneEnv = {
  RCLONE_CONFIG_BENCH_TYPE: 's3', RCLONE_CONFIG_BENCH_PROVIDER: 'Other', RCLONE_CONFIG_BENCH_ENDPOINT: endpoint,
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: 'S3RVER', RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: 'S3RVER', RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
};
const cosa = ['node', join(repo, 'packages/cli/bin/cosa.js')];
const dropPrefix = (prefix) => rm(join(s3dir, 'bench', prefix), { recursive: true, force: true });
const env = (e) => ['env', '-u', 'AWS_CA_BUNDLE', ...Object.entries(e).map(([k, v]) => `${k}=${v}`)];

const results = {};
const add = (name, v) => (results[name] ??= []).push(v);

for (let run = 0; run < RUNS; run++) {
  process.stderr.write(`run ${run + 1}/${RUNS}\n`);
  // Upload.
  const up = timed([...cosa, '--workdir', workdir, 'buildupload', '--json', 's3', `bench/cosa-${run}`], s3env);
  add('upload cosa', up.secs);
  add('rss upload cosa', up.rssMiB);
  const upA = timed([...env(s3env), AWS, '--endpoint-url', endpoint, 's3', 'cp', '--recursive', '--only-show-errors', join(workdir, 'builds', ID), `s3://bench/aws-${run}/${ID}`]);
  add('upload awscli', upA.secs);
  const upR = timed([...env(rcloneEnv), 'rclone', 'copy', join(workdir, 'builds', ID), `bench:bench/rclone-${run}/${ID}`]);
  add('upload rclone', upR.secs);

  // Re-upload of the unchanged build.
  const again = timed([...cosa, '--workdir', workdir, 'buildupload', '--json', 's3', `bench/cosa-${run}`], s3env);
  const doc = JSON.parse(again.stdout.slice(again.stdout.lastIndexOf('\n{\n') + 1));
  add('re-upload cosa', again.secs);
  add('re-upload cosa bytes sent', doc.bytesSent);
  const syncA = timed([...env(s3env), AWS, '--endpoint-url', endpoint, 's3', 'sync', '--only-show-errors', join(workdir, 'builds', ID), `s3://bench/aws-${run}/${ID}`]);
  add('re-upload awscli sync', syncA.secs);

  // Download.
  const dst = join(scratch, `dl-cosa-${run}`);
  await mkdir(dst);
  const dl = timed([...cosa, '--workdir', dst, 'buildfetch', '--url', `s3://bench/cosa-${run}`, '--arch', ARCH, '--artifact', 'all'], s3env);
  if (!existsSync(join(dst, 'builds', ID, ARCH, images.metal.path))) throw new Error('cosa buildfetch fetched nothing');
  add('download cosa', dl.secs);
  add('rss download cosa', dl.rssMiB);
  await rm(dst, { recursive: true, force: true });
  const dstA = join(scratch, `dl-aws-${run}`);
  add('download awscli', timed([...env(s3env), AWS, '--endpoint-url', endpoint, 's3', 'cp', '--recursive', '--only-show-errors', `s3://bench/cosa-${run}/${ID}`, dstA]).secs);
  await rm(dstA, { recursive: true, force: true });
  const dstR = join(scratch, `dl-rclone-${run}`);
  add('download rclone', timed([...env(rcloneEnv), 'rclone', 'copy', `bench:bench/cosa-${run}/${ID}`, dstR]).secs);
  await rm(dstR, { recursive: true, force: true });
  await Promise.all([dropPrefix(`cosa-${run}`), dropPrefix(`aws-${run}`), dropPrefix(`rclone-${run}`)]);
  process.stderr.write(`so far: ${JSON.stringify(results)}\n`);
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
  const h = timed([...cosa, '--workdir', dst, 'buildfetch', '--url', `http://127.0.0.1:${httpPort}`, '--arch', ARCH, '--artifact', 'all']);
  if (!existsSync(join(dst, 'builds', ID, ARCH, images.metal.path))) throw new Error('cosa buildfetch over HTTP fetched nothing');
  add('http fetch cosa (sha256 checked)', h.secs);
  add('rss http fetch cosa', h.rssMiB);
  await rm(dst, { recursive: true, force: true });
  const dstC = join(scratch, `http-curl-${run}`);
  await mkdir(dstC);
  const urls = Object.values(images).flatMap((i) => ['-o', join(dstC, i.path), `http://127.0.0.1:${httpPort}/${ID}/${ARCH}/${i.path}`]);
  add('http fetch curl', timed(['curl', '-sf', ...urls]).secs);
  add('http fetch curl + sha256sum', timed(['sh', '-c', `curl -sf ${urls.map((u) => `'${u}'`).join(' ')} && sha256sum ${dstC}/*`]).secs);
  await rm(dstC, { recursive: true, force: true });
}
nginx.kill('SIGTERM');
s3.kill('SIGTERM');
await cleanup();

// --- report ---------------------------------------------------------------------------------
const m = (k) => median(results[k]);
const mibs = (secs) => `${(totalBytes / MiB / secs).toFixed(0)} MiB/s`;
const row = (what, k, ref) =>
  `| ${what} | ${m(k).toFixed(2)} s | ${mibs(m(k))} | ${ref ? `${(m(k) / m(ref)).toFixed(2)}×` : ''} |`;
const lines = [
  `Build of ${(totalBytes / MiB).toFixed(0)} MiB (3 artifacts + metadata), s3rver 3.7.1 on 127.0.0.1 (child process, conditional-write hook), ${RUNS} run(s), median; `,
  `speed-up = reference time / cosa time (> 1 means cosa is faster). Machine: ${execFileSync('nproc').toString().trim()} cores, shared.`,
  '',
  '| operation | median | throughput | speed-up of cosa vs this row |',
  '|---|---|---|---|',
  row('upload: cosa buildupload s3', 'upload cosa'),
  row('upload: aws s3 cp --recursive', 'upload awscli', 'upload cosa'),
  row('upload: rclone copy', 'upload rclone', 'upload cosa'),
  row('download: cosa buildfetch --artifact all', 'download cosa'),
  row('download: aws s3 cp --recursive', 'download awscli', 'download cosa'),
  row('download: rclone copy', 'download rclone', 'download cosa'),
  `| re-upload unchanged: cosa (bytes sent: ${m('re-upload cosa bytes sent')}) | ${m('re-upload cosa').toFixed(2)} s | | |`,
  `| re-upload unchanged: aws s3 sync | ${m('re-upload awscli sync').toFixed(2)} s | | ${(m('re-upload awscli sync') / m('re-upload cosa')).toFixed(2)}× |`,
  row('HTTP (nginx): cosa buildfetch, sha256 checked', 'http fetch cosa (sha256 checked)'),
  row('HTTP (nginx): curl, no check', 'http fetch curl', 'http fetch cosa (sha256 checked)'),
  row('HTTP (nginx): curl + sha256sum', 'http fetch curl + sha256sum', 'http fetch cosa (sha256 checked)'),
  '',
  `Peak RSS of the cosa process (median): upload ${m('rss upload cosa').toFixed(0)} MiB, S3 download ${m('rss download cosa').toFixed(0)} MiB, HTTP download ${m('rss http fetch cosa').toFixed(0)} MiB (budget 300 MB).`,
];
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
process.stdout.write(`\nraw: ${JSON.stringify(results)}\n`);

const docPath = join(repo, 'docs', 'benchmarks.md');
let doc = existsSync(docPath) ? await readFile(docPath, 'utf8') : '# Benchmarks\n';
const begin = '<!-- store:begin -->';
const end = '<!-- store:end -->';
const section = `${begin}\n## store: buildupload / buildfetch\n\nMeasured with \`node bench/store.mjs\` on ${new Date().toISOString().slice(0, 10)}.\n\n${table}\n${end}`;
doc = doc.includes(begin) ? doc.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), section) : `${doc.trimEnd()}\n\n${section}\n`;
await mkdir(dirname(docPath), { recursive: true });
await writeFile(docPath, doc);
