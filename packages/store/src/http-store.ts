import type { Readable } from 'node:stream';
import { CosaError, HttpStatusError, type OnProgress } from '@cosa/schema';
import { nextRetryDelay } from '@cosa/schema/internal';
import type { Dispatcher, RetryHandler } from 'undici';
import type { BuildStore, GetOptions, ObjectInfo, PutResult, RequestOptions, StoreObject } from './store.js';
import { abortError, checkKey, redactUrl, sleep, storeTimeouts, transferRetry, type StoreTimeouts } from './_util.js';

// undici is loaded when an HTTP store is first used: importing it costs every CLI command ~0.15 s.
let undiciModule: Promise<typeof import('undici')> | undefined;
const undici = (): Promise<typeof import('undici')> => (undiciModule ??= import('undici'));

/** Options of {@link HttpStore}. */
export interface HttpStoreOptions {
  /** `https://host/path` or `http://…`; user info becomes Basic auth, a query string is sent with every request. */
  location: string;
  /**
   * The undici dispatcher (default: an Agent with this store's deadlines, created lazily). Inject
   * one to trust a CA or pool differently; the store composes its redirect and retry interceptors
   * over it.
   */
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

type Resp = Dispatcher.ResponseData<unknown>;

/** What the dispatcher's interceptors know of one {@link HttpStore} request (carried in its options). */
interface Exchange {
  /** `GET https://…/key`, as retry warnings name it. */
  what: string;
  signal: AbortSignal | undefined;
  /** Failures seen so far. */
  failures: number;
  /** The answer went to the caller: a body that breaks now is the caller's to resume (with its own range). */
  delivered: boolean;
}
const kExchange = Symbol('cosa.exchange');
type ExchangeOpts = Dispatcher.DispatchOptions & { [kExchange]?: Exchange };

/** The URL a dispatch goes to, redacted. */
const hopUrl = (opts: Dispatcher.DispatchOptions): string => redactUrl(new URL(opts.path, opts.origin));

/** An undici failure as a store error: a deadline is COSA_STORE_TIMEOUT, anything else COSA_STORE_UNREACHABLE. */
function transportError(e: unknown, url: string, signal: AbortSignal | undefined): CosaError {
  if (e instanceof CosaError) return e;
  if (signal?.aborted) return abortError(signal, e);
  const code = (e as { code?: string }).code ?? '';
  if (/TIMEOUT/.test(code)) return new CosaError('COSA_STORE_TIMEOUT', `${url}: ${code === 'UND_ERR_CONNECT_TIMEOUT' ? 'no connection' : 'no answer'} within the deadline (${code})`, { cause: e });
  return new CosaError('COSA_STORE_UNREACHABLE', `cannot reach ${url}: ${code || (e as Error).message}`, { cause: e });
}

/**
 * Refuses a dispatch to another scheme than the store's, a redirect hop included (no https → http
 * downgrade), before anything is sent.
 */
function sameSchemeOnly(base: URL): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => {
    const to = new URL(opts.path, opts.origin);
    if (to.protocol === base.protocol) return dispatch(opts, handler);
    const e = new CosaError('COSA_STORE_REDIRECT_REFUSED', `refusing redirect from ${redactUrl(base)} to another scheme (${to.protocol}//${to.host})`);
    handler.onResponseError?.(null as unknown as Dispatcher.DispatchController, e);
    return true;
  };
}

