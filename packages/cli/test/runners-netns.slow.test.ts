/**
 * One build, many runners, on real separate hosts: network namespaces this test makes (a bridge
 * in a namespace of its own, veth pairs created inside it, addresses in 10.250.14.0/24, which
 * exists only inside these namespaces; the host's own interfaces are never touched). One
 * namespace runs the S3 server (s3rver behind the test-utils hook that honours If-Match as AWS
 * S3 does), one uploads the build, and four runner namespaces, each with its own workdir, run
 * the real CLI: `cosa init` → `cosa buildfetch --artifact qemu` → `cosa buildextend-P`, then all
 * `cosa buildupload --artifact P` at the same moment. The remote meta.json must hold every image
 * and every stored object must have the sha256 meta.json gives it.
 *
 * Built once: one real compose of the bundled example (composes cached under $COSA_TEST_CACHE).
 * Where namespaces cannot be made (not root, no `ip`), the test says so and runs the same hosts
 * as plain processes against 127.0.0.1.
 *
 * Also: 50 rounds of two runners racing on one build's meta.json and builds.json (store API,
 * against the S3 test server on 127.0.0.1): no entry may be lost.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseBuildsJson } from '@cosa/schema';
import { buildUpload } from '@cosa/core';
import { startS3Server, tempDir, testWorkdirCache, type S3Server } from '@cosa/test-utils';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const cliBin = join(repoRoot, 'packages/cli/bin/cosa.js');
const s3Child = join(repoRoot, 'packages/test-utils/src/_s3-child.mjs');
const PLATFORMS = ['openstack', 'exoscale', 'ibmcloud', 'digitalocean'] as const;
const SUBNET = '10.250.14';
const BUCKET = 'builds';
const PREFIX = 'prod';
const CREDS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED', AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED' };

/** The test's hosts: a namespace name (or undefined when falling back to processes) and an address. */
interface Net {
  namespaces: boolean;
  why?: string;
  all: string[];
  host(name: string): { ns: string | undefined; addr: string };
}

const tag = process.pid.toString(36).slice(-5);
const nsName = (n: string) => `cosa-${n}-${tag}`;

async function ip(...args: string[]): Promise<void> {
  await run('ip', args, { timeout: 30_000 });
}

/** Whether `path` is a mount point now (read from /proc/self/mountinfo). */
async function isMountPoint(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return info.split('\n').some((l) => l.split(' ')[4] === path);
}
const netnsWasMount = await isMountPoint('/run/netns');

