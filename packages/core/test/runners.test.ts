/**
 * One build, many runners: each runner fetched the same build, added its own platform image and
 * uploads only that (`artifacts: [P]`); the remote meta.json is merged with conditional writes.
 * Against the S3 test server (s3rver behind a hook that honours If-Match as AWS does) and file://.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startS3Server, type S3Server } from '@cosa/test-utils';
import { parseBuildsJson, type MetaJson } from '@cosa/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUpload } from '@cosa/core';
import { mergeMetaForUpload } from '@cosa/store';
import { makeBuild, tempDir } from './_build.js';

let s3: S3Server;
let client: S3Client;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['builds'] });
  client = new S3Client(s3.clientConfig);
});
afterAll(async () => {
  client?.destroy();
  await s3?.stop();
  for (const c of cleanups) await c();
});

async function workdir(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

type Meta = MetaJson & Record<string, unknown>;

/** A copy of `base` (a workdir holding one build) with platform image `platform` added to its meta.json. */
async function runner(base: string, id: string, platform: string, extra: Record<string, unknown> = {}, ext = 'img'): Promise<{ dir: string; sha256: string; path: string }> {
  const dir = await workdir();
  await cp(base, dir, { recursive: true, verbatimSymlinks: true });
  const archDir = join(dir, 'builds', id, 'x86_64');
  const path = `testos-${id}-${platform}.x86_64.${ext}`;
  const data = randomBytes(3000 + Math.floor(Math.random() * 1000));
  await writeFile(join(archDir, path), data);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const meta = JSON.parse(await readFile(join(archDir, 'meta.json'), 'utf8')) as Meta;
  (meta.images as Record<string, unknown>)[platform] = { path, sha256, size: data.length };
  await writeFile(join(archDir, 'meta.json'), JSON.stringify({ ...meta, ...extra }));
  return { dir, sha256, path };
}

async function remoteText(key: string): Promise<string> {
  const obj = await client.send(new GetObjectCommand({ Bucket: 'builds', Key: key }));
  return obj.Body!.transformToString();
}
const remoteMeta = async (key: string) => JSON.parse(await remoteText(key)) as Meta;