/** Marks the exchange delivered as the answer's headers go to the caller (the outermost interceptor). */
const markDelivered: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
  const x = (opts as ExchangeOpts)[kExchange];
  if (!x) return dispatch(opts, handler);
  return dispatch(opts, {
    onRequestStart: (c, ctx) => handler.onRequestStart?.(c, ctx),
    onRequestUpgrade: (c, status, headers, socket) => handler.onRequestUpgrade?.(c, status, headers, socket),
    onResponseStart: (c, status, headers, message) => {
      x.delivered = true;
      handler.onResponseStart?.(c, status, headers, message);
    },
    onResponseData: (c, chunk) => handler.onResponseData?.(c, chunk),
    onResponseEnd: (c, trailers) => handler.onResponseEnd?.(c, trailers),
    onResponseError: (c, e) => handler.onResponseError?.(c, e),
  });
};

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
  private readonly given: Dispatcher | undefined;
  private composed: Promise<Dispatcher> | undefined;
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
    this.given = options.dispatcher;
    this.timeouts = storeTimeouts(options.timeouts);
    this.onProgress = options.onProgress;
  }

  /**
   * The dispatcher in use, on first use: the one given, else an Agent with this store's connect,
   * headers and idle deadlines (undici's own defaults wait 300 s for each), composed with undici's
   * redirect and retry interceptors (and a guard that refuses another scheme).
   */
  dispatcher(): Promise<Dispatcher> {
    return (this.composed ??= this.compose());
  }

  private async compose(): Promise<Dispatcher> {
    const { Agent, interceptors } = await undici();
    const t = this.timeouts;
    const base = this.given ?? new Agent({ connect: { timeout: t.connectMs }, headersTimeout: t.headersMs, bodyTimeout: t.idleMs });
    // compose(a, b, c) wraps outward: a retry starts the redirect chain again from the store's URL.
    return base.compose(
      sameSchemeOnly(this.base),
      interceptors.redirect({ maxRedirections: this.maxRedirects }),
      interceptors.retry({ throwOnError: false, retry: (err, ctx, cb) => this.decide(err, ctx.opts, cb) }),
      markDelivered,
    );
  }

  /**
   * The retry policy, for undici's retry interceptor: connection errors, deadlines, 5xx and 429
   * are tried again (up to `attempts`, the shared backoff, every retry a warning); other answers go
   * to the caller as they are, and so does a body that breaks after its headers were handed over.
   */
  private decide(err: Error, opts: RetryHandler.RetryContext['opts'], cb: RetryHandler.OnRetryCallback): void {
    const x = (opts as ExchangeOpts)[kExchange];
    if (!x || x.delivered || x.signal?.aborted) return cb(err);
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== undefined && status < 500 && status !== 429) return cb(err);
    const e = status !== undefined ? new HttpStatusError(hopUrl(opts), status) : transportError(err, hopUrl(opts), x.signal);
    const wait = nextRetryDelay(e, ++x.failures, transferRetry(x.what, { attempts: this.attempts, signal: x.signal, onProgress: this.onProgress }));
    if (wait === undefined) return cb(e);
    sleep(wait, x.signal).then(() => cb(null), cb);
  }

  private target(key: string): URL {
    const u = new URL(checkKey(key).split('/').map(encodeURIComponent).join('/'), this.base);
    u.search = this.base.search;
    return u;
  }

  urlOf(key: string): string {
    return redactUrl(this.target(key));
  }

  /** One request through the composed dispatcher (redirects, retries); the caller owns the returned body. */
  private async send(method: 'GET' | 'HEAD', key: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Resp> {
    const url = this.target(key);
    const exchange: Exchange = { what: `${method} ${redactUrl(url)}`, signal, failures: 0, delivered: false };
    const res = await (await undici())
      .request(url, {
        method,
        dispatcher: await this.dispatcher(),
        // undici's redirect drops the authorization header when a hop leaves this origin.
        headers: { ...headers, ...(this.auth ? { authorization: this.auth } : {}) },
        // Per request too, so an injected dispatcher cannot wait undici's 300 s either.
        headersTimeout: this.timeouts.headersMs,
        bodyTimeout: this.timeouts.idleMs,
        ...(signal ? { signal } : {}),
        [kExchange]: exchange,
      } as Parameters<typeof import('undici').request>[1])
      .catch((e: unknown) => {
        if (signal?.aborted) throw abortError(signal, e);
        throw transportError(e, redactUrl(url), signal);
      });
    if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304 && res.headers.location) {
      await res.body.dump();
      throw new HttpStatusError(redactUrl(url), res.statusCode, { cause: new Error(`more than ${this.maxRedirects} redirects`) });
    }
    if (res.statusCode >= 500 || res.statusCode === 429) {
      await res.body.dump();
      throw new HttpStatusError(redactUrl(url), res.statusCode);
    }
    return res;
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