/** Makes the bridge namespace and one namespace per host, each joined to the bridge by a veth pair made inside the bridge namespace. */
async function makeNet(hosts: string[]): Promise<Net> {
  const made: string[] = [];
  const addrs = new Map(hosts.map((h, i) => [h, `${SUBNET}.${i + 1}`]));
  try {
    if (process.getuid?.() !== 0) throw new Error('not root');
    const br = nsName('br');
    await ip('netns', 'add', br);
    made.push(br);
    await ip('-n', br, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', br, 'link', 'set', 'br0', 'up');
    for (const [i, h] of hosts.entries()) {
      const ns = nsName(h);
      await ip('netns', 'add', ns);
      made.push(ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', br, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip('-n', br, 'link', 'set', `v${i}`, 'master', 'br0');
      await ip('-n', br, 'link', 'set', `v${i}`, 'up');
      await ip('-n', ns, 'addr', 'add', `${addrs.get(h)}/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    }
    return { namespaces: true, all: made, host: (h) => ({ ns: nsName(h), addr: addrs.get(h)! }) };
  } catch (e) {
    for (const ns of made.reverse()) await ip('netns', 'del', ns).catch(() => {});
    return { namespaces: false, why: (e as Error).message.split('\n')[0], all: [], host: () => ({ ns: undefined, addr: '127.0.0.1' }) };
  }
}

/** Runs a command on a host (in its namespace, or as a plain process in the fallback), with a deadline. */
function onHost(ns: string | undefined, argv: string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, args] = ns ? ['ip', ['netns', 'exec', ns, ...argv]] : [argv[0]!, argv.slice(1)];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, args as string[], { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20 * 60_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

let net: Net;
let base: { dir: string; cleanup(): Promise<void> };
let s3Dir: string;
let s3Proc: ReturnType<typeof spawn> | undefined;
let endpoint = '';
let config = '';
const hosts = ['s3', 'builder', ...PLATFORMS.map((p) => `r-${p}`)];

const cosa = (host: string, cwd: string, args: string[], timeoutMs?: number) =>
  onHost(net.host(host).ns, [process.execPath, cliBin, ...args], { cwd, env: { ...CREDS, AWS_ENDPOINT_URL: endpoint }, ...(timeoutMs ? { timeoutMs } : {}) });

/** Starts the S3 server on the S3 host and returns its endpoint. */
async function startServer(): Promise<string> {
  const { ns, addr } = net.host('s3');
  const argv = [process.execPath, s3Child, s3Dir, '1', BUCKET];
  const [cmd, args] = ns ? ['ip', ['netns', 'exec', ns, ...argv]] : [argv[0]!, argv.slice(1)];
  s3Proc = spawn(cmd as string, args as string[], { env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider', COSA_S3_LISTEN_HOST: addr }, stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: s3Proc!.stdout! });
    rl.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    s3Proc!.once('exit', (c) => reject(new Error(`S3 server exited with ${c}`)));
  });
  return `http://${addr}:${port}`;
}

beforeAll(async () => {
  if (!existsSync(join(repoRoot, 'packages/cli/dist/index.js'))) throw new Error('the CLI is not built: run `pnpm -r run build` first');
  base = await tempDir('cosa-runners-');
  s3Dir = join(base.dir, 's3');
  await mkdir(s3Dir);
  net = await makeNet(hosts);
  if (!net.namespaces) console.warn(`runners test: network namespaces could not be made (${net.why}); falling back to processes on 127.0.0.1`);
  endpoint = await startServer();
  config = join(base.dir, 'config');
  await cp(join(repoRoot, 'examples/debian'), config, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', config]);
  execFileSync('git', ['-C', config, 'add', '-A']);
  execFileSync('git', ['-C', config, '-c', 'user.name=cosa-test', '-c', 'user.email=test@cosa.invalid', 'commit', '-qm', 'example config']);
});

afterAll(async () => {
  if (s3Proc && s3Proc.exitCode === null) {
    const exited = new Promise((r) => s3Proc!.once('exit', r));
    s3Proc.kill('SIGTERM');
    const t = setTimeout(() => s3Proc?.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  }
  for (const ns of [...(net?.all ?? [])].reverse()) await ip('netns', 'del', ns).catch(() => {});
  // `ip netns add` bind-mounts /run/netns onto itself the first time; undo that when this test
  // made it and no namespace is left in it, so the machine's mount table is as it was.
  if (!netnsWasMount && (await isMountPoint('/run/netns')) && (await readdir('/run/netns').catch(() => ['?'])).length === 0) {
    await run('umount', ['/run/netns'], { timeout: 30_000 }).catch(() => {});
  }
  await base?.cleanup();
});

/** `cosa init` of the example config in a new workdir under the test dir, sharing the compose cache. */
async function initWorkdir(host: string): Promise<string> {
  const wd = join(base.dir, host);
  await mkdir(wd, { recursive: true });
  const r = await cosa(host, wd, ['init', config]);
  expect(r.code, r.stderr).toBe(0);
  return wd;
}

describe(`one build, many runners (${PLATFORMS.length} runner hosts)`, () => {
  let buildId = '';
  let builder = '';

  it('builds the example once and uploads it from the builder host', async () => {
    builder = await initWorkdir('builder');
    await rm(join(builder, 'cache'), { recursive: true });
    await symlink(testWorkdirCache(), join(builder, 'cache'));
    // The compose reads the Debian mirror: it runs on this machine, not in a namespace.
    const b = await onHost(undefined, [process.execPath, cliBin, 'build', '--json'], { cwd: builder });
    expect(b.code, b.stderr.slice(-3000)).toBe(0);
    buildId = (JSON.parse(b.stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!) as { buildId: string }).buildId;
    const up = await cosa('builder', builder, ['buildupload', 's3', '--endpoint-url', endpoint, `${BUCKET}/${PREFIX}`]);
    expect(up.code, up.stderr.slice(-3000)).toBe(0);
  });

  it('fans out: each runner fetches the qemu image, extends its platform, and all upload at the same moment', async () => {
    expect(buildId).not.toBe('');
    const runners = await Promise.all(
      PLATFORMS.map(async (p) => {
        const host = `r-${p}`;
        const wd = await initWorkdir(host);
        const f = await cosa(host, wd, ['buildfetch', '--url', `s3://${BUCKET}/${PREFIX}`, '--endpoint-url', endpoint, '--build', buildId, '--artifact', 'qemu']);
        expect(f.code, f.stderr.slice(-3000)).toBe(0);
        const x = await cosa(host, wd, [`buildextend-${p}`]);
        expect(x.code, x.stderr.slice(-3000)).toBe(0);
        return { p, host, wd };
      }),
    );
    // Every runner is ready: now all of them upload at once.
    const ups = await Promise.all(runners.map((r) => cosa(r.host, r.wd, ['buildupload', '--artifact', r.p, 's3', '--endpoint-url', endpoint, '--json', `${BUCKET}/${PREFIX}`])));
    for (const u of ups) expect(u.code, u.stderr.slice(-3000)).toBe(0);
    // --json: JSON Lines, the last one the result.
    const results = ups.map((u) => JSON.parse(u.stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!) as { event: string; retries: number; files: Array<{ key: string; skipped: boolean }> });
    // Each runner sent its own image and no other artifact.
    for (const [i, r] of results.entries()) {
      const sent = r.files.filter((f) => !f.skipped && !f.key.endsWith('.json')).map((f) => f.key);
      expect(sent).toEqual([expect.stringContaining(`-${PLATFORMS[i]}.x86_64.`)]);
    }
    console.info(`runners: ${net.namespaces ? 'network namespaces' : 'processes'}; ${results.reduce((n, r) => n + r.retries, 0)} conditional writes merged again`);
  });

  it('leaves a remote meta.json that holds every image, each stored object with the sha256 meta.json gives it', async () => {
    const objDir = join(s3Dir, BUCKET, PREFIX, buildId, 'x86_64');
    const meta = JSON.parse(await readFile(join(objDir, 'meta.json._S3rver_object'), 'utf8')) as { images: Record<string, { path: string; sha256: string; size: number }> };
    // ostree, qemu and the SBOM come from the builder; one platform from each runner.
    expect(Object.keys(meta.images).sort()).toEqual(['ostree', 'qemu', 'sbom', ...PLATFORMS].sort());
    for (const [name, img] of Object.entries(meta.images)) {
      expect(await sha256File(join(objDir, `${img.path}._S3rver_object`)), name).toBe(img.sha256);
    }
    const builds = parseBuildsJson(await readFile(join(s3Dir, BUCKET, PREFIX, 'builds.json._S3rver_object'), 'utf8'));
    expect(builds.builds).toEqual([{ id: buildId, arches: ['x86_64'] }]);
    // Another host fetches one runner's image through the S3 host and checks it on the way.
    const dst = join(base.dir, 'check');
    await mkdir(dst);
    const f = await cosa('r-openstack', dst, ['buildfetch', '--url', `s3://${BUCKET}/${PREFIX}`, '--endpoint-url', endpoint, '--artifact', 'exoscale', '--json']);
    expect(f.code, f.stderr.slice(-3000)).toBe(0);
  });

  it('delayed merge: buildextend writes meta.<platform>.json, buildupload --artifact publishes it, cosa meta --finalize folds it in', async () => {
    const wd = join(base.dir, 'r-openstack');
    const metaPath = join(wd, 'builds', buildId, 'x86_64', 'meta.json');
    // What `cosa build --delay-meta-merge` records.
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as Record<string, unknown>;
    await writeFile(metaPath, JSON.stringify({ ...meta, 'coreos-assembler.delayed-meta-merge': true }));
    const before = await readFile(metaPath, 'utf8');
    const x = await cosa('r-openstack', wd, ['buildextend-aliyun']);
    expect(x.code, x.stderr.slice(-3000)).toBe(0);
    expect(await readFile(metaPath, 'utf8')).toBe(before);
    const pending = JSON.parse(await readFile(join(wd, 'builds', buildId, 'x86_64', 'meta.aliyun.json'), 'utf8')) as { images: Record<string, { sha256: string }> };
    const up = await cosa('r-openstack', wd, ['buildupload', '--artifact', 'aliyun', 's3', '--endpoint-url', endpoint, `${BUCKET}/${PREFIX}`]);
    expect(up.code, up.stderr.slice(-3000)).toBe(0);
    const remote = JSON.parse(await readFile(join(s3Dir, BUCKET, PREFIX, buildId, 'x86_64', 'meta.json._S3rver_object'), 'utf8')) as { images: Record<string, { sha256: string }> };
    expect(remote.images.aliyun?.sha256).toBe(pending.images.aliyun!.sha256);
    expect(Object.keys(remote.images).sort()).toEqual(['aliyun', 'ostree', 'qemu', 'sbom', ...PLATFORMS].sort());
    const fin = await cosa('r-openstack', wd, ['meta', '--finalize']);
    expect(fin.code, fin.stderr).toBe(0);
    expect((JSON.parse(await readFile(metaPath, 'utf8')) as { images: Record<string, unknown> }).images.aliyun).toEqual(pending.images.aliyun);
  });
});

describe('two runners racing on one build (store API, 50 rounds)', () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['race'] });
    for (const [k, v] of Object.entries(s3.env)) vi.stubEnv(k, v);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await s3?.stop();
  });

  it('loses no image and no build in 50 rounds', async () => {
    const dirs = await Promise.all(['a', 'b'].map(async (n) => join(base.dir, `race-${n}`)));
    await s3.stats(true);
    // s3rver answers a PUT before its file is flushed: a read right after may come back short.
    const text = async (key: string) => {
      for (let i = 0; ; i++) {
        const res = await fetch(`${s3.endpoint}/race/${key}`);
        const t = await res.text();
        if (Buffer.byteLength(t) === Number(res.headers.get('content-length')) || i >= 20) return t;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    for (let round = 0; round < 50; round++) {
      const id = `50.${round}`;
      const ostree = randomBytes(64);
      const ostreeSha = createHash('sha256').update(ostree).digest('hex');
      await Promise.all(
        dirs.map(async (wd, i) => {
          const dir = join(wd, 'builds', id, 'x86_64');
          await mkdir(dir, { recursive: true });
          const img = randomBytes(100 + i);
          const images = {
            ostree: { path: `os-${id}-ostree.x86_64.tar`, sha256: ostreeSha, size: ostree.length },
            [i === 0 ? 'aws' : 'gcp']: { path: `os-${id}-p${i}.img`, sha256: createHash('sha256').update(img).digest('hex'), size: img.length },
          };
          await writeFile(join(dir, images.ostree.path), ostree);
          await writeFile(join(dir, `os-${id}-p${i}.img`), img);
          const meta = { buildid: id, name: 'os', 'ostree-commit': 'c'.repeat(64), 'ostree-timestamp': '2026-11-27T00:00:00Z', 'ostree-version': id, 'coreos-assembler.build-timestamp': `2026-11-27T00:${String(round).padStart(2, '0')}:00Z`, images };
          await writeFile(join(dir, 'meta.json'), JSON.stringify(meta));
          const bj = join(wd, 'builds', 'builds.json');
          const cur = existsSync(bj) ? parseBuildsJson(await readFile(bj, 'utf8')) : { 'schema-version': '1.0.0', builds: [] };
          cur.builds = [{ id, arches: ['x86_64'] }, ...cur.builds.filter((b) => b.id !== id)];
          await writeFile(bj, JSON.stringify(cur));
          await rm(join(wd, 'builds', 'latest'), { force: true });
        }),
      );
      await Promise.all(dirs.map((wd, i) => buildUpload({ workdir: wd, build: id, url: 's3://race/p', endpointUrl: s3.endpoint, artifacts: ['ostree', i === 0 ? 'aws' : 'gcp'] })));
      const meta = JSON.parse(await text(`p/${id}/x86_64/meta.json`)) as { images: Record<string, unknown> };
      expect(Object.keys(meta.images).sort(), `round ${round}`).toEqual(['aws', 'gcp', 'ostree']);
      const builds = parseBuildsJson(await text('p/builds.json'));
      expect(builds.builds.length, `round ${round}`).toBe(round + 1);
      expect(builds.builds[0]!.id).toBe(id);
    }
    // The two runners really collided: the server refused stale writes, and they merged again.
    expect((await s3.stats()).conditionalRejects).toBeGreaterThan(0);
  });
});