describe('buildupload --artifact from many runners', () => {
  it('merges each runner’s image and what its platform owns into the remote meta.json, losing none', async () => {
    const base = await workdir();
    const { id } = await makeBuild(base, { artifacts: { ostree: 2000, qemu: 3000 } });
    await buildUpload({ workdir: base, bucketPrefix: 'builds/fanout', s3Client: client });
    const amis = [{ name: 'us-east-1', hvm: 'ami-0123', snapshot: 'snap-0123' }];
    const runners = await Promise.all([
      runner(base, id, 'aws', { amis }),
      runner(base, id, 'gcp', { gcp: { image: 'img', url: 'https://example.invalid/img' } }),
      runner(base, id, 'azure'),
      runner(base, id, 'openstack'),
    ]);
    const platforms = ['aws', 'gcp', 'azure', 'openstack'];
    // Real contention every run, not by chance: the first conditional PUT of meta.json of each of
    // the four runners is held until all four have read the same remote meta.json and got there.
    const racing = new S3Client(s3.clientConfig);
    cleanups.push(async () => racing.destroy());
    let arrived = 0;
    let release!: () => void;
    const allThere = new Promise<void>((r) => (release = r));
    const deadline = setTimeout(release, 20_000);
    racing.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: string };
        if (context.commandName === 'PutObjectCommand' && input.Key?.endsWith('/meta.json') && arrived < platforms.length) {
          if (++arrived === platforms.length) release();
          await allThere;
        }
        return next(args);
      },
      { step: 'initialize', name: 'cosaTestMetaBarrier' },
    );
    const results = await Promise.all(runners.map((r, i) => buildUpload({ workdir: r.dir, bucketPrefix: 'builds/fanout', s3Client: racing, artifacts: [platforms[i]!] })));
    clearTimeout(deadline);
    expect(arrived).toBe(platforms.length);
    const meta = await remoteMeta(`fanout/${id}/x86_64/meta.json`);
    expect(Object.keys(meta.images!).sort()).toEqual(['aws', 'azure', 'gcp', 'openstack', 'ostree', 'qemu']);
    for (const [i, p] of platforms.entries()) expect((meta.images as Record<string, { sha256: string }>)[p]!.sha256).toBe(runners[i]!.sha256);
    expect(meta.amis).toEqual(amis);
    expect((meta.gcp as { image: string }).image).toBe('img');
    // Four writers on one version of the object: one wins, the other three merge again.
    expect(results.reduce((n, r) => n + r.retries, 0)).toBeGreaterThanOrEqual(3);
    // Only each runner's own image went up; the shared files were already there.
    for (const [i, r] of results.entries()) {
      expect(r.files.filter((f) => !f.skipped && !f.key.endsWith('meta.json')).map((f) => f.key.split('/').pop())).toEqual([runners[i]!.path]);
    }
  });

  it('refuses to merge a meta.json with another ostree-commit and leaves the remote one as it was', async () => {
    const base = await workdir();
    const { id } = await makeBuild(base, { artifacts: { ostree: 1000 } });
    await buildUpload({ workdir: base, bucketPrefix: 'builds/conflict', s3Client: client });
    const before = await remoteText(`conflict/${id}/x86_64/meta.json`);
    const other = await runner(base, id, 'aws', { 'ostree-commit': 'f'.repeat(64) });
    await expect(buildUpload({ workdir: other.dir, bucketPrefix: 'builds/conflict', s3Client: client, artifacts: ['aws'] })).rejects.toMatchObject({ code: 'COSA_META_MERGE_CONFLICT' });
    expect(await remoteText(`conflict/${id}/x86_64/meta.json`)).toBe(before);
  });

  it('keeps the images other runners published when a whole build is uploaded again', async () => {
    const base = await workdir();
    const { id } = await makeBuild(base, { artifacts: { ostree: 1000, qemu: 1000 } });
    await buildUpload({ workdir: base, bucketPrefix: 'builds/whole', s3Client: client });
    const aws = await runner(base, id, 'aws');
    await buildUpload({ workdir: aws.dir, bucketPrefix: 'builds/whole', s3Client: client, artifacts: ['aws'] });
    const again = await buildUpload({ workdir: base, bucketPrefix: 'builds/whole', s3Client: client });
    expect(again.metaJson.x86_64?.written).toBe(false);
    const meta = await remoteMeta(`whole/${id}/x86_64/meta.json`);
    expect(Object.keys(meta.images!).sort()).toEqual(['aws', 'ostree', 'qemu']);
  });

  it('keeps an image the original uploaded (no sha256 metadata) when its size is right, and sends it with force', async () => {
    const base = await workdir();
    const { id, meta } = await makeBuild(base, { artifacts: { ostree: 1500, qemu: 2500 } });
    const dir = join(base, 'builds', id, 'x86_64');
    // As boto3's upload_file leaves them: no x-amz-meta-sha256.
    for (const img of Object.values(meta.images!)) {
      await client.send(new PutObjectCommand({ Bucket: 'builds', Key: `orig/${id}/x86_64/${img!.path}`, Body: await readFile(join(dir, img!.path)) }));
    }
    await client.send(new PutObjectCommand({ Bucket: 'builds', Key: `orig/${id}/x86_64/${meta.images!.qemu!.path}`, Body: Buffer.alloc(10) }));
    const r = await buildUpload({ workdir: base, bucketPrefix: 'builds/orig', s3Client: client });
    const byName = (n: string) => r.files.find((f) => f.key.endsWith(n))!;
    expect(byName(meta.images!.ostree.path)).toMatchObject({ skipped: true, matchedBy: 'size' });
    expect(byName(meta.images!.qemu!.path)).toMatchObject({ skipped: false });
    const forced = await buildUpload({ workdir: base, bucketPrefix: 'builds/orig', s3Client: client, force: true });
    expect(forced.files.find((f) => f.key.endsWith(meta.images!.ostree.path))).toMatchObject({ skipped: false });
  });

  it('peels .gz (not .raw.gz) with --enable-gz-peel like the original, leaving the local meta.json alone', async () => {
    const base = await workdir();
    const { id } = await makeBuild(base, { artifacts: { ostree: 1000 } });
    const gcp = await runner(base, id, 'gcp', {}, 'tar.gz');
    const metal = await runner(gcp.dir, id, 'metal', {}, 'raw.gz');
    const localBefore = await readFile(join(metal.dir, 'builds', id, 'x86_64', 'meta.json'), 'utf8');
    await buildUpload({ workdir: metal.dir, bucketPrefix: 'builds/peel', s3Client: client, enableGzPeel: true });
    const peeled = gcp.path.slice(0, -3);
    const head = await client.send(new HeadObjectCommand({ Bucket: 'builds', Key: `peel/${id}/x86_64/${peeled}` }));
    expect(head.ContentEncoding).toBe('gzip');
    expect(head.ContentDisposition).toBe(`inline; filename=${peeled}`);
    expect(head.ContentType).toBe('application/x-tar');
    const raw = await client.send(new HeadObjectCommand({ Bucket: 'builds', Key: `peel/${id}/x86_64/${metal.path}` }));
    expect(raw.ContentEncoding).toBeUndefined();
    const meta = await remoteMeta(`peel/${id}/x86_64/meta.json`);
    expect((meta.images as Record<string, { path: string; sha256: string }>).gcp).toMatchObject({ path: peeled, sha256: gcp.sha256 });
    expect((meta.images as Record<string, { path: string }>).metal!.path).toBe(metal.path);
    expect(await readFile(join(metal.dir, 'builds', id, 'x86_64', 'meta.json'), 'utf8')).toBe(localBefore);
  });

  it('publishes the image of a delayed-merge build from meta.<platform>.json', async () => {
    const base = await workdir();
    const { id } = await makeBuild(base, { artifacts: { ostree: 1000 } });
    const archDir = join(base, 'builds', id, 'x86_64');
    const meta = JSON.parse(await readFile(join(archDir, 'meta.json'), 'utf8')) as Meta;
    await writeFile(join(archDir, 'meta.json'), JSON.stringify({ ...meta, 'coreos-assembler.delayed-meta-merge': true }));
    await buildUpload({ workdir: base, bucketPrefix: 'builds/delayed', s3Client: client });
    const aws = await runner(base, id, 'aws');
    const dir = join(aws.dir, 'builds', id, 'x86_64');
    // As the original's buildextend writes it with the delayed merge: the whole document beside meta.json.
    const withAws = await readFile(join(dir, 'meta.json'), 'utf8');
    await writeFile(join(dir, 'meta.aws.json'), withAws);
    await writeFile(join(dir, 'meta.json'), JSON.stringify({ ...meta, 'coreos-assembler.delayed-meta-merge': true }));
    await buildUpload({ workdir: aws.dir, bucketPrefix: 'builds/delayed', s3Client: client, artifacts: ['aws'] });
    const remote = await remoteMeta(`delayed/${id}/x86_64/meta.json`);
    expect((remote.images as Record<string, { sha256: string }>).aws!.sha256).toBe(aws.sha256);
  });
});

