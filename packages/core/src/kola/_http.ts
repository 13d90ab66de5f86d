/**
 * A read-only static file server on 127.0.0.1 for an archive-mode OSTree repo (what a guest pulls
 * from through qemu's user network, where the host is 10.0.2.2). GET and HEAD only; paths never
 * leave the root.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize, sep } from 'node:path';

/** A running server; `close()` it in `finally`. */
export interface StaticServer {
  port: number;
  /** Requests served, by status (for the report). */
  hits: { ok: number; notFound: number };
  close(): Promise<void>;
}

/** Serves `root` on 127.0.0.1 at an ephemeral port. */
export async function serveDirectory(root: string): Promise<StaticServer> {
  const hits = { ok: 0, notFound: 0 };
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405).end();
        return;
      }
      const url = new URL(req.url ?? '/', 'http://localhost');
      const rel = normalize(decodeURIComponent(url.pathname)).replace(/^([/\\])+/, '');
      const file = join(root, rel);
      const st = rel.split(sep).includes('..') ? undefined : await stat(file).catch(() => undefined);
      if (!st?.isFile()) {
        hits.notFound++;
        res.writeHead(404).end();
        return;
      }
      hits.ok++;
      res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).on('error', () => res.destroy()).pipe(res);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
