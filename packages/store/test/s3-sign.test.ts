/**
 * The lean GET signer (no AWS SDK client loaded) against a real s3rver: objects come back, keys
 * with characters that need escaping included, ranges and a missing key too. s3rver (like
 * moto_server) does not check signatures, so the signature itself is checked against AWS's
 * published SigV4 example. Where the SDK's default credential chain would not take the
 * environment's credentials (a profile is named), the SDK client signs, as before.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startS3Server, type S3Server } from '@cosa/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { S3Store, type StoreObject } from '@cosa/store';
import { GetSigner } from '../src/_s3-sign.js';

let s3: S3Server;
let dir: string;
const saved = { ...process.env };
const keys = ['plain.json', "dir/with space+plus,comma;semi=eq&amp/ü-ß/!'()*~@$.txt"];

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['builds'] });
  dir = await mkdtemp(join(tmpdir(), 'cosa-s3-sign-'));
  const client = new S3Client(s3.clientConfig);
  for (const k of keys) await client.send(new PutObjectCommand({ Bucket: 'builds', Key: `p/${k}`, Body: `body of ${k}` }));
  client.destroy();
});
afterAll(async () => {
  await s3.stop();
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  process.env = { ...saved };
});

function env(vars: Record<string, string | undefined>): void {
  for (const k of ['AWS_PROFILE', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3']) delete process.env[k];
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) process.env[k] = v;
}

async function text(o: StoreObject | undefined): Promise<string> {
  expect(o).toBeDefined();
  const parts: Buffer[] = [];
  for await (const c of o!.body) parts.push(c as Buffer);
  return Buffer.concat(parts).toString();
}

/** Whether the store created its SDK client (the lean path never does). */
const sdkClientMade = (s: S3Store) => (s as unknown as { clientValue: unknown }).clientValue !== undefined;

describe('lean S3 GET signing', () => {
  it('reads objects with environment credentials without creating an SDK client, escaped keys included, ranges too', async () => {
    env({ AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey });
    const store = new S3Store({ location: 's3://builds/p', endpointUrl: s3.endpoint, region: s3.region });
    for (const k of keys) expect(await text(await store.get(k))).toBe(`body of ${k}`);
    expect(await text(await store.get(keys[1]!, { start: 3, end: 6 }))).toBe(`body of ${keys[1]}`.slice(3, 7));
    expect(await store.get('missing.json')).toBeUndefined();
    expect(sdkClientMade(store)).toBe(false);
  });

  it("signs AWS's documented SigV4 example (GET Object with a Range) to its published signature", async () => {
    // docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "Example: GET Object".
    // (s3rver and moto_server do not check signatures, so the signature itself is checked here.)
    const signer = new GetSigner('http://examplebucket.s3.amazonaws.com', 'us-east-1', { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' });
    const r = await signer.signPath('/test.txt', 'bytes=0-9', new Date('2013-05-24T00:00:00Z'));
    expect(r.headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
    expect(r).toMatchObject({ hostname: 'examplebucket.s3.amazonaws.com', path: '/test.txt' });
  });

  it('leaves signing to the SDK client and its default chain when a profile is named (which skips environment keys there)', async () => {
    const credentials = join(dir, 'credentials');
    await writeFile(credentials, `[good]\naws_access_key_id = ${s3.accessKeyId}\naws_secret_access_key = ${s3.secretAccessKey}\n`);
    env({ AWS_PROFILE: 'good', AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: join(dir, 'none'), AWS_ACCESS_KEY_ID: 'wrong', AWS_SECRET_ACCESS_KEY: 'wrong' });
    const store = new S3Store({ location: 's3://builds/p', endpointUrl: s3.endpoint, region: s3.region });
    expect(await text(await store.get(keys[0]!))).toBe(`body of ${keys[0]}`);
    expect(sdkClientMade(store)).toBe(true);
  });
});
