/**
 * One large object from a store that honours ranges starts as one GET and is split over more
 * streams only when its rate says so (`rangeSplit`): against a real s3rver (the S3 store's lean
 * reader, drained straight to the file) and test-utils' static HTTP server behind a store that
 * says it honours ranges (the stream path). The thresholds are set to the two ends (always split
 * at the first bytes, never split) so what is asserted does not depend on the machine's speed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startHttpServer, startS3Server } from '@cosa/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBuildStore, S3Store, type BuildStore, type GetOptions } from '@cosa/store';
import { downloadRanged } from '../src/_ranged-get.js';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<unknown>> = [];
const data = randomBytes(40 * MiB + 3);
const sha256 = createHash('sha256').update(data).digest('hex');
let root: string;
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cosa-range-split-'));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
});

/** Wraps `store.get` to record the byte ranges asked for (undefined end: to the object's end). */
function recorded(store: BuildStore): Array<{ start: number; end: number | undefined }> {
  const asked: Array<{ start: number; end: number | undefined }> = [];
  const get = store.get.bind(store);
  store.get = async (key: string, o?: GetOptions) => {
    asked.push({ start: o?.start ?? 0, end: o?.end });
    return get(key, o);
  };
  return asked;
}

type Made = { store: BuildStore };
const stores: Record<string, () => Promise<Made>> = {
  's3rver (lean reader, drained)': async () => {
    const s = await startS3Server({ buckets: ['builds'] });
    cleanups.push(s.stop);
    const client = new S3Client(s.clientConfig);
    cleanups.push(async () => client.destroy());
    await client.send(new PutObjectCommand({ Bucket: 'builds', Key: 'p/blob', Body: data }));
    const store = new S3Store({ location: 's3://builds/p', endpointUrl: s.endpoint, region: s.region });
    // The lean reader signs with the standard chain's environment credentials.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey });
    return { store };
  },
  'HTTP server (stream path)': async () => {
    await writeFile(join(root, 'blob'), data);
    const http = await startHttpServer({ root });
    cleanups.push(http.stop);
    const inner = openBuildStore(http.url);
    // What S3Store says: every range is honoured.
    return { store: Object.assign(Object.create(Object.getPrototypeOf(inner) as object) as BuildStore, inner, { honoursRanges: true }) };
  },
};

describe.each(Object.keys(stores))('range split, %s', (name) => {
  let made: Made;
  const saved = { ...process.env };
  beforeAll(async () => {
    made = await stores[name]!();
  });
  afterAll(() => {
    process.env = saved;
  });

  async function fetchWith(rangeSplit: { belowBytesPerSecond: number; afterMs: number }) {
    const asked = recorded(made.store);
    const out = join(await mkdtemp(join(root, 'out-')), 'blob');
    const r = await downloadRanged(made.store, 'blob', out, { name: 'blob', size: data.length, sha256, concurrency: 4, rangeSplit });
    expect(r).toEqual({ bytes: data.length, sha256 });
    expect((await readFile(out)).equals(data)).toBe(true);
    return asked;
  }

  it('splits what is left over the other streams when the first stream is below the rate, byte for byte', async () => {
    const asked = await fetchWith({ belowBytesPerSecond: Number.POSITIVE_INFINITY, afterMs: 0 });
    // One plain GET, cut short at its share (16 MiB parts at least), then the rest in two ranges.
    expect(asked).toHaveLength(3);
    expect(asked[0]).toEqual({ start: 0, end: undefined });
    expect(asked[2]!.end).toBe(data.length - 1);
    expect(asked[2]!.start - asked[1]!.start).toBe(16 * MiB);
    expect(asked[1]!.start).toBeLessThanOrEqual(17 * MiB);
  });

  it('keeps one GET when the rate never asks for a split', async () => {
    const asked = await fetchWith({ belowBytesPerSecond: 0, afterMs: 0 });
    expect(asked).toEqual([{ start: 0, end: undefined }]);
  });
});
