/**
 * The HTTP store's redirects and retries come from undici's interceptors composed on its
 * dispatcher (with cosa's retry policy and a same-scheme guard). Real servers on 127.0.0.1 that
 * redirect, answer 5xx/429, drop connections and stall prove the behaviour end to end.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ProgressEvent } from '@cosa/schema';
import { startHttpServer, type HttpServer, type HttpServerOptions } from '@cosa/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { HttpStore, openBuildStore } from '@cosa/store';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const BLOB = Buffer.from('the blob\n'.repeat(1000));

/** A server over a directory holding `blob`, with `hook` in front of it. */
async function serve(hook?: HttpServerOptions['hook'], tls = false): Promise<HttpServer> {
  const root = await mkdtemp(join(tmpdir(), 'cosa-http-store-'));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  await writeFile(join(root, 'blob'), BLOB);
  const s = await startHttpServer({ root, ...(hook ? { hook } : {}), tls });
  cleanups.push(s.stop);
  return s;
}

async function text(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

function store(location: string, attempts = 5): { store: HttpStore; warnings: string[] } {
  const warnings: string[] = [];
  const onProgress = (e: ProgressEvent) => e.type === 'warning' && warnings.push(e.message);
  return { store: new HttpStore({ location, attempts, onProgress, timeouts: { headersMs: 400 } }), warnings };
}

const paths = (s: HttpServer) => s.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`);

describe('HttpStore redirects (undici redirect interceptor)', () => {
  it('follows a chain of same-scheme redirects, sending credentials to the same origin only', async () => {
    const other = await serve();
    const s = await serve((req, res) => {
      if (req.url?.startsWith('/a/')) return Boolean(res.writeHead(301, { location: `/b/${req.url.slice(3)}` }).end());
      if (req.url?.startsWith('/b/')) return Boolean(res.writeHead(307, { location: `/${req.url.slice(3)}` }).end());
      if (req.url?.startsWith('/away/')) return Boolean(res.writeHead(302, { location: `${other.url}/${req.url.slice(6)}` }).end());
      return false;
    });
    const base = `http://user:pw@127.0.0.1:${s.port}`;
    const obj = await openBuildStore(`${base}/a`).get('blob');
    expect(await text(obj!.body)).toBe(BLOB.toString());
    expect(paths(s)).toEqual(['GET /a/blob', 'GET /b/blob', 'GET /blob']);
    expect(s.requests.every((r) => r.headers.authorization === `Basic ${Buffer.from('user:pw').toString('base64')}`)).toBe(true);

    const moved = await openBuildStore(`${base}/away`).get('blob');
    expect(await text(moved!.body)).toBe(BLOB.toString());
    expect(paths(other)).toEqual(['GET /blob']);
    expect(other.requests[0]?.headers.authorization).toBeUndefined();
  });

  it('refuses a redirect to another scheme before anything is sent there', async () => {
    const tls = await serve(undefined, true);
    const s = await serve((_req, res) => Boolean(res.writeHead(302, { location: `${tls.url}/blob` }).end()));
    const err = await openBuildStore(s.url).get('blob').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_STORE_REDIRECT_REFUSED' });
    expect((err as Error).message).toContain('https://127.0.0.1');
    expect(tls.requests).toHaveLength(0);
    // Refused is final: one request, no retry.
    expect(s.requests).toHaveLength(1);
  });

  it('stops after maxRedirects hops with the redirect status', async () => {
    const s = await serve((req, res) => Boolean(res.writeHead(302, { location: `/loop${Number(/\d+/.exec(req.url ?? '')?.[0] ?? 0) + 1}/blob` }).end()));
    const err = await new HttpStore({ location: `${s.url}/loop0`, maxRedirects: 3 }).get('blob').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_STORE_HTTP_STATUS', status: 302 });
    expect(s.requests).toHaveLength(4);
  });
});

describe('HttpStore retries (undici retry interceptor with the shared policy)', () => {
  it('retries 503, 429 and a connection dropped before the answer, logging each retry', async () => {
    let n = 0;
    const s = await serve((_req, res) => {
      n++;
      if (n === 1) return Boolean(res.writeHead(503).end());
      if (n === 2) return Boolean(res.writeHead(429).end());
      if (n === 3) return Boolean(res.destroy());
      return false;
    });
    const { store: st, warnings } = store(s.url);
    const obj = await st.get('blob');
    expect(await text(obj!.body)).toBe(BLOB.toString());
    expect(s.requests).toHaveLength(4);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toBe(`GET ${s.url}/blob: attempt 1 of 5 failed (HTTP 503 for ${s.url}/blob); retrying`);
    expect(warnings[1]).toMatch(/attempt 2 of 5 failed \(.*429.*\); retrying$/);
    expect(warnings[2]).toMatch(/attempt 3 of 5 failed \(cannot reach .*\); retrying$/);
  });

  it('gives up after `attempts` with the last status, and never retries a 404', async () => {
    const s = await serve((req, res) => (req.url?.includes('broken') ? Boolean(res.writeHead(502).end()) : false));
    const { store: st, warnings } = store(s.url, 3);
    await expect(st.get('broken')).rejects.toMatchObject({ code: 'COSA_STORE_HTTP_STATUS', status: 502 });
    expect(s.requests).toHaveLength(3);
    expect(warnings).toHaveLength(2);
    expect(await st.get('missing')).toBeUndefined();
    expect(await st.head('missing')).toBeUndefined();
    expect(s.requests).toHaveLength(5);
  });

  it('starts a retry over from the store URL, redirects included', async () => {
    let failed = false;
    const s = await serve((req, res) => {
      if (req.url?.startsWith('/old/')) return Boolean(res.writeHead(301, { location: `/${req.url.slice(5)}` }).end());
      if (!failed) {
        failed = true;
        return Boolean(res.writeHead(500).end());
      }
      return false;
    });
    const info = await store(`${s.url}/old`).store.head('blob');
    expect(info?.size).toBe(BLOB.length);
    expect(paths(s)).toEqual(['HEAD /old/blob', 'HEAD /blob', 'HEAD /old/blob', 'HEAD /blob']);
  });

  it('retries a server that keeps quiet past the headers deadline', async () => {
    let stalled = false;
    const s = await serve(() => {
      if (stalled) return false;
      stalled = true;
      return true; // never answers
    });
    const { store: st, warnings } = store(s.url);
    const obj = await st.get('blob');
    expect(await text(obj!.body)).toBe(BLOB.toString());
    expect(warnings[0]).toMatch(/attempt 1 of 5 failed \(.*no answer within the deadline.*\); retrying$/);
  });

  it('leaves a body that breaks after the headers to the caller (no resume behind its back)', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.length });
      res.write(BLOB.subarray(0, 100), () => setTimeout(() => res.destroy(), 100));
      return true;
    });
    const { store: st, warnings } = store(s.url);
    const obj = await st.get('blob');
    await expect(text(obj!.body)).rejects.toThrow();
    expect(s.requests).toHaveLength(1);
    expect(warnings).toHaveLength(0);
  });

  it('an abort during the backoff ends the request at once as COSA_STORE_ABORTED', async () => {
    const s = await serve((_req, res) => Boolean(res.writeHead(503).end()));
    const { store: st } = store(s.url, 50);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const t0 = Date.now();
    await expect(st.get('blob', { signal: ac.signal })).rejects.toMatchObject({ code: 'COSA_STORE_ABORTED' });
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});
