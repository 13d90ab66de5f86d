/**
 * The lean S3 body reader handing its read buffers straight to a writer (`drain`), against real
 * local servers: node:http serving bytes (paced or broken off on purpose) for the reader itself,
 * and test-utils' static server behind a store that says it honours ranges for the ranged
 * download without a probe. No fake: the reader only speaks HTTP/1.1 to 127.0.0.1.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpServer } from '@cosa/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { openBuildStore, type BuildStore } from '@cosa/store';
import { rawGet, type SignedRequest } from '../src/s3-raw-get.js';
import { downloadRanged } from '../src/_ranged-get.js';
import { storeTimeouts } from '../src/_util.js';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A node:http server on 127.0.0.1 answering every request with `handler`. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<SignedRequest> {
  const srv: Server = createServer(handler);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => srv.close(r)));
  const port = (srv.address() as { port: number }).port;
  return { hostname: '127.0.0.1', port, path: '/obj', headers: { host: `127.0.0.1:${port}` } };
}

/** Sends `data` in pieces of `piece` bytes, one per `delayMs`, or stops after `stopAfter` bytes. */
function paced(data: Buffer, piece: number, delayMs: number, stopAfter = data.length) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-length': data.length });
    let at = 0;
    const next = () => {
      if (at >= stopAfter) return void res.socket?.destroy();
      res.write(data.subarray(at, Math.min(at + piece, stopAfter)));
      at += piece;
      if (at >= data.length) return void res.end();
      setTimeout(next, delayMs);
    };
    next();
  };
}

const t = storeTimeouts({});

describe('rawGet drain', () => {
  it('hands on every byte in order, never reusing a buffer whose write is still going', async () => {
    const data = randomBytes(24 * MiB + 12345);
    const req = await serve((_q, res) => {
      res.writeHead(200, { 'content-length': data.length });
      res.end(data);
    });
    const a = await rawGet(req, t, undefined);
    expect(a.status).toBe(200);
    const got: Buffer[] = [];
    let reads = 0;
    let sizes = 0;
    await a.drain(
      async (chunk) => {
        sizes++;
        // A slow disk: the chunk is copied only after a while. Had the socket read into this
        // buffer meanwhile, the copy would hold later bytes and the result would differ.
        await new Promise((r) => setTimeout(r, 5));
        got.push(Buffer.from(chunk));
      },
      () => reads++,
    );
    expect(Buffer.concat(got).equals(data)).toBe(true);
    // Chunks are gathered up to the buffer size, not handed on per read.
    expect(sizes).toBeLessThan(reads + 2);
    expect(sizes).toBeLessThanOrEqual(Math.ceil(data.length / (MiB - 64 * 1024)) + 2);
  });

  it('gives the bytes that came with the headers, a small body and an empty one', async () => {
    for (const data of [Buffer.from('0123456789'), Buffer.alloc(0)]) {
      const req = await serve((_q, res) => {
        res.writeHead(200, { 'content-length': data.length });
        res.end(data);
      });
      const a = await rawGet(req, t, undefined);
      const got: Buffer[] = [];
      await a.drain(async (c) => void got.push(Buffer.from(c)));
      expect(Buffer.concat(got).equals(data)).toBe(true);
    }
  });

  it('rejects when the connection breaks mid-body, after the writes already handed on are done', async () => {
    const data = randomBytes(6 * MiB);
    const req = await serve(paced(data, 256 * 1024, 2, 3 * MiB + 100));
    const a = await rawGet(req, t, undefined);
    let written = 0;
    let pending = 0;
    const e = await a
      .drain(async (c) => {
        pending++;
        await new Promise((r) => setTimeout(r, 20));
        expect(c.equals(data.subarray(written, written + c.length))).toBe(true);
        written += c.length;
        pending--;
      })
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'COSA_STORE_UNREACHABLE' });
    expect(String((e as Error).message)).toMatch(/closed .* bytes before the end of the body/);
    expect(pending).toBe(0);
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThanOrEqual(3 * MiB + 100);
  });

  it('stops reading and rejects with the error of a failed write', async () => {
    const data = randomBytes(8 * MiB);
    let closed = false;
    const req = await serve((q, res) => {
      res.once('close', () => (closed = true));
      paced(data, 512 * 1024, 5)(q, res);
    });
    const a = await rawGet(req, t, undefined);
    let calls = 0;
    const e = await a
      .drain(async () => {
        calls++;
        throw new Error('disk full');
      })
      .catch((x: unknown) => x);
    expect((e as Error).message).toBe('disk full');
    expect(calls).toBe(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(closed).toBe(true);
  });

  it('still reads as a stream when the body is consumed that way', async () => {
    const data = randomBytes(3 * MiB + 7);
    const req = await serve((_q, res) => {
      res.writeHead(200, { 'content-length': data.length });
      res.end(data);
    });
    const a = await rawGet(req, t, undefined);
    const got: Buffer[] = [];
    for await (const c of a.body) got.push(c as Buffer);
    expect(Buffer.concat(got).equals(data)).toBe(true);
    await expect(a.drain(async () => {})).rejects.toThrow(/already being read/);
  });
});

