/**
 * Parallel ranged downloads from real local S3 servers (moto_server and s3rver): a large
 * artifact comes back byte for byte in several ranged GetObject requests, and a corrupted object
 * is refused with the workdir left exactly as it was. Requests are counted by test-utils' fault
 * server used as a plain forwarding proxy (no faults).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { snapshotTree, startFaultServer, startMotoServer, startS3Server } from '@cosa/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFetch, buildUpload } from '@cosa/core';
import { makeBuild, tempDir } from './_build.js';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void>> = [];
const saved = { ...process.env };
afterAll(async () => {
  process.env = saved;
  for (const c of cleanups.reverse()) await c();
});
async function dir(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

type Server = { endpoint: string; keys: [string, string] };
const servers: Record<string, () => Promise<Server>> = {
  moto_server: async () => {
    const m = await startMotoServer();
    cleanups.push(m.stop);
    return { endpoint: m.endpoint, keys: ['testing', 'testing'] };
  },
  s3rver: async () => {
    const s = await startS3Server({ buckets: [] });
    cleanups.push(s.stop);
    return { endpoint: s.endpoint, keys: [s.accessKeyId, s.secretAccessKey] };
  },
};

describe.each(Object.keys(servers))('ranged buildfetch from %s', (name) => {
  it('fetches a large artifact in ranges byte for byte, and refuses a corrupted copy leaving the workdir as it was', async () => {
    const srv = await servers[name]!();
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: srv.keys[0], AWS_SECRET_ACCESS_KEY: srv.keys[1] });
    const client = new S3Client({ region: 'us-east-1', endpoint: srv.endpoint, forcePathStyle: true, credentials: { accessKeyId: srv.keys[0], secretAccessKey: srv.keys[1] } });
    cleanups.push(async () => client.destroy());
    await client.send(new CreateBucketCommand({ Bucket: 'builds' }));
    const src = await dir();
    const size = 40 * MiB + 3;
    const { id, arch, meta } = await makeBuild(src, { artifacts: { ostree: 2000, metal: size } });
    const common = { url: 's3://builds/r', region: 'us-east-1' };
    await buildUpload({ workdir: src, endpointUrl: srv.endpoint, ...common });
    const metal = meta.images!.metal!.path;

    await using proxy = await startFaultServer({ upstream: srv.endpoint });
    const dst = await dir();
    // A split at the first bytes (the default splits only a stream slower than 128 MiB/s).
    const r = await buildFetch({ workdir: dst, endpointUrl: proxy.url, arch: [arch], artifacts: 'all', rangeSplit: { belowBytesPerSecond: Infinity, afterMs: 0 }, ...common });
    expect(r.files.find((f) => f.artifact === 'metal')?.bytes).toBe(size);
    expect((await readFile(join(dst, 'builds', id, arch, metal))).equals(await readFile(join(src, 'builds', id, arch, metal)))).toBe(true);
    // One GET cut short at 16 MiB, then two ranges of the rest (one request would mean no ranges).
    expect(proxy.requests.filter((q) => q.method === 'GET' && q.path.endsWith(metal))).toHaveLength(3);

    // The same size, one byte flipped in the middle: refused, nothing of it kept.
    const bad = await readFile(join(src, 'builds', id, arch, metal));
    bad[13 * MiB] = bad[13 * MiB]! ^ 0xff;
    await client.send(new PutObjectCommand({ Bucket: 'builds', Key: `r/${id}/${arch}/${metal}`, Body: bad }));
    const fresh = await dir();
    await buildFetch({ workdir: fresh, endpointUrl: srv.endpoint, arch: [arch], ...common });
    const before = await snapshotTree(fresh);
    const err = await buildFetch({ workdir: fresh, endpointUrl: srv.endpoint, arch: [arch], artifacts: ['metal'], ...common }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    expect((err as Error).message).toContain(metal);
    expect(await snapshotTree(fresh)).toEqual(before);
  });
});