describe('builds.json order after a merge', () => {
  async function buildAt(id: string, ts: string): Promise<string> {
    const dir = await workdir();
    await makeBuild(dir, { id, artifacts: { ostree: 100 } });
    const p = join(dir, 'builds', id, 'x86_64', 'meta.json');
    const meta = JSON.parse(await readFile(p, 'utf8')) as Meta;
    await writeFile(p, JSON.stringify({ ...meta, 'coreos-assembler.build-timestamp': ts }));
    return dir;
  }
  const order = async (prefix: string) => parseBuildsJson(await remoteText(`${prefix}/builds.json`)).builds.map((b) => b.id);

  it('lists builds newest first by build time, not by upload time', async () => {
    await buildUpload({ workdir: await buildAt('b.2', '2026-11-27T12:00:00Z'), bucketPrefix: 'builds/order', s3Client: client });
    // Built before b.2 on another runner, uploaded after it.
    await buildUpload({ workdir: await buildAt('a.1', '2026-11-27T10:00:00Z'), bucketPrefix: 'builds/order', s3Client: client });
    expect(await order('order')).toEqual(['b.2', 'a.1']);
    await buildUpload({ workdir: await buildAt('c.3', '2026-11-27T13:00:00Z'), bucketPrefix: 'builds/order', s3Client: client });
    await buildUpload({ workdir: await buildAt('a.0', '2026-11-27T09:00:00Z'), bucketPrefix: 'builds/order', s3Client: client });
    expect(await order('order')).toEqual(['c.3', 'b.2', 'a.1', 'a.0']);
    // Adding an arch to a listed build never moves it.
    const arm = await buildAt('a.1', '2026-11-27T10:00:00Z');
    await makeBuild(arm, { id: 'a.1', arch: 'aarch64', artifacts: { ostree: 100 } });
    await buildUpload({ workdir: arm, bucketPrefix: 'builds/order', s3Client: client, arch: ['aarch64'] });
    const doc = parseBuildsJson(await remoteText('order/builds.json'));
    expect(doc.builds.map((b) => b.id)).toEqual(['c.3', 'b.2', 'a.1', 'a.0']);
    expect(doc.builds[2]!.arches.sort()).toEqual(['aarch64', 'x86_64']);
  });
});

