import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** One request the server saw. */
export interface SeenRequest {
  method: string;
  /** Path and query as sent. */
  url: string;
  headers: IncomingMessage['headers'];
}

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** Directory served read-only at `/`. */
  root: string;
  /** Serve HTTPS with a fresh self-signed certificate for 127.0.0.1 (made with openssl). */
  tls?: boolean;
  /**
   * Runs before the file handler; return true when it answered the request itself (used to
   * cause faults: 5xx, redirects, dropped connections).
   */
  hook?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
}

/** A running static file server on 127.0.0.1. */
export interface HttpServer {
  /** `http(s)://127.0.0.1:<port>` (no trailing slash). */
  url: string;
  port: number;
  /** PEM of the self-signed certificate (TLS only), to trust in a client. */
  ca?: string;
  requests: SeenRequest[];
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function selfSigned(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cosa-tls-'));
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
      { stdio: 'ignore' },
    );
    return { key: await readFile(join(dir, 'key.pem'), 'utf8'), cert: await readFile(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Serves a directory over HTTP or HTTPS with GET, HEAD and single byte ranges. */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const root = resolve(options.root);
  const requests: SeenRequest[] = [];
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    try {
      if (options.hook && (await options.hook(req, res))) return;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405).end();
        return;
      }
      const path = resolve(root, `.${decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)}`);
      if (path !== root && !path.startsWith(root + sep)) {
        res.writeHead(403).end();
        return;
      }
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) {
        res.writeHead(404).end();
        return;
      }
      let start = 0;
      let end = st.size - 1;
      let status = 200;
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (range) {
        start = Number(range[1]);
        if (range[2]) end = Math.min(end, Number(range[2]));
        if (start > end) {
          res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
          return;
        }
        status = 206;
      }
      res.writeHead(status, {
        'content-length': end - start + 1,
        'content-type': 'application/octet-stream',
        'accept-ranges': 'bytes',
        etag: `"${st.size}-${st.mtimeMs}"`,
        ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${st.size}` } : {}),
      });
      if (req.method === 'HEAD' || st.size === 0) {
        res.end();
        return;
      }
      await pipeline(createReadStream(path, { start, end }), res);
    } catch {
      res.destroy();
    }
  };
  let server: Server;
  let ca: string | undefined;
  if (options.tls) {
    const { key, cert } = await selfSigned();
    ca = cert;
    server = createHttpsServer({ key, cert }, (req, res) => void handler(req, res));
  } else {
    server = createHttpServer((req, res) => void handler(req, res));
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    ...(ca === undefined ? {} : { ca }),
    requests,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
