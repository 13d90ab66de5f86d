/**
 * publishAws / replicateAws on a synthetic build (a small stream-optimized VMDK, no OS) with real
 * SDK clients against moto_server. moto implements neither ImportSnapshot nor
 * DescribeImportSnapshotTasks, so the front from @cosa/test-utils answers those two itself
 * (pending → active → completed, the snapshot made in moto) and records every request;
 * everything else is moto's.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isCosaError, type MetaJson } from '@cosa/schema';
import { makeTestVmdk, startEc2ImportFront, tempWorkdir, validateWithOriginalSchema, writeFakeBuild, type Ec2ImportFront, type TempWorkdir } from '@cosa/test-utils';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BuildsDir, publishAws, replicateAws } from '../src/index.js';
import { bundleChild } from './_child.js';

let front: Ec2ImportFront;
const BUCKET = 'cosa-ami-import';
const wds: TempWorkdir[] = [];

beforeAll(async () => {
  front = await startEc2ImportFront();
  await front.createBucket(BUCKET);
});
afterAll(async () => {
  await front?.stop();
  for (const w of wds) await w.cleanup();
});
beforeEach(() => {
  for (const [k, v] of Object.entries(front.env)) vi.stubEnv(k, v);
});
afterEach(() => vi.unstubAllEnvs());

/** A workdir with build `id` (x86_64) whose images include a 1.5 GiB (virtual) aws VMDK. */
async function workdirWithAwsBuild(id: string): Promise<{ workdir: string; id: string; metaFile: string }> {
  const wd = await tempWorkdir({ prefix: 'cosa-aws-' });
  wds.push(wd);
  const meta = await writeFakeBuild(wd.dir, id, { name: 'os', extra: { summary: 'Test OS' } });
  const file = `os-${id}-aws.x86_64.vmdk`;
  const dir = join(wd.dir, 'builds', id, 'x86_64');
  makeTestVmdk(join(dir, file), 1.5 * 1024 ** 3, id);
  const data = await readFile(join(dir, file));
  const builds = new BuildsDir(join(wd.dir, 'builds'));
  await builds.insertBuild(id, 'x86_64');
  (meta.images as Record<string, unknown>).aws = { path: file, sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
  await builds.writeMeta(id, 'x86_64', meta as MetaJson);
  return { workdir: wd.dir, id, metaFile: join(dir, 'meta.json') };
}

const readMeta = async (f: string) => JSON.parse(await readFile(f, 'utf8')) as MetaJson;
const since = (n: number, action: string) => front.requests.slice(n).filter((r) => r.action === action && r.status < 300).length;

describe('publishAws', () => {
  it('records the AMI in meta.json amis as the original schema says; a re-run sends nothing', async () => {
    const b = await workdirWithAwsBuild('1.20261127.0');
    const r = await publishAws({ workdir: b.workdir, bucket: BUCKET, region: 'us-east-1', arch: 'x86_64', pollIntervalMs: 20 });
    expect(r.skipped).toBe(false);
    expect(front.calls('RegisterImage').at(-1)!.params).toMatchObject({ Name: 'os-1.20261127.0-x86_64', Description: 'Test OS 1.20261127.0 x86_64', ImdsSupport: 'v2.0', BootMode: 'uefi-preferred' });
    const meta = await readMeta(b.metaFile);
    expect(meta.amis).toEqual([{ name: 'us-east-1', hvm: r.entry.hvm, snapshot: r.entry.snapshot }]);
    validateWithOriginalSchema(meta);

    const n = front.requests.length;
    const again = await publishAws({ workdir: b.workdir, bucket: BUCKET, region: 'us-east-1', arch: 'x86_64' });
    expect(again).toMatchObject({ skipped: true, entry: r.entry });
    expect(front.requests.length).toBe(n);
    expect(await readMeta(b.metaFile)).toEqual(meta);
  });

  it('force replaces the region entry, deregistering the old AMI', async () => {
    const b = await workdirWithAwsBuild('2.20261127.0');
    const first = await publishAws({ workdir: b.workdir, bucket: BUCKET, region: 'us-east-1', arch: 'x86_64', pollIntervalMs: 20 });
    const n = front.requests.length;
    const second = await publishAws({ workdir: b.workdir, bucket: BUCKET, region: 'us-east-1', arch: 'x86_64', pollIntervalMs: 20, force: true });
    expect(second.entry.hvm).not.toBe(first.entry.hvm);
    expect(front.requests.slice(n).filter((q) => q.action === 'DeregisterImage').map((q) => q.params.ImageId)).toEqual([first.entry.hvm]);
    expect((await readMeta(b.metaFile)).amis).toEqual([second.entry]);
  });

  it('after a SIGKILL during the import wait, a re-run resumes the task without uploading again', async () => {
    const b = await workdirWithAwsBuild('3.20261127.0');
    const child = await bundleChild('./_publish-child.ts');
    try {
      front.holdImports(true);
      const n = front.requests.length;
      const p = spawn(process.execPath, [child.file, b.workdir, BUCKET], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...front.env } });
      let stderr = '';
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => p.once('exit', (_code, sig) => resolve(sig)));
      // Kill it once it is polling a task that has got as far as `active`.
      const deadline = Date.now() + 60_000;
      while (!front.tasks().some((t) => t.description === 'os-3.20261127.0-x86_64' && t.statusMessage === 'converting')) {
        if (Date.now() > deadline || p.exitCode !== null) throw new Error(`the child never reached the import wait: ${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      p.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      expect(since(n, 'PutObject') + since(n, 'CompleteMultipartUpload')).toBe(1);
      expect(since(n, 'ImportSnapshot')).toBe(1);
      expect((await readMeta(b.metaFile)).amis).toBeUndefined();

      front.holdImports(false);
      const m = front.requests.length;
      const progress: string[] = [];
      const r = await publishAws({ workdir: b.workdir, bucket: BUCKET, region: 'us-east-1', arch: 'x86_64', pollIntervalMs: 20, onProgress: (e) => e.type === 'info' && progress.push(e.message) });
      expect(since(m, 'PutObject') + since(m, 'CreateMultipartUpload') + since(m, 'ImportSnapshot')).toBe(0);
      expect(progress.some((l) => /resuming import task import-snap-/.test(l))).toBe(true);
      expect(r.upload?.uploaded).toBe(false);
      expect((await readMeta(b.metaFile)).amis).toEqual([r.entry]);
    } finally {
      front.holdImports(false);
      await child.cleanup();
    }
  });

  it('refuses a compressed aws image and leaves meta.json as it was', async () => {
    const b = await workdirWithAwsBuild('4.20261127.0');
    const builds = new BuildsDir(join(b.workdir, 'builds'));
    await builds.updateMeta(b.id, 'x86_64', (m) => ({ ...m, images: { ...m.images, aws: { ...m.images!.aws!, path: `${m.images!.aws!.path}.xz` } } }));
    const before = await readFile(b.metaFile, 'utf8');
    const n = front.requests.length;
    const err = await publishAws({ workdir: b.workdir, bucket: BUCKET, region: 'us-east-1', arch: 'x86_64' }).catch((e: unknown) => e);
    expect(isCosaError(err, 'COSA_BUILD_COMPRESSED')).toBe(true);
    expect(await readFile(b.metaFile, 'utf8')).toBe(before);
    expect(front.requests.length).toBe(n);
  });
});

describe('replicateAws', () => {
  it('appends each region to amis, skips regions already there, and needs a source AMI', async () => {
    const b = await workdirWithAwsBuild('5.20261127.0');
    const none = await replicateAws({ workdir: b.workdir, arch: 'x86_64', regions: ['eu-west-1'] }).catch((e: unknown) => e);
    expect(isCosaError(none, 'COSA_AWS_NO_AMI')).toBe(true);

    const src = await publishAws({ workdir: b.workdir, bucket: BUCKET, region: 'us-east-1', arch: 'x86_64', pollIntervalMs: 20 });
    const r = await replicateAws({ workdir: b.workdir, arch: 'x86_64', regions: ['eu-west-1', 'ap-south-1', 'us-east-1'], pollIntervalMs: 20 });
    expect(r.skipped).toEqual(['us-east-1']);
    expect(r.copied.map((e) => e.name).sort()).toEqual(['ap-south-1', 'eu-west-1']);
    const meta = await readMeta(b.metaFile);
    expect(meta.amis?.[0]).toEqual(src.entry);
    expect(meta.amis?.map((a) => a.name).sort()).toEqual(['ap-south-1', 'eu-west-1', 'us-east-1']);
    validateWithOriginalSchema(meta);

    const n = front.requests.length;
    const again = await replicateAws({ workdir: b.workdir, arch: 'x86_64', regions: ['eu-west-1', 'ap-south-1'] });
    expect(again.copied).toEqual([]);
    expect(front.requests.length).toBe(n);
  });
});