describe('meta.json merges on a file:// store', () => {
  it('never loses a runner’s image when runners race on a local directory (lock + atomic rename)', async () => {
    const storeDir = await workdir();
    const base = await workdir();
    const { id } = await makeBuild(base, { artifacts: { ostree: 500 } });
    await buildUpload({ workdir: base, url: storeDir });
    const platforms = ['aws', 'gcp', 'azure', 'openstack', 'vmware', 'exoscale'];
    const runners = await Promise.all(platforms.map((p) => runner(base, id, p)));
    await Promise.all(runners.map((r, i) => buildUpload({ workdir: r.dir, url: storeDir, artifacts: [platforms[i]!] })));
    const meta = JSON.parse(await readFile(join(storeDir, id, 'x86_64', 'meta.json'), 'utf8')) as Meta;
    expect(Object.keys(meta.images!).sort()).toEqual([...platforms, 'ostree'].sort());
  });
});

describe('mergeMetaForUpload', () => {
  const base = { buildid: '1', name: 'os', 'ostree-commit': 'a'.repeat(64), images: { ostree: { path: 'o', sha256: '1' } } };
  it('takes only the named artifacts and their platform keys from the runner', () => {
    const remote = { ...base, images: { ...base.images, gcp: { path: 'g', sha256: '2' } }, summary: 'remote' };
    const local = { ...base, images: { ...base.images, aws: { path: 'a', sha256: '3' }, qemu: { path: 'q', sha256: '4' } }, amis: [{ name: 'r', hvm: 'h', snapshot: 's' }], summary: 'local' };
    const m = mergeMetaForUpload(remote, local, { artifacts: ['aws'], what: 'x', now: 5 });
    expect(Object.keys(m.images as object).sort()).toEqual(['aws', 'gcp', 'ostree']);
    expect(m.amis).toEqual(local.amis);
    expect(m.summary).toBe('remote');
    expect(m['coreos-assembler.meta-stamp']).toBe(5);
  });
  it('refuses another build or content under the same key', () => {
    expect(() => mergeMetaForUpload(base, { ...base, buildid: '2' }, { what: 'x' })).toThrow(/buildid differs/);
    expect(() => mergeMetaForUpload({ ...base, 'coreos-assembler.container-config-git': { commit: 'a', origin: 'o' } }, { ...base, 'coreos-assembler.container-config-git': { commit: 'b', origin: 'o' } }, { what: 'x' })).toThrow(/container-config-git.commit/);
  });
});

