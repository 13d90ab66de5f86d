/**
 * What a misbehaving store does to buildfetch and buildupload: each fault ends within a bounded
 * time with an error naming the URL, nothing half-written is left, and the re-run completes.
 * The fault server (test-utils) serves a real store directory or forwards to a real S3 server.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startFaultServer, startS3Server, snapshotTree, type S3Server } from '@cosa/test-utils';
import type { ProgressEvent } from '@cosa/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFetch, buildUpload } from '@cosa/core';
import { openBuildStore } from '@cosa/store';
import { downloadToFile } from '../../store/src/_io.js';
import { makeBuild, tempDir } from './_build.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});
async function dir(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

async function storeWithBuild(artifacts: Record<string, number> = { ostree: 50_000, qemu: 30_000 }) {
  const src = await dir();
  const b = await makeBuild(src, { artifacts });
  const store = await dir();
  await buildUpload({ workdir: src, url: store });
  return { store, ...b };
}

/** Short deadlines so that each fault is seen in about a second. */
const FAST = { connectMs: 1000, headersMs: 600, idleMs: 600, minBytesPerSecond: 2000, rateWindowMs: 800, metadataDeadlineMs: 8000 };

async function timed<T>(p: Promise<T>): Promise<{ error: unknown; ms: number }> {
  const t0 = performance.now();
  const error = await p.then(() => undefined, (e: unknown) => e);
  return { error, ms: performance.now() - t0 };
}