describe('ranged download from a store that honours ranges', () => {
  async function served(ignoreRanges: boolean) {
    const root = await mkdtemp(join(tmpdir(), 'cosa-raw-drain-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const data = randomBytes(5 * MiB + 3);
    await writeFile(join(root, 'blob'), data);
    const http = await startHttpServer({
      root,
      hook: (req, res) => {
        if (!ignoreRanges || !req.url?.endsWith('/blob')) return false;
        res.writeHead(200, { 'content-length': data.length });
        res.end(data);
        return true;
      },
    });
    cleanups.push(http.stop);
    // An HTTP store that says what S3Store says: every range is honoured, no probe needed.
    const inner = openBuildStore(http.url);
    const store: BuildStore = Object.assign(Object.create(Object.getPrototypeOf(inner) as object) as BuildStore, inner, { honoursRanges: true });
    return { http, data, store, sha256: createHash('sha256').update(data).digest('hex') };
  }

  it('opens every stream at once, without waiting for the first answer', async () => {
    const s = await served(false);
    const out = join(await mkdtemp(join(tmpdir(), 'cosa-raw-drain-')), 'blob');
    cleanups.push(() => rm(join(out, '..'), { recursive: true, force: true }));
    let inFlight = 0;
    let maxBeforeFirstAnswer = 0;
    let answered = false;
    const get = s.store.get.bind(s.store);
    s.store.get = async (key, o) => {
      inFlight++;
      if (!answered) maxBeforeFirstAnswer = Math.max(maxBeforeFirstAnswer, inFlight);
      const r = await get(key, o);
      answered = true;
      return r;
    };
    const r = await downloadRanged(s.store, 'blob', out, { name: 'blob', size: s.data.length, sha256: s.sha256, partSize: MiB, concurrency: 4 });
    expect(r).toEqual({ bytes: s.data.length, sha256: s.sha256 });
    expect((await readFile(out)).equals(s.data)).toBe(true);
    expect(maxBeforeFirstAnswer).toBe(4);
  });

  it('still ends with the right bytes when the server ignores ranges after all (one stream then)', async () => {
    const s = await served(true);
    const out = join(await mkdtemp(join(tmpdir(), 'cosa-raw-drain-')), 'blob');
    cleanups.push(() => rm(join(out, '..'), { recursive: true, force: true }));
    const r = await downloadRanged(s.store, 'blob', out, { name: 'blob', size: s.data.length, sha256: s.sha256, partSize: MiB, concurrency: 4 });
    expect(r).toEqual({ bytes: s.data.length, sha256: s.sha256 });
    expect((await readFile(out)).equals(s.data)).toBe(true);
  });
});
