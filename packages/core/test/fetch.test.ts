import { mkdir, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, HttpStatusError, serializeBuildsJson, type ProgressEvent } from '@cosa/schema';
import { startHttpServer } from '@cosa/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFetch, buildUpload } from '@cosa/core';
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

/** A store directory holding one uploaded build, and the build's facts. */
async function storeWithBuild(opts: Parameters<typeof makeBuild>[1] = {}) {
  const src = await dir();
  const b = await makeBuild(src, opts);
  const store = await dir();
  await buildUpload({ workdir: src, url: store });
  return { src, store, ...b };
}

describe('buildfetch refuses bad remote data', () => {
  it('removes a tampered artifact and fails naming it', async () => {
    const { store, id, arch, meta } = await storeWithBuild({ artifacts: { ostree: 5000, qemu: 3000 } });
    const qemu = meta.images!.qemu!.path;
    const p = join(store, id, arch, qemu);
    const data = await readFile(p);
    data[100] = data[100]! ^ 1;
    await writeFile(p, data);
    const dst = await dir();
    const err = await buildFetch({ workdir: dst, url: store, arch: [arch], artifacts: 'all' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CosaError);
    expect((err as CosaError).code).toBe('COSA_STORE_CHECKSUM_MISMATCH');
    expect((err as CosaError).message).toContain(qemu);
    // Nothing of the build lands in builds/, not even the artifact that was verified (#15.14).
    await expect(stat(join(dst, 'builds', id))).rejects.toThrow();
    await expect(stat(join(dst, 'builds', 'builds.json'))).rejects.toThrow();
    expect(await readdir(join(dst, 'tmp'))).toEqual([]);
  });

  it('keeps an existing build dir as it was when fetching more artifacts fails, and removes a killed fetch\'s staging dir', async () => {
    const { store, id, arch, meta } = await storeWithBuild({ artifacts: { ostree: 5000, qemu: 3000 } });
    const dst = await dir();
    await buildFetch({ workdir: dst, url: store, arch: [arch] });
    const qemu = meta.images!.qemu!.path;
    const p = join(store, id, arch, qemu);
    const data = await readFile(p);
    data[0] = data[0]! ^ 1;
    await writeFile(p, data);
    // A staging dir of a fetch that was killed (pid 2^22+1 is never a live process here).
    await mkdir(join(dst, 'tmp', 'buildfetch-4194305-abc', arch), { recursive: true });
    const before = await readdir(join(dst, 'builds', id, arch));
    await expect(buildFetch({ workdir: dst, url: store, arch: [arch], artifacts: 'all', force: true })).rejects.toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    expect(await readdir(join(dst, 'builds', id, arch))).toEqual(before);
    expect(await readdir(join(dst, 'tmp'))).not.toContain('buildfetch-4194305-abc');
  });

  it('refuses a deeply nested remote builds.json and leaves the workdir usable', async () => {
    const store = await dir();
    const deep = `{"schema-version":"1.0.0","builds":[],"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    await writeFile(join(store, 'builds.json'), deep);
    const dst = await dir();
    const e = await buildFetch({ workdir: dst, url: store, arch: 'all' }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'COSA_SCHEMA_PARSE' });
    expect((e as Error).message).toContain('builds.json');
    await expect(stat(join(dst, 'builds', 'builds.json'))).rejects.toThrow();
  });

  it.each([['../evil'], ['/etc'], ['a/b'], ['..']])('refuses a build id %j in the remote builds.json', async (bad) => {
    const store = await dir();
    await writeFile(join(store, 'builds.json'), JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: bad, arches: ['x86_64'] }] }));
    const dst = await dir();
    await expect(buildFetch({ workdir: dst, url: store, arch: 'all' })).rejects.toMatchObject({ code: 'COSA_SCHEMA_INVALID' });
    await expect(stat(join(dst, 'builds'))).rejects.toThrow();
  });

  it.each([['../../../evil'], ['/tmp/evil'], ['sub/file']])('refuses an artifact path %j in a remote meta.json', async (bad) => {
    const { store, id, arch } = await storeWithBuild({ artifacts: { ostree: 10 } });
    const metaPath = join(store, id, arch, 'meta.json');
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as { images: { ostree: { path: string } } };
    meta.images.ostree.path = bad;
    await writeFile(metaPath, JSON.stringify(meta));
    const dst = await dir();
    await expect(buildFetch({ workdir: dst, url: store, arch: [arch], artifacts: 'all' })).rejects.toMatchObject({ code: 'COSA_SCHEMA_INVALID' });
  });

  it('refuses a --file that is not a plain file name', async () => {
    const { store, arch } = await storeWithBuild({ artifacts: { ostree: 10 } });
    await expect(buildFetch({ workdir: await dir(), url: store, arch: [arch], files: ['../builds.json'] })).rejects.toMatchObject({ code: 'COSA_PATH_UNSAFE' });
  });

  it('fails on an unknown artifact name', async () => {
    const { store, arch } = await storeWithBuild({ artifacts: { ostree: 10 } });
    await expect(buildFetch({ workdir: await dir(), url: store, arch: [arch], artifacts: ['vmware'] })).rejects.toMatchObject({ code: 'COSA_STORE_ARTIFACT_UNKNOWN' });
  });
});

describe('buildfetch and the local builds.json', () => {
  it('does nothing when the store has no builds.json', async () => {
    const dst = await dir();
    const events: ProgressEvent[] = [];
    const r = await buildFetch({ workdir: dst, url: await dir(), onProgress: (e) => events.push(e) });
    expect(r.found).toBe(false);
    expect(events).toContainEqual({ type: 'info', message: expect.stringContaining('No builds.json found') });
    await expect(stat(join(dst, 'builds'))).rejects.toThrow();
  });

  it('refuses to overwrite local changes without force', async () => {
    const { store, arch } = await storeWithBuild({ artifacts: { ostree: 10 } });
    const dst = await dir();
    await buildFetch({ workdir: dst, url: store, arch: [arch] });
    await buildFetch({ workdir: dst, url: store, arch: [arch] });
    const local = join(dst, 'builds', 'builds.json');
    const doc = JSON.parse(await readFile(local, 'utf8')) as { builds: Array<{ id: string; arches: string[] }> };
    doc.builds.unshift({ id: '99.local', arches: [arch] });
    await writeFile(local, JSON.stringify(doc));
    await expect(buildFetch({ workdir: dst, url: store, arch: [arch] })).rejects.toMatchObject({ code: 'COSA_STORE_LOCAL_CHANGES' });
    expect(await readFile(local, 'utf8')).toContain('99.local');
    await buildFetch({ workdir: dst, url: store, arch: [arch], force: true });
    expect(await readFile(local, 'utf8')).not.toContain('99.local');
  });

  it('refuses to drop local builds of a workdir that never fetched, but accepts a subset of the remote', async () => {
    const { store, arch, id } = await storeWithBuild({ artifacts: { ostree: 10 } });
    const own = await dir();
    await makeBuild(own, { id: '1.own', artifacts: { ostree: 10 } });
    await expect(buildFetch({ workdir: own, url: store, arch: [arch] })).rejects.toMatchObject({ code: 'COSA_STORE_LOCAL_CHANGES' });
    const subset = await dir();
    await mkdir(join(subset, 'builds'), { recursive: true });
    await writeFile(join(subset, 'builds', 'builds.json'), serializeBuildsJson({ 'schema-version': '1.0.0', builds: [{ id, arches: [arch] }] }));
    await expect(buildFetch({ workdir: subset, url: store, arch: [arch] })).resolves.toMatchObject({ buildId: id });
  });

  it('fetches an older build without moving latest, and finds the newest build of an arch', async () => {
    const src = await dir();
    await makeBuild(src, { id: '1.0', arch: 'x86_64', artifacts: { ostree: 10 } });
    await makeBuild(src, { id: '1.0', arch: 'aarch64', artifacts: { ostree: 10 } });
    await makeBuild(src, { id: '2.0', arch: 'x86_64', artifacts: { ostree: 10 } });
    const store = await dir();
    await buildUpload({ workdir: src, url: store, build: '1.0' });
    await buildUpload({ workdir: src, url: store, build: '2.0' });
    const dst = await dir();
    const old = await buildFetch({ workdir: dst, url: store, build: '1.0', arch: ['x86_64', 's390x'] });
    expect(old.skippedArches).toEqual(['s390x']);
    expect(old.latestUpdated).toBe(false);
    await expect(readlink(join(dst, 'builds', 'latest'))).rejects.toThrow();
    const found = await buildFetch({ workdir: dst, url: store, arch: ['aarch64'], findBuildForArch: true });
    expect(found.buildId).toBe('1.0');
    const latest = await buildFetch({ workdir: dst, url: store, arch: 'all' });
    expect(latest.buildId).toBe('2.0');
    expect(await readlink(join(dst, 'builds', 'latest'))).toBe('2.0');
    await expect(buildFetch({ workdir: dst, url: store, build: '3.0' })).rejects.toMatchObject({ code: 'COSA_BUILD_NOT_FOUND' });
  });

  it('keeps a verified local artifact instead of downloading it again', async () => {
    const { store, arch } = await storeWithBuild({ artifacts: { ostree: 50_000 } });
    const dst = await dir();
    const first = await buildFetch({ workdir: dst, url: store, arch: [arch], artifacts: 'all' });
    expect(first.files.find((f) => f.artifact === 'ostree')?.skipped).toBe(false);
    const second = await buildFetch({ workdir: dst, url: store, arch: [arch], artifacts: 'all' });
    expect(second.files.find((f) => f.artifact === 'ostree')?.skipped).toBe(true);
  });
});

describe('buildfetch over HTTP', () => {
  it('retries 5xx answers and resumes a dropped download with a byte range', async () => {
    const { store, arch, meta } = await storeWithBuild({ artifacts: { ostree: 2_000_000 } });
    let fails = 2;
    let dropped = false;
    const http = await startHttpServer({
      root: store,
      hook: (req, res) => {
        if (req.url?.endsWith('builds.json') && fails-- > 0) {
          res.writeHead(503).end();
          return true;
        }
        if (req.url?.endsWith('.tar') && !dropped && !req.headers.range) {
          dropped = true;
          res.writeHead(200, { 'content-length': 2_000_000 });
          // Sends 1000 bytes of the wrong data, then the connection dies (once they left).
          res.write(Buffer.alloc(1000), () => setTimeout(() => res.destroy(), 300));
          return true;
        }
        return false;
      },
    });
    cleanups.push(http.stop);
    const dst = await dir();
    // The first 1000 bytes were zeros, not the artifact: the resume must not keep them.
    const err = await buildFetch({ workdir: dst, url: http.url, arch: [arch], artifacts: 'all' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    expect(http.requests.filter((r) => r.url.endsWith('builds.json')).length).toBeGreaterThanOrEqual(3);
    expect(http.requests.some((r) => r.url.endsWith('.tar') && r.headers.range === 'bytes=1000-')).toBe(true);

    // With honest bytes before the drop, the resumed download verifies.
    dropped = false;
    const real = await readFile(join(store, meta.buildid, arch, meta.images!.ostree.path));
    const http2 = await startHttpServer({
      root: store,
      hook: (req, res) => {
        if (req.url?.endsWith('.tar') && !dropped && !req.headers.range) {
          dropped = true;
          res.writeHead(200, { 'content-length': real.length });
          res.write(real.subarray(0, 700_000), () => setTimeout(() => res.destroy(), 300));
          return true;
        }
        return false;
      },
    });
    cleanups.push(http2.stop);
    const ok = await buildFetch({ workdir: await dir(), url: http2.url, arch: [arch], artifacts: 'all' });
    expect(ok.files.find((f) => f.artifact === 'ostree')?.bytes).toBe(real.length);
    expect(http2.requests.some((r) => r.headers.range === 'bytes=700000-')).toBe(true);
  });

  it('refuses a redirect to another scheme and follows one on the same scheme', async () => {
    const { store, arch } = await storeWithBuild({ artifacts: { ostree: 10 } });
    const http = await startHttpServer({
      root: store,
      hook: (req, res) => {
        if (req.url?.startsWith('/moved/')) {
          res.writeHead(301, { location: `/${req.url.slice(7)}` }).end();
          return true;
        }
        if (req.url?.startsWith('/tls/')) {
          res.writeHead(302, { location: `https://127.0.0.1:1/${req.url.slice(5)}` }).end();
          return true;
        }
        return false;
      },
    });
    cleanups.push(http.stop);
    await expect(buildFetch({ workdir: await dir(), url: `${http.url}/moved`, arch: [arch] })).resolves.toMatchObject({ found: true });
    await expect(buildFetch({ workdir: await dir(), url: `${http.url}/tls`, arch: [arch] })).rejects.toMatchObject({ code: 'COSA_STORE_REDIRECT_REFUSED' });
  });

  it('reports HTTP errors with the status and a URL without credentials or query secrets', async () => {
    const http = await startHttpServer({
      root: await dir(),
      hook: (_req, res) => {
        res.writeHead(418).end();
        return true;
      },
    });
    cleanups.push(http.stop);
    const events: ProgressEvent[] = [];
    const url = `http://alice:hunter2@127.0.0.1:${http.port}/builds?X-Amz-Signature=SECRETSIG&token=SECRETTOKEN`;
    const err = await buildFetch({ workdir: await dir(), url, onProgress: (e) => events.push(e) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpStatusError);
    expect((err as HttpStatusError).status).toBe(418);
    expect((err as HttpStatusError).url).toBe(`http://127.0.0.1:${http.port}/builds/builds.json`);
    const text = `${(err as Error).message} ${JSON.stringify(err)} ${JSON.stringify(events)}`;
    for (const secret of ['hunter2', 'alice', 'SECRETSIG', 'SECRETTOKEN']) expect(text).not.toContain(secret);
    // The query and the credentials were still sent to the server.
    expect(http.requests[0]?.url).toContain('token=SECRETTOKEN');
    expect(http.requests[0]?.headers.authorization).toBe(`Basic ${Buffer.from('alice:hunter2').toString('base64')}`);
  });
});
