import { S3Client } from '@aws-sdk/client-s3';
import { startS3Server, type S3Server } from '@cosa/test-utils';
import { parseBuildsJson, type BuildsJson } from '@cosa/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUpload } from '@cosa/core';
import { mergeBuildsJson, openBuildStore, probeConditionalWrites, updateRemoteBuildsJson } from '@cosa/store';
import { makeBuild, tempDir } from './_build.js';

const doc = (builds: Array<[string, string[]]>, extra: Partial<BuildsJson> = {}): BuildsJson => ({
  'schema-version': '1.0.0',
  builds: builds.map(([id, arches]) => ({ id, arches })),
  ...extra,
});

describe('mergeBuildsJson', () => {
  it('keeps every build and arch of both sides, newest first', () => {
    const remote = doc([['3', ['x86_64']], ['2', ['x86_64', 'aarch64']], ['1', ['x86_64']]]);
    const local = doc([['4', ['aarch64']], ['3', ['aarch64']], ['2', []]]);
    const m = mergeBuildsJson(remote, local);
    expect(m.builds).toEqual([
      { id: '4', arches: ['aarch64'] },
      { id: '3', arches: ['x86_64', 'aarch64'] },
      { id: '2', arches: ['x86_64', 'aarch64'] },
      { id: '1', arches: ['x86_64'] },
    ]);
    expect(m.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('places a new build between the builds it sits between locally', () => {
    const m = mergeBuildsJson(doc([['3', ['a']], ['1', ['a']]]), doc([['3', []], ['2', ['a']], ['1', []]]));
    expect(m.builds.map((b) => b.id)).toEqual(['3', '2', '1']);
    const tail = mergeBuildsJson(doc([['3', ['a']]]), doc([['3', []], ['0', ['a']]]));
    expect(tail.builds.map((b) => b.id)).toEqual(['3', '0']);
  });

  it('keeps tags of both sides, the later one winning a name clash, and tombstones', () => {
    const remote = doc([['2', ['a']]], {
      tags: [{ name: 'stable', created: '2026-01-01T00:00:00Z', target: '1' }, { name: 'old', created: '2025-01-01T00:00:00Z', target: '1' }],
      'tombstone-builds': [{ id: '0', arches: ['a'] }],
    });
    const local = doc([['2', ['a']]], { tags: [{ name: 'stable', created: '2026-02-01T00:00:00Z', target: '2' }] });
    const m = mergeBuildsJson(remote, local);
    expect(m.tags?.find((t) => t.name === 'stable')?.target).toBe('2');
    expect(m.tags?.map((t) => t.name).sort()).toEqual(['old', 'stable']);
    expect(m['tombstone-builds']).toEqual([{ id: '0', arches: ['a'] }]);
  });
});

describe('remote builds.json updates', () => {
  let s3: S3Server;
  let plain: S3Server;
  let client: S3Client;
  let plainClient: S3Client;
  const cleanups: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    [s3, plain] = await Promise.all([startS3Server({ buckets: ['builds'] }), startS3Server({ buckets: ['builds'], conditionalWrites: false })]);
    client = new S3Client(s3.clientConfig);
    plainClient = new S3Client(plain.clientConfig);
  });
  afterAll(async () => {
    client?.destroy();
    plainClient?.destroy();
    await Promise.all([s3?.stop(), plain?.stop()]);
    for (const c of cleanups) await c();
  });

  it('detects whether a store honours conditional writes, and warns when it does not', async () => {
    expect(await probeConditionalWrites(openBuildStore('s3://builds/p', { s3Client: client }))).toBe(true);
    const t = await tempDir();
    cleanups.push(t.cleanup);
    expect(await probeConditionalWrites(openBuildStore(t.dir))).toBe(true);
    const plainStore = openBuildStore('s3://builds/p', { s3Client: plainClient });
    expect(await probeConditionalWrites(plainStore)).toBe(false);
    expect(await plainStore.head('builds.json')).toBeUndefined();

    const src = await tempDir();
    cleanups.push(src.cleanup);
    await makeBuild(src.dir, { artifacts: { ostree: 100 } });
    const warnings: string[] = [];
    const r = await buildUpload({ workdir: src.dir, bucketPrefix: 'builds/plain', s3Client: plainClient, onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
    expect(r.buildsJson?.conditional).toBe(false);
    expect(warnings.some((w) => w.includes('ignores conditional writes'))).toBe(true);
  });

  it('merges again when another writer changed builds.json between its read and its write', async () => {
    const store = openBuildStore('s3://builds/interleave', { s3Client: client });
    await store.put('builds.json', Buffer.from(JSON.stringify(doc([['1', ['x86_64']]]))));
    let sneaked = false;
    const r = await updateRemoteBuildsJson(
      store,
      (cur) => {
        if (!sneaked) {
          sneaked = true;
          // Another uploader writes between our read and our write (synchronously scheduled, awaited below).
          pending = store.put('builds.json', Buffer.from(JSON.stringify(doc([['2', ['aarch64']], ['1', ['x86_64']]]))));
        }
        return mergeBuildsJson(cur!, doc([['1', ['s390x']]]));
      },
      () => true,
      {},
    );
    await pending;
    expect(r.attempts).toBeGreaterThanOrEqual(2);
    expect(r.buildsJson.builds).toEqual([
      { id: '2', arches: ['aarch64'] },
      { id: '1', arches: ['x86_64', 's390x'] },
    ]);
    const obj = await store.get('builds.json');
    const text = await new Response(obj!.body as unknown as ReadableStream).text();
    expect(parseBuildsJson(text).builds).toEqual(r.buildsJson.builds);
  });
  let pending: Promise<unknown> = Promise.resolve();

  it('creates builds.json only once when two writers race to create it', async () => {
    const store = openBuildStore('s3://builds/create-race', { s3Client: client });
    const [a, b] = await Promise.all(
      ['x86_64', 'aarch64'].map((arch) =>
        updateRemoteBuildsJson(store, (cur) => mergeBuildsJson(cur ?? doc([]), doc([['1', [arch]]])), () => true),
      ),
    );
    expect(a!.attempts + b!.attempts).toBeGreaterThanOrEqual(3);
    const obj = await store.get('builds.json');
    const text = await new Response(obj!.body as unknown as ReadableStream).text();
    expect(parseBuildsJson(text).builds[0]?.arches.sort()).toEqual(['aarch64', 'x86_64']);
  });

  it('never loses an arch when two uploaders publish two arches of one build (50 rounds)', async () => {
    const x = await tempDir();
    const a = await tempDir();
    cleanups.push(x.cleanup, a.cleanup);
    await s3.stats(true);
    const store = openBuildStore('s3://builds/race', { s3Client: client });
    for (let round = 0; round < 50; round++) {
      const id = `50.${round}`;
      await makeBuild(x.dir, { id, arch: 'x86_64', artifacts: { ostree: 64 } });
      await makeBuild(a.dir, { id, arch: 'aarch64', artifacts: { ostree: 64 } });
      await Promise.all([
        buildUpload({ workdir: x.dir, bucketPrefix: 'builds/race', s3Client: client }),
        buildUpload({ workdir: a.dir, bucketPrefix: 'builds/race', s3Client: client }),
      ]);
      const obj = await store.get('builds.json');
      const remote = parseBuildsJson(await new Response(obj!.body as unknown as ReadableStream).text());
      expect(remote.builds[0]).toEqual({ id, arches: expect.arrayContaining(['x86_64', 'aarch64']) });
      expect(remote.builds.length).toBe(round + 1);
    }
    // The two uploaders really did collide: the server refused stale writes.
    expect((await s3.stats()).conditionalRejects).toBeGreaterThan(0);
  }, 120_000);
});
