import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveDirectory, type StaticServer } from '../src/kola/_http.js';

let root: string;
let server: StaticServer;

/** A raw GET (no URL normalisation by the client, so `..` reaches the server as typed). */
function get(path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'cosa-kola-http-'));
  await mkdir(join(root, 'repo', 'objects'), { recursive: true });
  await writeFile(join(root, 'repo', 'config'), '[core]\nmode=archive-z2\n');
  await writeFile(join(root, 'secret'), 'outside');
  server = await serveDirectory(join(root, 'repo'));
});
afterEach(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

describe('the OSTree repo server kola runs on 127.0.0.1', () => {
  it('serves files under its root and 404s the rest', async () => {
    expect(await get('/config')).toEqual({ status: 200, body: '[core]\nmode=archive-z2\n' });
    expect((await get('/summary')).status).toBe(404);
    expect((await get('/objects')).status).toBe(404);
    expect((await get('/config', 'HEAD')).status).toBe(200);
    expect((await get('/config', 'POST')).status).toBe(405);
  });

  it('never serves a file outside its root', async () => {
    for (const p of ['/../secret', '/%2e%2e/secret', '/objects/../../secret']) {
      const r = await get(p);
      expect(r.body).not.toContain('outside');
    }
    expect(server.hits.ok).toBe(0);
  });
});
