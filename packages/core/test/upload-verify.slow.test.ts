/**
 * buildupload reads each artifact once: the store hashes the bytes as it sends them and makes the
 * object visible only if they match meta.json. Against a real moto_server: a file that changes
 * while its multipart upload is under way is refused, leaving no object and no pending multipart
 * upload; an unchanged re-upload sends no artifact bytes.
 */
import { createHash } from 'node:crypto';
import { openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, AbortMultipartUploadCommand, S3Client } from '@aws-sdk/client-s3';
import { startMotoServer, type MotoServer } from '@cosa/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBuildStore, type BuildStore, type PutOptions } from '@cosa/store';
import { buildUpload } from '@cosa/core';
import { makeBuild, tempDir } from './_build.js';

const MiB = 1024 * 1024;
let moto: MotoServer;
let client: S3Client;
const cleanups: Array<() => Promise<void>> = [];
const creds = { accessKeyId: 'testing', secretAccessKey: 'testing' };

beforeAll(async () => {
  moto = await startMotoServer();
  client = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: creds });
  await client.send(new CreateBucketCommand({ Bucket: 'builds' }));
}, 90_000);
afterAll(async () => {
  client?.destroy();
  await moto?.stop();
  for (const c of cleanups) await c();
});

async function workdir(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

const pending = async (prefix: string) => ((await client.send(new ListMultipartUploadsCommand({ Bucket: 'builds', Prefix: prefix }))).Uploads ?? []);
const missing = (key: string) => expect(client.send(new HeadObjectCommand({ Bucket: 'builds', Key: key }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });

/** A store whose puts of `file` overwrite its last MiB once the first bytes went out. */
function changingStore(location: string, s3: S3Client, path: string, file: string, seen: { sent: number }): BuildStore {
  const store = openBuildStore(location, { s3Client: s3, partSize: 5 * MiB, queueSize: 1 });
  return Object.assign(Object.create(store) as BuildStore, {
    put: (key: string, body: Readable | Uint8Array, o: PutOptions = {}) => {
      if (!key.endsWith(file)) return store.put(key, body, o);
      let changed = false;
      return store.put(key, body, {
        ...o,
        onBytes: (n) => {
          seen.sent = n;
          if (!changed && n > 0) {
            changed = true;
            const fd = openSync(path, 'r+');
            writeSync(fd, Buffer.alloc(MiB, 7), 0, MiB, 29 * MiB);
            closeSync(fd);
          }
          o.onBytes?.(n);
        },
      });
    },
  });
}

describe('buildupload to moto_server, one read per artifact', () => {
  it('refuses a file that changes while it is sent: no object, no pending multipart upload', async () => {
    const src = await workdir();
    const { dir, meta } = await makeBuild(src, { artifacts: { ostree: 1000, metal: 30 * MiB } });
    const file = meta.images!.metal!.path;
    const seen = { sent: 0 };
    const store = changingStore('s3://builds/changing', client, join(dir, file), file, seen);
    const e = await buildUpload({ workdir: src, store, concurrency: 1 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    expect((e as Error).message).toContain('not published');
    // The change happened mid-upload: a part had gone out, the file's tail had not been read.
    expect(seen.sent).toBeGreaterThanOrEqual(5 * MiB);
    expect(seen.sent).toBeLessThan(30 * MiB);
    const prefix = `changing/${meta.buildid}/x86_64/`;
    await missing(prefix + file);
    await missing(`${prefix}meta.json`);
    expect(await pending('changing/')).toEqual([]);
  }, 120_000);

  it('fails naming the upload when aborting the refused multipart upload fails too', async () => {
    // moto always aborts: the failure is injected into this client (a fake for what no local server does).
    const failing = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: creds });
    cleanups.push(async () => failing.destroy());
    failing.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'AbortMultipartUploadCommand') throw Object.assign(new Error('AccessDenied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
        return next(args);
      },
      { step: 'initialize', name: 'failAbort' },
    );
    const src = await workdir();
    const { dir, meta } = await makeBuild(src, { artifacts: { ostree: 1000, metal: 30 * MiB } });
    const file = meta.images!.metal!.path;
    const store = changingStore('s3://builds/noabort', failing, join(dir, file), file, { sent: 0 });
    const e = await buildUpload({ workdir: src, store, concurrency: 1 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    expect((e as Error).message).toContain('aborting its multipart upload failed too');
    expect((e as { hint?: string }).hint).toContain('by hand');
    await missing(`noabort/${meta.buildid}/x86_64/${file}`);
    const left = await pending('noabort/');
    expect(left.length).toBe(1);
    for (const u of left) await client.send(new AbortMultipartUploadCommand({ Bucket: 'builds', Key: u.Key!, UploadId: u.UploadId! }));
  }, 120_000);

  it('sends a multipart artifact byte for byte, and nothing of it again when unchanged', async () => {
    const src = await workdir();
    const { meta } = await makeBuild(src, { artifacts: { ostree: 3 * MiB, metal: 12 * MiB + 5 } });
    const opts = { workdir: src, bucketPrefix: 'builds/again', s3Client: client, partSize: 5 * MiB };
    const first = await buildUpload(opts);
    expect(first.bytesSent).toBeGreaterThan(15 * MiB);
    const key = `again/${meta.buildid}/x86_64/${meta.images!.metal!.path}`;
    const got = await client.send(new GetObjectCommand({ Bucket: 'builds', Key: key }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(meta.images!.metal!.sha256);
    expect(got.Metadata?.sha256).toBe(meta.images!.metal!.sha256);
    const again = await buildUpload(opts);
    expect(again.files.filter((f) => f.key.endsWith('.raw') || f.key.endsWith('.tar')).every((f) => f.skipped && f.sent === 0)).toBe(true);
    expect(again.bytesSent).toBeLessThan(64 * 1024);
    expect(await pending('again/')).toEqual([]);
  }, 120_000);
});
