import type { Readable } from 'node:stream';
import { CosaError, HttpStatusError, type OnProgress } from '@cosa/schema';
import type { Dispatcher } from 'undici';
import type { BuildStore, GetOptions, ObjectInfo, PutResult, RequestOptions, StoreObject } from './store.js';
import { abortError, backoffMs, checkKey, isTransient, logRetry, redactUrl, sleep, storeTimeouts, type StoreTimeouts } from './_util.js';

// undici is loaded when an HTTP store is first used: importing it costs every CLI command ~0.15 s.
let undiciModule: Promise<typeof import('undici')> | undefined;
const undici = (): Promise<typeof import('undici')> => (undiciModule ??= import('undici'));

/** Options of {@link HttpStore}. */
export interface HttpStoreOptions {
  /** `https://host/path` or `http://…`; user info becomes Basic auth, a query string is sent with every request. */
  location: string;
  /** The undici dispatcher (default: undici's global one, created lazily). Inject one to trust a CA or pool differently. */
  dispatcher?: Dispatcher;
  /** Attempts per request on connection errors, 5xx and 429 (default 5). */
  attempts?: number;
  /** Redirects followed per request, same scheme only (default 5). */
  maxRedirects?: number;
  /** Connect, headers and idle deadlines (defaults: {@link DEFAULT_TIMEOUTS}). */
  timeouts?: Partial<StoreTimeouts>;
  /** Receives a warning for every retried request. */
  onProgress?: OnProgress;
}

type Resp = Dispatcher.ResponseData;

/**
 * A read-only build store over HTTP(S) with undici: streamed GETs with byte ranges for
 * resuming, retries with backoff on connection errors and 5xx, redirects only to the same scheme.
 * HEAD and GET treat 404 and 403 as "missing" (S3 websites answer 403 for unknown keys).
 */
export class HttpStore implements BuildStore {
  readonly url: string;
  readonly writable = false;
  private readonly base: URL;
  private readonly auth: string | undefined;
  private readonly attempts: number;
  private readonly maxRedirects: number;
  private dispatcherValue: Dispatcher | undefined;
  private readonly timeouts: StoreTimeouts;
  private readonly onProgress: OnProgress | undefined;

