/**
 * A misbehaving server for reliability tests, on 127.0.0.1: it serves a directory (an HTTP build
 * store) or forwards to an upstream (an S3 server), and answers chosen requests with a fault —
 * a stall, a trickle, a reset in the middle of the body, a 5xx or S3 SlowDown, a lying size, or
 * a hostile body of the test's choosing. Every request it saw is recorded.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** What the server does instead of (or to) its normal answer. */
export type Fault =
  /** Accepts the request and never answers. */
  | { kind: 'stall' }
  /** Sends the headers and `afterBytes` bytes of the real body, then goes silent. */
  | { kind: 'stall-body'; afterBytes: number }
  /** Sends the real body `bytes` at a time, one chunk every `everyMs`. */
  | { kind: 'trickle'; bytes: number; everyMs: number }
  /** Sends the headers and `afterBytes` bytes of the real body, then resets the connection. */
  | { kind: 'reset'; afterBytes: number }
  /** Answers with this status (503 + `s3Code: 'SlowDown'` gives S3's throttling answer). */
  | { kind: 'status'; status: number; s3Code?: string }
  /** Declares `declared` bytes (none: no Content-Length) and sends `send` bytes of filler. */
  | { kind: 'lie-size'; send: number; declared?: number }
  /** Answers 200 with this body (hostile JSON or tar). */
  | { kind: 'body'; body: Buffer | string; contentType?: string };

/** Which requests a fault applies to. */
export interface FaultRule {
  method?: string;
  /** A path (exact) or a pattern, matched against the request path without the query. */
  path?: string | RegExp;
  /** Only the n-th matching requests (1-based); default every one. */
  times?: number[];
  fault: Fault;
}

/** A request the fault server saw. */
export interface FaultRequest {
  method: string;
  path: string;
  /** The fault it got, if any. */
  fault?: Fault['kind'];
  /** Filler bytes written for a `lie-size` fault before the client stopped reading. */
  fillerSent?: number;
}

/** Options of {@link startFaultServer}. */
export interface FaultServerOptions {
  /** Directory served read-only (GET, HEAD, byte ranges). */
  root?: string;
  /** Forward every request without a fault to this `http://host:port` (e.g. an S3 server). */
  upstream?: string;
  rules?: FaultRule[];
}

/** A running fault server. */
export interface FaultServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: FaultRequest[];
  /** Replaces the rules (counters restart). */
  setRules(rules: FaultRule[]): void;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a fault server; stop it (or `await using`) to close every connection. */
export async function startFaultServer(options: FaultServerOptions): Promise<FaultServer> {
  let rules = options.rules ?? [];
  let seen = new Map<FaultRule, number>();
  const requests: FaultRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const pick = (req: IncomingMessage): Fault | undefined => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    for (const r of rules) {
      if (r.method && r.method !== req.method) continue;
      if (typeof r.path === 'string' && r.path !== path) continue;
      if (r.path instanceof RegExp && !r.path.test(path)) continue;
      const n = (seen.get(r) ?? 0) + 1;
      seen.set(r, n);
      if (r.times && !r.times.includes(n)) continue;
      return r.fault;
    }
    return undefined;
  };
  const server = createServer((req, res) => {
    const fault = pick(req);
    requests.push({ method: req.method ?? 'GET', path: new URL(req.url ?? '/', 'http://x').pathname, ...(fault ? { fault: fault.kind } : {}) });
    void answer(req, res, fault, requests[requests.length - 1]!).catch(() => res.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const answer = async (req: IncomingMessage, res: ServerResponse, fault: Fault | undefined, seenReq: FaultRequest): Promise<void> => {
    if (fault?.kind === 'stall') return; // the socket stays open until the client gives up
    if (fault?.kind === 'status') {
      req.resume();
      const body = fault.s3Code ? `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.s3Code}</Code><Message>injected</Message></Error>` : 'injected fault\n';
      res.writeHead(fault.status, { 'content-type': fault.s3Code ? 'application/xml' : 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (fault?.kind === 'body') {
      req.resume();
      const body = Buffer.from(fault.body);
      res.writeHead(200, { 'content-type': fault.contentType ?? 'application/octet-stream', 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (fault?.kind === 'lie-size') {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...(fault.declared !== undefined ? { 'content-length': String(fault.declared) } : {}) });
      await sendFiller(res, fault.send, seenReq);
      return;
    }
    const upstream = await openUpstream(req);
    if (!upstream) {
      res.writeHead(404).end();
      return;
    }
    const { status, headers, body } = upstream;
    res.writeHead(status, headers);
    if (!fault) {
      await pipeline(body, res);
      return;
    }
    await faultyBody(res, body, fault);
  };

  /** The normal answer: from the upstream server, or from the directory. */
  const openUpstream = async (req: IncomingMessage): Promise<{ status: number; headers: Record<string, string | string[]>; body: Readable } | undefined> => {
    if (options.upstream) {
      const up = new URL(options.upstream);
      return await new Promise((ok, fail) => {
        const r = httpRequest({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (resp) => {
          ok({ status: resp.statusCode ?? 502, headers: resp.headers as Record<string, string | string[]>, body: resp });
        });
        r.on('error', fail);
        req.pipe(r);
      });
    }
    req.resume();
    const root = resolve(options.root ?? '.');
    const path = resolve(root, `.${decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)}`);
    if (path !== root && !path.startsWith(root + sep)) return undefined;
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Math.min(Number(range[1]), st.size) : 0;
    const headers: Record<string, string> = { 'content-length': String(st.size - start), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (range) headers['content-range'] = `bytes ${start}-${st.size - 1}/${st.size}`;
    const body = req.method === 'HEAD' || st.size === start ? emptyStream() : createReadStream(path, { start });
    return { status: range ? 206 : 200, headers, body };
  };

  const delay = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(() => {
        timers.delete(t);
        r();
      }, ms);
      timers.add(t);
    });

  const sendFiller = async (res: ServerResponse, n: number, seenReq: FaultRequest): Promise<void> => {
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    seenReq.fillerSent = 0;
    for (let sent = 0; sent < n && !res.destroyed; sent += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, n - sent));
      seenReq.fillerSent += part.length;
      if (!res.write(part)) await new Promise<void>((r) => res.once('drain', r).once('close', r));
    }
    res.end();
  };

  const faultyBody = async (res: ServerResponse, body: AsyncIterable<Buffer | string>, fault: Fault): Promise<void> => {
    let sent = 0;
    for await (const c of body) {
      let buf = Buffer.isBuffer(c) ? c : Buffer.from(c);
      while (buf.length > 0) {
        if (res.destroyed) return;
        if (fault.kind === 'trickle') {
          res.write(buf.subarray(0, fault.bytes));
          buf = buf.subarray(fault.bytes);
          await delay(fault.everyMs);
          continue;
        }
        const limit = fault.kind === 'stall-body' || fault.kind === 'reset' ? fault.afterBytes : Infinity;
        const take = Math.min(buf.length, limit - sent);
        if (take > 0) res.write(buf.subarray(0, take));
        sent += take;
        buf = buf.subarray(take);
        if (sent >= limit) {
          if (fault.kind === 'reset') res.socket?.resetAndDestroy();
          return; // stall-body: silent until the client leaves
        }
      }
    }
    res.end();
  };

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setRules(next) {
      rules = next;
      seen = new Map();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

function emptyStream(): Readable {
  return Readable.from([]);
}
