import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startS3Server, type S3Server } from '@cosa/test-utils';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildUpload } from '@cosa/core';
import { contentTypeOf, openBuildStore, S3Store, type BuildStore, type PutOptions, type S3StoreOptions } from '@cosa/store';
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

const MiB = 1024 * 1024;

describe('buildupload', () => {
  it('sends nothing but builds.json again when the build is unchanged', async () => {
    const src = await workdir();
    await makeBuild(src, { artifacts: { ostree: 2 * MiB, qemu: 6 * MiB } });
    const first = await buildUpload({ workdir: src, bucketPrefix: 'builds/unchanged', s3Client: client, partSize: 5 * MiB });
    expect(first.bytesSent).toBeGreaterThan(8 * MiB);
    await s3.stats(true);
    const again = await buildUpload({ workdir: src, bucketPrefix: 'builds/unchanged', s3Client: client, partSize: 5 * MiB });
    expect(again.bytesSent).toBe(0);
    expect(again.files.every((f) => f.skipped && f.reason === 'exists')).toBe(true);
    expect(again.bytesSkipped).toBeGreaterThan(8 * MiB);
    const stats = await s3.stats();
    // Only the probe (refused) and builds.json reach the server as PUT bodies.
    expect(stats.putBytes).toBeLessThan(4096);
  });

  it('sends a truncated or differently-hashed remote object again, and everything with force', async () => {
    const src = await workdir();
    const { id, arch, meta } = await makeBuild(src, { artifacts: { ostree: 100_000, qemu: 50_000 } });
    const prefix = 'trunc';
    await buildUpload({ workdir: src, bucketPrefix: `builds/${prefix}`, s3Client: client });
    const ostree = meta.images!.ostree;
    const qemu = meta.images!.qemu!;
    // A truncated object that still claims the right sha256, and a full-size one with another sha256.
    await client.send(new PutObjectCommand({ Bucket: 'builds', Key: `${prefix}/${id}/${arch}/${ostree.path}`, Body: Buffer.alloc(10), Metadata: { sha256: ostree.sha256 } }));
    await client.send(new PutObjectCommand({ Bucket: 'builds', Key: `${prefix}/${id}/${arch}/${qemu.path}`, Body: randomBytes(50_000), Metadata: { sha256: 'f'.repeat(64) } }));
    const r = await buildUpload({ workdir: src, bucketPrefix: `builds/${prefix}`, s3Client: client });
    const sent = r.files.filter((f) => !f.skipped).map((f) => f.key.split('/').pop());
    expect(sent.sort()).toEqual([ostree.path, qemu.path].sort());
    const obj = await client.send(new GetObjectCommand({ Bucket: 'builds', Key: `${prefix}/${id}/${arch}/${ostree.path}` }));
    const bytes = Buffer.from(await obj.Body!.transformToByteArray());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(ostree.sha256);
    const forced = await buildUpload({ workdir: src, bucketPrefix: `builds/${prefix}`, s3Client: client, force: true });
    expect(forced.files.filter((f) => f.skipped)).toEqual([]);
  });

  it('sets Cache-Control, Content-Type and the sha256 metadata like the original', async () => {
    const src = await workdir();
    const { id, arch, meta } = await makeBuild(src, { artifacts: { ostree: 1000 } });
    await buildUpload({ workdir: src, bucketPrefix: 'builds/headers', s3Client: client });
    const art = await client.send(new HeadObjectCommand({ Bucket: 'builds', Key: `headers/${id}/${arch}/${meta.images!.ostree.path}` }));
    expect(art.CacheControl).toBe('max-age=31536000');
    expect(art.ContentType).toBe('application/x-tar');
    expect(art.Metadata?.sha256).toBe(meta.images!.ostree.sha256);
    const m = await client.send(new HeadObjectCommand({ Bucket: 'builds', Key: `headers/${id}/${arch}/meta.json` }));
    expect(m.CacheControl).toBe('max-age=300');
    expect(m.ContentType).toBe('application/json');
    const b = await client.send(new HeadObjectCommand({ Bucket: 'builds', Key: 'headers/builds.json' }));
    expect(b.CacheControl).toBe('max-age=300');
    expect(contentTypeOf('x.qcow2.xz')).toBe('application/x-xz');
    expect(contentTypeOf('x.iso')).toBe('application/x-iso9660-image');
    expect(contentTypeOf('x.raw.gz')).toBe('application/gzip');
    expect(contentTypeOf('x.qcow2')).toBe('application/octet-stream');
  });

  it('writes meta.json only after every artifact, and builds.json last', async () => {
    const src = await workdir();
    await makeBuild(src, { artifacts: { ostree: 3000, qemu: 2000, metal: 1000 } });
    await s3.stats(true);
    const order: string[] = [];
    await buildUpload({
      workdir: src,
      bucketPrefix: 'builds/order',
      s3Client: client,
      onProgress: (e) => {
        if (e.type === 'transfer' && e.done && e.name !== 'total') order.push(e.name);
        if (e.type === 'phase' && e.status === 'end' && e.phase === 'update builds.json') order.push('builds.json');
      },
    });
    const metaAt = order.indexOf('x86_64/meta.json');
    expect(metaAt).toBe(order.length - 2);
    expect(order.at(-1)).toBe('builds.json');
    expect(order.length).toBe(7);
  });

  it('leaves an artifact filtered out with --artifact out of the uploaded meta.json when the store lacks it', async () => {
    const src = await workdir();
    const { id, arch } = await makeBuild(src, { artifacts: { ostree: 1000, qemu: 1000 } });
    const r = await buildUpload({ workdir: src, bucketPrefix: 'builds/scrub', s3Client: client, artifacts: ['ostree'] });
    expect(r.files.some((f) => f.key.includes('qemu'))).toBe(false);
    const obj = await client.send(new GetObjectCommand({ Bucket: 'builds', Key: `scrub/${id}/${arch}/meta.json` }));
    const remote = JSON.parse(await obj.Body!.transformToString()) as { images: Record<string, unknown> };
    expect(Object.keys(remote.images)).toEqual(['ostree']);
    await expect(buildUpload({ workdir: src, bucketPrefix: 'builds/scrub', s3Client: client, artifacts: ['vmware'] })).rejects.toMatchObject({ code: 'COSA_STORE_ARTIFACT_UNKNOWN' });
  });

  it('reports what it would send in a dry run and sends nothing', async () => {
    const src = await workdir();
    await makeBuild(src, { artifacts: { ostree: 1000 } });
    await s3.stats(true);
    const messages: string[] = [];
    const r = await buildUpload({ workdir: src, bucketPrefix: 'builds/dry', s3Client: client, dryRun: true, onProgress: (e) => e.type === 'info' && messages.push(e.message) });
    expect(r.bytesSent).toBe(0);
    expect(r.files.every((f) => f.reason === 'dry-run')).toBe(true);
    expect(messages.some((m) => m.startsWith('Would upload s3://builds/dry/'))).toBe(true);
    expect((await s3.stats()).putRequests).toBe(0);
  });

  it('refuses to publish an artifact whose bytes differ from its meta.json sha256', async () => {
    const src = await workdir();
    const { dir, meta } = await makeBuild(src, { artifacts: { ostree: 1000 } });
    const p = join(dir, meta.images!.ostree.path);
    const data = await readFile(p);
    data[0] = data[0]! ^ 0xff;
    await import('node:fs/promises').then((fs) => fs.writeFile(p, data));
    await expect(buildUpload({ workdir: src, bucketPrefix: 'builds/badlocal', s3Client: client })).rejects.toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    await expect(client.send(new HeadObjectCommand({ Bucket: 'builds', Key: `badlocal/${meta.buildid}/x86_64/${meta.images!.ostree.path}` }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });
});

describe('an artifact that does not match meta.json', () => {
  it('is never published: the store refuses the bytes that do not hash to its sha256', async () => {
    const src = await workdir();
    const { dir, meta } = await makeBuild(src, { artifacts: { ostree: 1000, qemu: 1000 } });
    const p = join(dir, meta.images!.qemu!.path);
    const data = await readFile(p);
    data[0] = data[0]! ^ 0xff;
    await writeFile(p, data);
    const store = openBuildStore('s3://builds/prehash', { s3Client: client });
    const puts: Array<string | undefined> = [];
    const spy: BuildStore = Object.assign(Object.create(store) as BuildStore, {
      put: (key: string, body: Readable | Uint8Array, o?: PutOptions) => {
        if (key.endsWith(meta.images!.qemu!.path)) puts.push(o?.sha256);
        return store.put(key, body, o);
      },
    });
    await expect(buildUpload({ workdir: src, store: spy, concurrency: 1 })).rejects.toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    expect(puts).toEqual([meta.images!.qemu!.sha256]);
    const key = `prehash/${meta.buildid}/x86_64/`;
    await expect(client.send(new HeadObjectCommand({ Bucket: 'builds', Key: key + meta.images!.qemu!.path }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    await expect(client.send(new HeadObjectCommand({ Bucket: 'builds', Key: `${key}meta.json` }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });

  it('is never renamed into place in a file store', async () => {
    const src = await workdir();
    const { dir, meta } = await makeBuild(src, { artifacts: { ostree: 1000 } });
    const p = join(dir, meta.images!.ostree.path);
    const data = await readFile(p);
    data[5] = data[5]! ^ 0xff;
    await writeFile(p, data);
    const dst = await workdir();
    await expect(buildUpload({ workdir: src, url: dst })).rejects.toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    const { readdir } = await import('node:fs/promises');
    const left = await readdir(dst, { recursive: true });
    expect(left.some((n) => n.endsWith('commitmeta.json'))).toBe(true); // the store was written to
    expect(left.filter((n) => n.endsWith(meta.images!.ostree.path) || n.endsWith('/meta.json') || n.includes('.tmp-'))).toEqual([]);
  });
});

describe('an interrupted upload', () => {
  it('sends only what is missing when run again', async () => {
    const src = await workdir();
    const { meta } = await makeBuild(src, { artifacts: { ostree: 6 * MiB, qemu: 6 * MiB, metal: 6 * MiB } });
    const sizes = Object.values(meta.images!).map((i) => (i as { size: number }).size);
    const ac = new AbortController();
    const done: string[] = [];
    await expect(
      buildUpload({
        workdir: src,
        bucketPrefix: 'builds/resume',
        s3Client: client,
        partSize: 5 * MiB,
        concurrency: 1,
        signal: ac.signal,
        onProgress: (e) => {
          if (e.type !== 'transfer' || e.name === 'total') return;
          if (e.done) done.push(e.name);
          // Kill it in the middle of the second artifact.
          if (done.length === 1 && !e.done && e.bytes > 0) ac.abort();
        },
      }),
    ).rejects.toMatchObject({ code: 'COSA_STORE_ABORTED' });
    expect(done.length).toBe(1);
    await s3.stats(true);
    const again = await buildUpload({ workdir: src, bucketPrefix: 'builds/resume', s3Client: client, partSize: 5 * MiB });
    const artifactsSent = again.files.filter((f) => !f.skipped && Object.values(meta.images!).some((i) => f.key.endsWith((i as { path: string }).path)));
    expect(artifactsSent.length).toBe(2);
    const skipped = again.files.filter((f) => f.skipped).map((f) => f.key.split('/').pop());
    expect(skipped).toContain(done[0]);
    const stats = await s3.stats();
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(stats.putBytes).toBeGreaterThanOrEqual(12 * MiB);
    expect(stats.putBytes).toBeLessThan(total);
  });
});

describe('credentials', () => {
  it('never appear in an error or a progress event when the store rejects them', async () => {
    const src = await workdir();
    await makeBuild(src, { artifacts: { ostree: 100 } });
    const bad = new S3Client({ ...s3.clientConfig, credentials: { accessKeyId: 'NOSUCHKEY', secretAccessKey: 'TOPSECRETKEY123' } });
    const events: unknown[] = [];
    const err = await buildUpload({ workdir: src, bucketPrefix: 'builds/creds', s3Client: bad, onProgress: (e) => events.push(e) }).catch((e: unknown) => e);
    bad.destroy();
    expect(err).toMatchObject({ code: 'COSA_STORE_HTTP_STATUS', status: 403 });
    const text = `${(err as Error).message} ${JSON.stringify(events)} ${(err as Error).stack}`;
    expect(text).not.toContain('TOPSECRETKEY123');
  });
});

describe('the S3 client cosa creates itself', () => {
  it('signs object bodies over plain HTTP to another host, not to a loopback endpoint', async () => {
    for (const [k, v] of Object.entries(s3.env)) vi.stubEnv(k, v);
    try {
      const seen = async (opts: Partial<S3StoreOptions>) => {
        const store = new S3Store({ location: 's3://builds/sig', partSize: 5 * MiB, ...opts });
        const c = await store.client();
        const headers: string[] = [];
        c.middlewareStack.add(
          (next, context) => async (args) => {
            const h = (args.request as { headers: Record<string, string> }).headers;
            if (context.commandName === 'PutObjectCommand') headers.push(h['x-amz-content-sha256']!);
            return next(args);
          },
          { step: 'finalizeRequest', name: 'seeSha', priority: 'low' },
        );
        await store.put('a', Buffer.from('hello'));
        return headers;
      };
      const hello = createHash('sha256').update('hello').digest('hex');
      expect(await seen({})).toEqual(['UNSIGNED-PAYLOAD']); // s3rver on 127.0.0.1
      expect(await seen({ payloadSigning: 'always' })).toEqual([hello]);
      // The same server named by a non-loopback name of this machine: signed.
      const other = s3.endpoint.replace('127.0.0.1', '127.0.0.1.nip.invalid');
      const store = new S3Store({ location: 's3://builds/sig', endpointUrl: other });
      const c = await store.client();
      let sha: string | undefined;
      c.middlewareStack.add(
        (_next, context) => async (args) => {
          if (context.commandName === 'PutObjectCommand') sha = (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'];
          throw new Error('stop before sending');
        },
        { step: 'finalizeRequest', name: 'stop', priority: 'low' },
      );
      await store.put('a', Buffer.from('hello')).catch(() => undefined);
      expect(sha).toBe(hello);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('uses the endpoint, region and credentials from the environment, and sends unsigned payloads when asked', async () => {
    for (const [k, v] of Object.entries(s3.env)) vi.stubEnv(k, v);
    try {
      const src = await workdir();
      const { id, arch, meta } = await makeBuild(src, { artifacts: { ostree: 6 * MiB } });
      const r = await buildUpload({ workdir: src, bucketPrefix: 'builds/unsigned', payloadSigning: 'never', partSize: 5 * MiB });
      expect(r.bytesSent).toBeGreaterThan(6 * MiB);
      const obj = await client.send(new GetObjectCommand({ Bucket: 'builds', Key: `unsigned/${id}/${arch}/${meta.images!.ostree.path}` }));
      const bytes = Buffer.from(await obj.Body!.transformToByteArray());
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(meta.images!.ostree.sha256);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
