import { readFile, readlink, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { startHttpServer, startS3Server, type S3Server } from '@cosa/test-utils';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFetch, buildUpload, type BuildFetchResult } from '@cosa/core';
import { openBuildStore } from '@cosa/store';
import type { ProgressEvent } from '@cosa/schema';
import { makeBuild, sha256File, tempDir } from './_build.js';

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

async function expectSameBuild(src: string, dst: string, id: string, arch: string): Promise<void> {
  const a = join(src, 'builds', id, arch);
  const b = join(dst, 'builds', id, arch);
  expect(await readFile(join(b, 'meta.json'), 'utf8')).toBe(await readFile(join(a, 'meta.json'), 'utf8'));
  const meta = JSON.parse(await readFile(join(a, 'meta.json'), 'utf8')) as { images: Record<string, { path: string; sha256: string }> };
  for (const img of Object.values(meta.images)) {
    expect(await sha256File(join(b, img.path))).toBe(img.sha256);
  }
}

describe('a build uploaded to S3 and fetched into an empty workdir', () => {
  it('reproduces meta.json and every artifact byte for byte, and points latest at it', async () => {
    const src = await workdir();
    const { id, arch } = await makeBuild(src, { artifacts: { ostree: 3 * 1024 * 1024, qemu: 12 * 1024 * 1024, metal: 1000 } });
    const events: ProgressEvent[] = [];
    const up = await buildUpload({ workdir: src, bucketPrefix: 'builds/prod/streams/dev', s3Client: client, partSize: 5 * 1024 * 1024, onProgress: (e) => events.push(e) });
    expect(up.bytesSent).toBeGreaterThanOrEqual(15 * 1024 * 1024 + 1000);
    expect(up.files.every((f) => !f.skipped)).toBe(true);
    expect(up.buildsJson?.conditional).toBe(true);
    const totals = events.filter((e) => e.type === 'transfer' && e.name === 'total');
    expect(totals.at(-1)).toMatchObject({ done: true });

    const dst = await workdir();
    const fetchEvents: ProgressEvent[] = [];
    const got: BuildFetchResult = await buildFetch({
      workdir: dst,
      url: 's3://builds/prod/streams/dev',
      s3Client: client,
      arch: 'all',
      artifacts: 'all',
      onProgress: (e) => fetchEvents.push(e),
    });
    expect(got.buildId).toBe(id);
    expect(got.latestUpdated).toBe(true);
    await expectSameBuild(src, dst, id, arch);
    expect(await readlink(join(dst, 'builds', 'latest'))).toBe(id);
    expect(await readFile(join(dst, 'tmp', 'builds-source.txt'), 'utf8')).toBe('s3://builds/prod/streams/dev\n');
    expect(await readFile(join(dst, 'tmp', 'builds-source.json'), 'utf8')).toBe(await readFile(join(dst, 'builds', 'builds.json'), 'utf8'));
    const files = await readdir(join(dst, 'builds', id, arch));
    expect(files).toContain('commitmeta.json');
    expect(files.filter((f) => f.includes('.partial'))).toEqual([]);
    const t = fetchEvents.filter((e): e is Extract<ProgressEvent, { type: 'transfer' }> => e.type === 'transfer');
    const qemuDone = t.find((e) => e.name.includes('qemu') && e.done);
    expect(qemuDone).toMatchObject({ bytes: 12 * 1024 * 1024, total: 12 * 1024 * 1024 });
    expect(qemuDone?.rateBps).toBeGreaterThan(0);
    expect(got.files.find((f) => f.artifact === 'ostree')?.path).toBe(join(dst, 'builds', id, arch, `testos-${id}-ostree.${arch}.tar`));
  });

  it('fetches only metadata unless artifacts are asked for, and --file extras on request', async () => {
    const src = await workdir();
    const { id, arch } = await makeBuild(src, { id: '43.1', artifacts: { ostree: 1000 } });
    await buildUpload({ workdir: src, bucketPrefix: 'builds/meta-only', s3Client: client });
    const dst = await workdir();
    const r = await buildFetch({ workdir: dst, url: 's3://builds/meta-only', s3Client: client, arch: [arch], files: [`manifest-lock.generated.${arch}.json`] });
    const files = (await readdir(join(dst, 'builds', id, arch))).sort();
    expect(files).toEqual(['commitmeta.json', `manifest-lock.generated.${arch}.json`, 'meta.json']);
    expect(r.bytes).toBeGreaterThan(0);
  });
});

describe('a build fetched over HTTPS from a static server', () => {
  it('reproduces the build that was uploaded to a file:// store', async () => {
    const src = await workdir();
    const { id, arch } = await makeBuild(src, { artifacts: { ostree: 2 * 1024 * 1024, qemu: 5000 } });
    const storeDir = await workdir();
    await buildUpload({ workdir: src, url: `file://${storeDir}` });
    const http = await startHttpServer({ root: storeDir, tls: true });
    cleanups.push(http.stop);
    const dispatcher = new Agent({ connect: { ca: http.ca! } });
    cleanups.push(() => dispatcher.close());
    const dst = await workdir();
    const r = await buildFetch({ workdir: dst, url: `${http.url}/`, dispatcher, arch: [arch], artifacts: ['ostree', 'qemu'] });
    expect(r.buildId).toBe(id);
    await expectSameBuild(src, dst, id, arch);
  });

  it('refuses a server certificate it does not trust', async () => {
    const src = await workdir();
    await makeBuild(src);
    const storeDir = await workdir();
    await buildUpload({ workdir: src, url: storeDir });
    const http = await startHttpServer({ root: storeDir, tls: true });
    cleanups.push(http.stop);
    const dst = await workdir();
    await expect(buildFetch({ workdir: dst, store: openBuildStore(http.url) })).rejects.toMatchObject({ code: 'COSA_STORE_UNREACHABLE' });
  });
});