describe('buildfetch against a faulty HTTP store', () => {
  it('gives up on a server that never answers, naming the URL, within the deadline', async () => {
    const { store, arch } = await storeWithBuild();
    await using srv = await startFaultServer({ root: store, rules: [{ path: '/builds.json', fault: { kind: 'stall' } }] });
    const dst = await dir();
    const warnings: string[] = [];
    const onProgress = (e: ProgressEvent) => e.type === 'warning' && warnings.push(e.message);
    const { error, ms } = await timed(buildFetch({ workdir: dst, url: srv.url, arch: [arch], timeouts: FAST, onProgress }));
    expect(error).toMatchObject({ code: 'COSA_STORE_TIMEOUT' });
    expect((error as Error).message).toContain(`${srv.url}/builds.json`);
    expect(ms).toBeLessThan(15_000);
    // Every retry is in the log.
    expect(warnings.some((w) => w.includes('retrying'))).toBe(true);
    expect(await readdir(dst)).toEqual([]);
  });

  it('gives up on a server trickling the body a few bytes at a time', async () => {
    const { store, id, arch, meta } = await storeWithBuild();
    const qemu = meta.images!.qemu!.path;
    await using srv = await startFaultServer({ root: store, rules: [{ path: `/${id}/${arch}/${qemu}`, fault: { kind: 'trickle', bytes: 10, everyMs: 100 } }] });
    const dst = await dir();
    const { error, ms } = await timed(buildFetch({ workdir: dst, url: srv.url, arch: [arch], artifacts: ['qemu'], timeouts: FAST }));
    expect(error).toMatchObject({ code: 'COSA_STORE_TIMEOUT' });
    expect((error as Error).message).toContain(qemu);
    expect(ms).toBeLessThan(20_000);
    expect((await readdir(join(dst, 'builds', id, arch).replace(/\/$/, '')).catch(() => [])).filter((n) => n.includes('partial'))).toEqual([]);
  });

  it('goes on after a reset mid-body and after 500/503 answers, and logs each retry', async () => {
    const { store, id, arch, meta } = await storeWithBuild();
    const ostree = meta.images!.ostree.path;
    await using srv = await startFaultServer({
      root: store,
      rules: [
        { path: `/${id}/${arch}/${ostree}`, times: [1], fault: { kind: 'reset', afterBytes: 20_000 } },
        { path: `/${id}/${arch}/meta.json`, times: [1], fault: { kind: 'status', status: 500 } },
        { path: '/builds.json', times: [1, 2], fault: { kind: 'status', status: 503 } },
      ],
    });
    const dst = await dir();
    const warnings: string[] = [];
    const r = await buildFetch({ workdir: dst, url: srv.url, arch: [arch], artifacts: 'all', timeouts: FAST, onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
    expect(r.files.find((f) => f.name === ostree)?.bytes).toBe(50_000);
    expect(warnings.length).toBeGreaterThanOrEqual(3);
    // The reset download resumed with a range instead of starting over.
    expect(srv.requests.filter((q) => q.path.endsWith(ostree)).length).toBe(2);
  });

  it('stops reading at the declared size when the server sends more', async () => {
    const { store, id, arch, meta } = await storeWithBuild({ ostree: 5000 });
    const ostree = meta.images!.ostree.path;
    await using srv = await startFaultServer({ root: store, rules: [{ path: `/${id}/${arch}/${ostree}`, fault: { kind: 'lie-size', send: 200 * 1024 * 1024, declared: 200 * 1024 * 1024 } }] });
    const dst = await dir();
    const before = await snapshotTree(dst);
    const { error, ms } = await timed(buildFetch({ workdir: dst, url: srv.url, arch: [arch], artifacts: ['ostree'], timeouts: FAST }));
    expect(error).toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    expect((error as Error).message).toContain('5000');
    expect(ms).toBeLessThan(5000);
    // It stopped reading: only socket buffers' worth was written, not the 200 MB on offer.
    expect(srv.requests.find((q) => q.fault === 'lie-size')?.fillerSent).toBeLessThan(20 * 1024 * 1024);
    const after = await snapshotTree(dst);
    delete after.tmp; // scratch space, left empty
    expect(after).toEqual(before);
    expect(await readdir(join(dst, 'tmp'))).toEqual([]);
  });

  it('caps a download that declares no size', async () => {
    const d = await dir();
    await using srv = await startFaultServer({ root: d, rules: [{ path: '/blob', fault: { kind: 'lie-size', send: 50 * 1024 * 1024 } }] });
    const s = openBuildStore(srv.url);
    const { error } = await timed(downloadToFile(s, 'blob', join(d, 'blob'), { name: 'blob', maxBytes: 1024 * 1024 }));
    expect(error).toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    await expect(stat(join(d, 'blob'))).rejects.toThrow();
    expect((await readdir(d)).filter((n) => n.includes('partial'))).toEqual([]);
  });
});

describe('buildupload and buildfetch against a faulty S3 store', () => {
  let s3: S3Server;
  const saved = { ...process.env };
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['builds'] });
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey });
  });
  afterAll(async () => {
    process.env = saved;
    await s3?.stop();
  });

  it('gives up on an S3 server that stops answering, within the deadline', async () => {
    await using srv = await startFaultServer({ upstream: s3.endpoint, rules: [{ fault: { kind: 'stall' } }] });
    const src = await dir();
    await makeBuild(src, { artifacts: { ostree: 1000 } });
    const { error, ms } = await timed(
      buildUpload({ workdir: src, url: 's3://builds/stall', endpointUrl: srv.url, region: s3.region, timeouts: FAST }),
    );
    expect(error).toBeTruthy();
    expect((error as Error).message).toContain('s3://builds/stall/');
    expect(ms).toBeLessThan(20_000);
  });

  it('rides over SlowDown and a reset body, and the uploaded build fetches back whole', async () => {
    await using srv = await startFaultServer({
      upstream: s3.endpoint,
      rules: [
        { method: 'PUT', times: [1, 3], fault: { kind: 'status', status: 503, s3Code: 'SlowDown' } },
        { method: 'GET', path: /qemu/, times: [1], fault: { kind: 'reset', afterBytes: 10_000 } },
      ],
    });
    const src = await dir();
    const { id, arch } = await makeBuild(src, { artifacts: { ostree: 40_000, qemu: 40_000 } });
    {
      await buildUpload({ workdir: src, url: 's3://builds/slow', endpointUrl: srv.url, region: s3.region, timeouts: FAST });
      expect(srv.requests.filter((q) => q.fault === 'status').length).toBe(2);
      const dst = await dir();
      const r = await buildFetch({ workdir: dst, url: 's3://builds/slow', endpointUrl: srv.url, region: s3.region, arch: [arch], artifacts: 'all', timeouts: FAST });
      expect(r.buildId).toBe(id);
      expect(r.files.filter((f) => f.artifact).map((f) => f.bytes)).toEqual([40_000, 40_000]);
    }
  });
});
