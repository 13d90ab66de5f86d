/**
 * #15: the real CLI SIGKILLed at moments spread over the whole of buildupload (S3 on moto_server,
 * and a file store through the SDK in a child process), prune, buildextend-<platform> and
 * compress (the 50 kills). After every kill the workdir is consistent (builds.json
 * parses, every listed build's meta.json parses and its images are there with their size and
 * sha256, `latest` names a listed build), the store is too (builds.json parses, every build it
 * lists is complete), and a re-run completes and leaves both consistent with no temp file of an
 * atomic write left (a kill in the middle of one leaves its `.NAME.tmp-PID-HEX`: never under a
 * name anything reads; the next write of that file removes it). Kill moments: `spread` (k/(N+1) of a measured full run), so every
 * phase is hit; counts below.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '@cosa/ostree/internal';
import { serializeBuildsJson, serializeMetaJson, type MetaJson } from '@cosa/schema';
import { buildUpload } from '@cosa/core';
import {
  fileStoreReader, killAtRandomMoments, s3StoreReader, startMotoServer, storeProblems, tempDir, tempWorkdir, workdirProblems,
  type KillRunResult, type MotoServer,
} from '@cosa/test-utils';
import { makeBuild } from '../../core/test/_build.js';
import { makeBaseDisk } from '../../image/test/platform-fixture.js';

const COSA = fileURLToPath(new URL('../bin/cosa.js', import.meta.url));
const UPLOAD_CHILD = fileURLToPath(new URL('./_upload-child.mjs', import.meta.url));
const MiB = 1024 * 1024;
/** Kills per command: CI runs fewer than the 50 to stay in budget; COSA_KILL_RUNS=50 runs the full count. */
const kills = (ciCount: number): number => Number(process.env.COSA_KILL_RUNS ?? ciCount);

function summary(name: string, r: KillRunResult): void {
  console.info(`${name} kill runs: ${JSON.stringify({ runs: r.runs, killed: r.killed, corrupt: r.afterKill.length, rerunFailed: r.afterRerun.length, delaysMs: r.delaysMs })}`);
}

/** Two builds: A (already in the store) and B, the latest, the one uploaded. */
async function twoBuilds(dir: string): Promise<void> {
  await makeBuild(dir, { id: '42.20261126.0', artifacts: { ostree: 1 * MiB, qemu: 2 * MiB } });
  await makeBuild(dir, { id: '42.20261127.0', artifacts: { ostree: 2 * MiB, qemu: 12 * MiB, metal: 3 * MiB } });
}