  constructor(options: HttpStoreOptions) {
    const u = new URL(options.location);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new CosaError('COSA_STORE_URL_INVALID', `not an http(s) URL: ${redactUrl(u)}`);
    }
    this.auth = u.username || u.password ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}` : undefined;
    u.username = '';
    u.password = '';
    u.hash = '';
    if (!u.pathname.endsWith('/')) u.pathname += '/';
    this.base = u;
    this.url = redactUrl(u).replace(/\/$/, '');
    this.attempts = options.attempts ?? 5;
    this.maxRedirects = options.maxRedirects ?? 5;
    this.dispatcherValue = options.dispatcher;
    this.timeouts = storeTimeouts(options.timeouts);
    this.onProgress = options.onProgress;
  }

  /**
   * The dispatcher in use, on first use: the one given, else an Agent with this store's connect,
   * headers and idle deadlines (undici's own defaults wait 300 s for each).
   */
  async dispatcher(): Promise<Dispatcher> {
    const t = this.timeouts;
    this.dispatcherValue ??= new (await undici()).Agent({ connect: { timeout: t.connectMs }, headersTimeout: t.headersMs, bodyTimeout: t.idleMs });
    return this.dispatcherValue;
  }

  private target(key: string): URL {
    const u = new URL(checkKey(key).split('/').map(encodeURIComponent).join('/'), this.base);
    u.search = this.base.search;
    return u;
  }

  urlOf(key: string): string {
    return redactUrl(this.target(key));
  }

  /** One request with redirects (same scheme) and retries; the caller owns the returned body. */
  private async send(method: 'GET' | 'HEAD', key: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Resp> {
    const first = this.target(key);
    for (let attempt = 1; ; attempt++) {
      try {
        let url = first;
        for (let hop = 0; ; hop++) {
          const sameOrigin = url.origin === first.origin;
          const res = await (await undici()).request(url, {
            method,
            dispatcher: await this.dispatcher(),
            headers: { ...headers, ...(this.auth && sameOrigin ? { authorization: this.auth } : {}) },
            // Per request too, so an injected dispatcher cannot wait undici's 300 s either.
            headersTimeout: this.timeouts.headersMs,
            bodyTimeout: this.timeouts.idleMs,
            ...(signal ? { signal } : {}),
          }).catch((e: unknown) => {
            if (signal?.aborted) throw abortError(signal, e);
            const code = (e as { code?: string }).code ?? '';
            if (/TIMEOUT/.test(code)) throw new CosaError('COSA_STORE_TIMEOUT', `${redactUrl(url)}: ${code === 'UND_ERR_CONNECT_TIMEOUT' ? 'no connection' : 'no answer'} within the deadline (${code})`, { cause: e });
            throw new CosaError('COSA_STORE_UNREACHABLE', `cannot reach ${redactUrl(url)}: ${code || (e as Error).message}`, { cause: e });
          });
          if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304 && res.headers.location) {
            await res.body.dump();
            const next = new URL(String(res.headers.location), url);
            if (next.protocol !== url.protocol) {
              throw new CosaError('COSA_STORE_REDIRECT_REFUSED', `refusing redirect from ${redactUrl(url)} to another scheme (${next.protocol}//${next.host})`);
            }
            if (hop >= this.maxRedirects) throw new HttpStatusError(redactUrl(url), res.statusCode, { cause: new Error('too many redirects') });
            url = next;
            continue;
          }
          if (res.statusCode >= 500 || res.statusCode === 429) {
            await res.body.dump();
            throw new HttpStatusError(redactUrl(url), res.statusCode);
          }
          return res;
        }
      } catch (e) {
        if (signal?.aborted) throw abortError(signal, e);
        if (attempt >= this.attempts || !isTransient(e)) throw e;
        logRetry(this.onProgress, `${method} ${redactUrl(first)}`, attempt, this.attempts, e);
        await sleep(backoffMs(attempt), signal);
      }
    }
  }

  private info(res: Resp): ObjectInfo {
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) {
      if (k.startsWith('x-amz-meta-') && typeof v === 'string') metadata[k.slice(11)] = v;
    }
    const len = res.headers['content-length'];
    const range = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
    const size = range ? Number(range[1]) : len === undefined ? undefined : Number(len);
    const etag = res.headers.etag;
    return { size, etag: typeof etag === 'string' ? etag : undefined, metadata };
  }

  async head(key: string, options: RequestOptions = {}): Promise<ObjectInfo | undefined> {
    const res = await this.send('HEAD', key, {}, options.signal);
    await res.body.dump();
    if (res.statusCode === 404 || res.statusCode === 403 || res.statusCode === 410) return undefined;
    if (res.statusCode !== 200) throw new HttpStatusError(this.urlOf(key), res.statusCode);
    return this.info(res);
  }

  async get(key: string, options: GetOptions = {}): Promise<StoreObject | undefined> {
    const start = options.start ?? 0;
    const ranged = start > 0 || options.end !== undefined;
    const res = await this.send('GET', key, ranged ? { range: `bytes=${start}-${options.end ?? ''}` } : {}, options.signal);
    if (res.statusCode === 404 || res.statusCode === 403 || res.statusCode === 410) {
      await res.body.dump();
      return undefined;
    }
    if (res.statusCode !== 200 && !(res.statusCode === 206 && ranged)) {
      await res.body.dump();
      throw new HttpStatusError(this.urlOf(key), res.statusCode);
    }
    const len = res.headers['content-length'];
    const offset = res.statusCode === 206 ? Number(/bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''))?.[1] ?? start) : 0;
    return { ...this.info(res), body: res.body as unknown as Readable, offset, ...(len !== undefined ? { length: Number(len) } : {}) };
  }

  async put(key: string, body: Readable | Uint8Array): Promise<PutResult> {
    if (typeof (body as Readable).destroy === 'function') (body as Readable).destroy();
    throw new CosaError('COSA_STORE_READ_ONLY', `${this.urlOf(key)}: HTTP stores are read-only`, { hint: 'upload to an s3:// location' });
  }

  async delete(key: string): Promise<void> {
    throw new CosaError('COSA_STORE_READ_ONLY', `${this.urlOf(key)}: HTTP stores are read-only`);
  }
}
