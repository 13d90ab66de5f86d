/**
 * Every network wait of an S3 upload has a deadline: a real moto_server behind test-utils' fault
 * server, which at a chosen moment stops answering (it accepts every request and then neither
 * reads nor answers, as a wedged server or a silently dropped connection does). The upload must
 * fail with a timeout within its deadlines instead of waiting for ever; without a deadline on
 * one of its waits, the test runs into vitest's timeout and fails.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { CreateBucketCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { startFaultServer, startMotoServer, type FaultServer, type MotoServer } from '@cosa/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBuildStore } from '@cosa/store';

const MiB = 1024 * 1024;
const creds = { accessKeyId: 'testing', secretAccessKey: 'testing' };
let moto: MotoServer;
let client: S3Client;
const saved = { ...process.env };

beforeAll(async () => {
  moto = await startMotoServer();
  client = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: creds });
  await client.send(new CreateBucketCommand({ Bucket: 'builds' }));
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' });
}, 90_000);
afterAll(async () => {
  process.env = saved;
  client?.destroy();
  await moto?.stop();
});

/** A store that reaches moto only through `proxy`, with short deadlines (1 s of silence). */
function storeVia(proxy: FaultServer) {
  return openBuildStore('s3://builds/deadline', {
    endpointUrl: proxy.url,
    region: 'us-east-1',
    partSize: 5 * MiB,
    queueSize: 1,
    timeouts: { connectMs: 1_000, headersMs: 1_000, idleMs: 1_000 },
  });
}

const stall = [{ fault: { kind: 'stall' as const } }];

describe('an S3 upload to a server that stops answering', () => {
  it('fails with a timeout when the server goes silent in the middle of the parts', async () => {
    await using proxy = await startFaultServer({ upstream: moto.endpoint });
    const data = randomBytes(20 * MiB);
    const sha256 = createHash('sha256').update(data).digest('hex');
    let silent = false;
    const t0 = Date.now();
    const err = await storeVia(proxy)
      .put('mid-parts.raw', Readable.from([data.subarray(0, 8 * MiB), data.subarray(8 * MiB)]), {
        size: data.length,
        sha256,
        onBytes: (n) => {
          // Once the first part is through, nothing answers any more (the abort included).
          if (!silent && n >= 5 * MiB) {
            silent = true;
            proxy.setRules(stall);
          }
        },
      })
      .catch((e: unknown) => e);
    const secs = (Date.now() - t0) / 1000;
    expect(silent).toBe(true);
    expect(err).toMatchObject({ code: 'COSA_STORE_TIMEOUT' });
    // Deadlines of 1 s, each wait retried a bounded number of times: seconds, not minutes.
    expect(secs).toBeLessThan(40);
    expect(proxy.requests.some((r) => r.fault === 'stall')).toBe(true);
  }, 90_000);

  it('fails with a timeout when CompleteMultipartUpload never gets an answer, and leaves nothing published', async () => {
    // POST 1 is CreateMultipartUpload; every later POST is the completion (and its retries).
    await using proxy = await startFaultServer({ upstream: moto.endpoint, rules: [{ method: 'POST', path: /\/complete\.raw$/, times: [2, 3, 4, 5, 6, 7, 8, 9], fault: { kind: 'stall' } }] });
    const data = randomBytes(12 * MiB);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const t0 = Date.now();
    const err = await storeVia(proxy)
      .put('complete.raw', Readable.from([data]), { size: data.length, sha256 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_STORE_TIMEOUT' });
    expect((Date.now() - t0) / 1000).toBeLessThan(40);
    // The POSTs that stalled were the completion (CreateMultipartUpload went through: parts were sent).
    expect(proxy.requests.filter((r) => r.method === 'PUT').length).toBeGreaterThanOrEqual(3);
    expect(proxy.requests.some((r) => r.method === 'POST' && r.fault === 'stall')).toBe(true);
    const head = await client.send(new ListMultipartUploadsCommand({ Bucket: 'builds', Prefix: 'deadline/complete.raw' }));
    // The completion never reached moto, so the upload is not published (an abort may or may not have gone through).
    expect(head.Uploads?.length ?? 0).toBeLessThanOrEqual(1);
    expect(await openBuildStore('s3://builds/deadline', { endpointUrl: moto.endpoint, region: 'us-east-1' }).head('complete.raw')).toBeUndefined();
  }, 90_000);
});