describe('kill runs of the real CLI (SIGKILL at spread moments)', () => {
  let moto: MotoServer;
  beforeAll(async () => {
    moto = await startMotoServer();
  }, 90_000);
  afterAll(async () => moto?.stop());

  it('buildupload s3 (moto_server): 10 kills leave the workdir and the store consistent, the re-run completes', async () => {
    await using wd = await tempWorkdir();
    await twoBuilds(wd.dir);
    const store = s3StoreReader(moto.endpoint, 'kill-builds', 'prod');
    await store.createBucket();
    const env = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' };
    // The store already has build A: its builds.json must stay valid whatever the kill.
    await run([process.execPath, COSA, 'buildupload', '--build', '42.20261126.0', 's3', '--endpoint-url', moto.endpoint, 'kill-builds/prod'], { cwd: wd.dir, env });
    const withA = (await store.get('builds.json'))!;
    const r = await killAtRandomMoments({
      argv: [process.execPath, COSA, 'buildupload', 's3', '--endpoint-url', moto.endpoint, 'kill-builds/prod'],
      cwd: wd.dir,
      env,
      runs: kills(10),
      moments: 'spread',
      maxDelayMs: 20_000,
      reset: async () => {
        await store.removeUnder('42.20261127.0/');
        await store.put('builds.json', withA);
      },
      check: async (rerun) => [...(await workdirProblems(wd.dir, { tempFiles: rerun })), ...(await storeProblems(store, { tempFiles: rerun }))],
    });
    summary('buildupload s3', r);
    const pending = await store.pendingUploads();
    console.info(`multipart uploads left by the kills: ${pending.length}`);
    expect(r.afterKill).toEqual([]);
    expect(r.afterRerun).toEqual([]);
    const listed = JSON.parse((await store.get('builds.json'))!.toString()) as { builds: { id: string }[] };
    expect(listed.builds.map((b) => b.id)).toEqual(['42.20261127.0', '42.20261126.0']);
  }, 15 * 60_000);

  it('buildupload to a file store (SDK in a child process): 10 kills leave the store consistent, the re-run completes', async () => {
    await using wd = await tempWorkdir();
    await using storeDir = await tempDir();
    await twoBuilds(wd.dir);
    await buildUpload({ workdir: wd.dir, url: storeDir.dir, build: '42.20261126.0' });
    const withA = await readFile(join(storeDir.dir, 'builds.json'));
    const store = fileStoreReader(storeDir.dir);
    const r = await killAtRandomMoments({
      argv: [process.execPath, UPLOAD_CHILD, wd.dir, storeDir.dir],
      cwd: wd.dir,
      runs: kills(10),
      moments: 'spread',
      maxDelayMs: 20_000,
      reset: async () => {
        await rm(join(storeDir.dir, '42.20261127.0'), { recursive: true, force: true });
        await writeFile(join(storeDir.dir, 'builds.json'), withA);
      },
      check: async (rerun) => [...(await workdirProblems(wd.dir, { tempFiles: rerun })), ...(await storeProblems(store, { tempFiles: rerun }))],
    });
    summary('buildupload file', r);
    expect(r.afterKill).toEqual([]);
    expect(r.afterRerun).toEqual([]);
  }, 15 * 60_000);

  it('prune --keep-last-n 1 of 5 builds: 10 kills leave the workdir consistent, the re-run completes', async () => {
    await using wd = await tempWorkdir();
    await using pristine = await tempDir();
    for (let i = 0; i < 5; i++) await makeBuild(pristine.dir, { id: `42.2026112${i}.0`, artifacts: { ostree: 2 * MiB, qemu: 4 * MiB } });
    const r = await killAtRandomMoments({
      argv: [process.execPath, COSA, 'prune', '--keep-last-n', '1'],
      cwd: wd.dir,
      runs: kills(10),
      moments: 'spread',
      maxDelayMs: 10_000,
      reset: async () => {
        await rm(join(wd.dir, 'builds'), { recursive: true, force: true });
        await cp(join(pristine.dir, 'builds'), join(wd.dir, 'builds'), { recursive: true, verbatimSymlinks: true });
      },
      check: (rerun) => workdirProblems(wd.dir, { tempFiles: rerun }),
    });
    summary('prune', r);
    expect(r.afterKill).toEqual([]);
    expect(r.afterRerun).toEqual([]);
  }, 10 * 60_000);

  it('buildextend-aws on a synthetic base disk: 8 kills leave the workdir consistent, the re-run completes', async () => {
    await using wd = await tempWorkdir();
    await using pristine = await tempDir();
    const id = '42.20261128.0';
    const dir = join(pristine.dir, 'builds', id, 'x86_64');
    await mkdir(dir, { recursive: true });
    const raw = await makeBaseDisk({ dir: pristine.dir, sizeMiB: 512, bootMiB: 128 });
    const qemu = `testos-${id}-qemu.x86_64.qcow2`;
    await run(['qemu-img', 'convert', '-O', 'qcow2', raw, join(dir, qemu)]);
    await rm(raw);
    const data = await readFile(join(dir, qemu));
    const ostree = `testos-${id}-ostree.x86_64.tar`;
    const tar = randomBytes(64 * 1024);
    await writeFile(join(dir, ostree), tar);
    const meta = {
      buildid: id, name: 'testos', 'ostree-commit': 'b'.repeat(64), 'ostree-timestamp': '2026-11-28T00:00:00Z', 'ostree-version': id,
      'coreos-assembler.basearch': 'x86_64', images: {
        ostree: { path: ostree, size: tar.length, sha256: createHash('sha256').update(tar).digest('hex') },
        qemu: { path: qemu, size: data.length, sha256: createHash('sha256').update(data).digest('hex') },
      },
    } as MetaJson;
    await writeFile(join(dir, 'meta.json'), serializeMetaJson(meta));
    await writeFile(join(pristine.dir, 'builds', 'builds.json'), serializeBuildsJson({ 'schema-version': '1.0.0', builds: [{ id, arches: ['x86_64'] }] }));
    await run(['ln', '-s', id, join(pristine.dir, 'builds', 'latest')]);
    const r = await killAtRandomMoments({
      argv: [process.execPath, COSA, 'buildextend-aws'],
      cwd: wd.dir,
      runs: kills(8),
      moments: 'spread',
      maxDelayMs: 60_000,
      reset: async () => {
        await rm(join(wd.dir, 'builds'), { recursive: true, force: true });
        await cp(join(pristine.dir, 'builds'), join(wd.dir, 'builds'), { recursive: true, verbatimSymlinks: true });
      },
      check: async (rerun) => {
        const problems = await workdirProblems(wd.dir, { tempFiles: rerun });
        const after = JSON.parse(await readFile(join(wd.dir, 'builds', id, 'x86_64', 'meta.json'), 'utf8')) as MetaJson;
        if (!after.images?.qemu) problems.push('meta.json lost its qemu image');
        return problems;
      },
    });
    summary('buildextend-aws', r);
    expect(r.afterKill).toEqual([]);
    expect(r.afterRerun).toEqual([]);
    const final = JSON.parse(await readFile(join(wd.dir, 'builds', id, 'x86_64', 'meta.json'), 'utf8')) as MetaJson;
    expect(final.images?.aws?.path).toMatch(/aws/);
  }, 15 * 60_000);

  it('compress --fast (gzip): the issue\'s 50 kills leave no corrupt workdir and the re-run completes', async () => {
    await using wd = await tempWorkdir();
    await using pristine = await tempDir();
    // Compressible artifacts (random data would not shrink): half zeros, half random.
    await makeBuild(pristine.dir, { artifacts: { ostree: MiB / 2, qemu: 2 * MiB, metal: 2 * MiB } });
    const bdir = join(pristine.dir, 'builds', '42.20261126.0', 'x86_64');
    const meta = JSON.parse(await readFile(join(bdir, 'meta.json'), 'utf8')) as MetaJson & { images: Record<string, { path: string; size: number; sha256: string }> };
    for (const img of Object.values(meta.images)) {
      const half = (img.size as number) / 2;
      const bytes = Buffer.concat([randomBytes(half), Buffer.alloc(half)]);
      await writeFile(join(bdir, img.path), bytes);
      img.sha256 = createHash('sha256').update(bytes).digest('hex');
    }
    await writeFile(join(bdir, 'meta.json'), serializeMetaJson(meta));
    const r = await killAtRandomMoments({
      argv: [process.execPath, COSA, 'compress', '--compressor', 'gzip', '--fast'],
      cwd: wd.dir,
      runs: 50,
      moments: 'spread',
      maxDelayMs: 10_000,
      reset: async () => {
        await rm(join(wd.dir, 'builds'), { recursive: true, force: true });
        await cp(join(pristine.dir, 'builds'), join(wd.dir, 'builds'), { recursive: true, verbatimSymlinks: true });
      },
      check: (rerun) => workdirProblems(wd.dir, { tempFiles: rerun }),
    });
    summary('compress', r);
    expect(r.afterKill).toEqual([]);
    expect(r.afterRerun).toEqual([]);
  }, 20 * 60_000);
});
