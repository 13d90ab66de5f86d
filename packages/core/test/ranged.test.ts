/**
 * Parallel ranged downloads over a real local HTTP server (test-utils' static server, which
 * honours single byte ranges; its hook misbehaves on request): byte-for-byte results, bounded
 * concurrency and window, a short range resumed, a server that ignores Range, a corrupt object.
 */
import { randomBytes, createHash } from 'node:crypto';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { snapshotTree, startHttpServer } from '@cosa/test-utils';
import type { ProgressEvent } from '@cosa/schema';
import { afterAll, describe, expect, it } from 'vitest';
import { openBuildStore } from '@cosa/store';
import { buildFetch, buildUpload } from '@cosa/core';
import { downloadRanged, rangeStreams } from '../../store/src/_ranged-get.js';
import { makeBuild, tempDir } from './_build.js';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});
async function dir(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

/** A served directory with one random object `blob` of `size` bytes. */
async function served(size: number, hook?: (req: IncomingMessage, res: ServerResponse, data: Buffer) => boolean | Promise<boolean>) {
  const root = await dir();
  const data = randomBytes(size);
  await writeFile(join(root, 'blob'), data);
  let inFlight = 0;
  let maxInFlight = 0;
  const http = await startHttpServer({
    root,
    hook: (req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.once('close', () => inFlight--);
      return hook ? hook(req, res, data) : false;
    },
  });
  cleanups.push(http.stop);
  const sha256 = createHash('sha256').update(data).digest('hex');
  return { http, data, sha256, store: openBuildStore(http.url), maxInFlight: () => maxInFlight };
}

const ranges = (reqs: Array<{ url: string; headers: IncomingMessage['headers'] }>) =>
  reqs.filter((r) => r.url === '/blob').map((r) => String(r.headers.range ?? ''));

describe('downloadRanged over HTTP', () => {
  it('fetches a large object in bounded ranges, at most `concurrency` at once, byte for byte', async () => {
    const size = 10 * MiB + 12345;
    const s = await served(size);
    const out = join(await dir(), 'blob');
    const r = await downloadRanged(s.store, 'blob', out, { name: 'blob', size, sha256: s.sha256, partSize: MiB, concurrency: 3 });
    expect(r).toEqual({ bytes: size, sha256: s.sha256 });
    expect((await readFile(out)).equals(s.data)).toBe(true);
    const asked = ranges(s.http.requests);
    expect(asked).toHaveLength(11);
    expect(asked).toContain('bytes=0-1048575');
    expect(asked).toContain(`bytes=${10 * MiB}-${size - 1}`);
    expect(s.maxInFlight()).toBeLessThanOrEqual(3);
    expect(s.maxInFlight()).toBeGreaterThan(1);
    expect((await readdir(join(out, '..'))).filter((n) => n.includes('partial'))).toEqual([]);
  });

  it('starts no part beyond the window while one part is held up (bounded memory)', async () => {
    const size = 12 * MiB;
    // Part 0 is fetched alone first; then part 1 is held: with a window of 3 parts from the
    // hashed head (part 1), parts 2 and 3 may run meanwhile, part 4 and later may not.
    const seen: Array<{ part: number; at: number }> = [];
    let part1Released = Infinity;
    const s2 = await served(size, async (req) => {
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? -1);
      seen.push({ part: start / MiB, at: Date.now() });
      if (start === MiB) {
        await new Promise((r) => setTimeout(r, 1500));
        part1Released = Date.now();
      }
      return false;
    });
    const out2 = join(await dir(), 'blob');
    await downloadRanged(s2.store, 'blob', out2, { name: 'blob', size, sha256: s2.sha256, partSize: MiB, concurrency: 2, window: 3 });
    expect((await readFile(out2)).equals(s2.data)).toBe(true);
    const early = seen.filter((x) => x.at < part1Released).map((x) => x.part);
    expect(Math.max(...early)).toBeLessThanOrEqual(3);
    expect(seen.length).toBe(12);
  });

  it('resumes a range that ends early and retries a 503, logging each retry', async () => {
    const size = 4 * MiB;
    let cut = false;
    let failed = false;
    const s = await served(size, (req, res, data) => {
      const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
      if (!m) return false;
      const [a, b] = [Number(m[1]), Number(m[2])];
      if (a === 2 * MiB && !failed) {
        failed = true;
        res.writeHead(503).end();
        return true;
      }
      if (a === MiB && !cut) {
        cut = true;
        res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${data.length}` });
        res.write(data.subarray(a, a + 300_000), () => setTimeout(() => res.destroy(), 100));
        return true;
      }
      return false;
    });
    const out = join(await dir(), 'blob');
    const warnings: string[] = [];
    const onProgress = (e: ProgressEvent) => e.type === 'warning' && warnings.push(e.message);
    const r = await downloadRanged(s.store, 'blob', out, { name: 'blob', size, sha256: s.sha256, partSize: MiB, concurrency: 2, onProgress });
    expect(r?.sha256).toBe(s.sha256);
    expect((await readFile(out)).equals(s.data)).toBe(true);
    expect(ranges(s.http.requests)).toContain(`bytes=${MiB + 300_000}-${2 * MiB - 1}`);
    // The 503 is retried by the store's own request loop; the short range by the part's retry (logged).
    expect(ranges(s.http.requests).filter((x) => x === `bytes=${2 * MiB}-${3 * MiB - 1}`)).toHaveLength(2);
    expect(warnings.some((w) => w.includes(`bytes ${MiB + 300_000}-${2 * MiB - 1}`) && w.includes('retrying'))).toBe(true);
  });

  it('works with a server that ignores Range and answers 200 with the whole body', async () => {
    const size = 5 * MiB;
    const s = await served(size, (req, res, data) => {
      if (!req.url?.endsWith('/blob')) return false;
      res.writeHead(200, { 'content-length': data.length });
      res.end(data);
      return true;
    });
    const out = join(await dir(), 'blob');
    const r = await downloadRanged(s.store, 'blob', out, { name: 'blob', size, sha256: s.sha256, partSize: MiB, concurrency: 4 });
    expect(r).toEqual({ bytes: size, sha256: s.sha256 });
    expect((await readFile(out)).equals(s.data)).toBe(true);
    // The probe of part 0 and one whole read; no flood of ignored ranges.
    expect(ranges(s.http.requests).length).toBe(2);
  });

  it('gives up after a bounded number of short answers, leaving no temp file', async () => {
    const size = 3 * MiB;
    const s = await served(size, (req, res, data) => {
      const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
      if (!m || Number(m[1]) < MiB) return false;
      const [a, b] = [Number(m[1]), Number(m[2])];
      res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${data.length}` });
      res.write(data.subarray(a, a + 10), () => setTimeout(() => res.destroy(), 20));
      return true;
    });
    const d = await dir();
    const err = await downloadRanged(s.store, 'blob', join(d, 'blob'), { name: 'blob', size, sha256: s.sha256, partSize: MiB, concurrency: 2, attempts: 3 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_STORE_UNREACHABLE' });
    expect(await readdir(d)).toEqual([]);
    // Each broken part was asked for at most 3 times (the resumes start 10 bytes further on).
    const perPart = new Map<number, number>();
    for (const r of ranges(s.http.requests)) {
      const a = Number(/bytes=(\d+)-/.exec(r)?.[1]);
      if (a >= MiB) perPart.set(Math.floor(a / MiB), (perPart.get(Math.floor(a / MiB)) ?? 0) + 1);
    }
    for (const n of perPart.values()) expect(n).toBeLessThanOrEqual(3);
  });

  it('returns undefined for a missing object', async () => {
    const s = await served(10);
    const d = await dir();
    expect(await downloadRanged(s.store, 'nope', join(d, 'x'), { name: 'x', size: 4 * MiB, partSize: MiB })).toBeUndefined();
    expect(await readdir(d)).toEqual([]);
  });
});

describe('rangeStreams', () => {
  it('shares the connections among large objects: one alone is split, several side by side are not', () => {
    const big = { size: 100 * MiB };
    expect(rangeStreams([big, { size: 10 }, {}], 4)).toBe(4);
    expect(rangeStreams([big, big], 4)).toBe(2);
    expect(rangeStreams([big, big, big], 4)).toBe(1);
    expect(rangeStreams([{ size: 31 * MiB }], 4)).toBe(4);
    expect(rangeStreams([], 0)).toBe(1);
  });
});

describe('buildfetch of a large artifact over HTTP', () => {
  it('fetches in ranges and matches; refuses a corrupted copy and leaves the workdir as it was', async () => {
    const src = await dir();
    const size = 33 * MiB + 7;
    const { id, arch, meta } = await makeBuild(src, { artifacts: { ostree: 1000, metal: size } });
    const store = await dir();
    await buildUpload({ workdir: src, url: store });
    const http = await startHttpServer({ root: store });
    cleanups.push(http.stop);
    const dst = await dir();
    const r = await buildFetch({ workdir: dst, url: http.url, arch: [arch], artifacts: 'all' });
    const metal = meta.images!.metal!.path;
    expect(r.files.find((f) => f.artifact === 'metal')?.bytes).toBe(size);
    expect((await readFile(join(dst, 'builds', id, arch, metal))).equals(await readFile(join(src, 'builds', id, arch, metal)))).toBe(true);
    expect(http.requests.filter((q) => q.url.endsWith(metal) && q.headers.range).length).toBe(3);

    // One flipped byte in the last part of the stored artifact.
    const p = join(store, id, arch, metal);
    const data = await readFile(p);
    data[size - 5] = data[size - 5]! ^ 1;
    await writeFile(p, data);
    // The local copy is gone (a verified one would be kept, not fetched again).
    await rm(join(dst, 'builds', id, arch, metal));
    const before = await snapshotTree(dst);
    const err = await buildFetch({ workdir: dst, url: http.url, arch: [arch], artifacts: 'all', force: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_STORE_CHECKSUM_MISMATCH' });
    expect((err as Error).message).toContain(metal);
    expect(await snapshotTree(dst)).toEqual(before);
    await expect(stat(join(dst, 'builds', id, arch, metal))).rejects.toThrow();
  });
});
