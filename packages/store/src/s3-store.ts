import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ObjectCannedACL, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { CosaError, HttpStatusError } from '@cosa/schema';
import type { BuildStore, GetOptions, ObjectInfo, PutOptions, PutResult, RequestOptions, StoreObject } from './store.js';
import { abortError, checkKey, countingStream, joinKey, storeTimeouts, type StoreTimeouts } from './_util.js';
import { checksumMismatch, Sha256Check } from './_verify.js';
import { rawGet, RawUnsupported, type SignedRequest } from './s3-raw-get.js';
import type { EnvCredentials, GetSigner } from './_s3-sign.js';

/** Options of {@link S3Store}. */
export interface S3StoreOptions {
  /** `s3://bucket/prefix` (or `bucket/prefix`, as `cosa buildupload s3` takes it). */
  location: string;
  /** The client to use (default: one created on first use from the options below). */
  client?: S3Client;
  /** A custom endpoint (S3-compatible stores); default `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`. */
  endpointUrl?: string;
  /** Region; default AWS_REGION / AWS_DEFAULT_REGION / the config file / `us-east-1`. */
  region?: string;
  /** Path-style addressing; default true when a custom endpoint is set, else false. */
  forcePathStyle?: boolean;
  /** An AWS config file to read credentials and region from (like `AWS_CONFIG_FILE`). */
  awsConfigFile?: string;
  /** Profile in the config file (default `AWS_PROFILE` or `default`). */
  profile?: string;
  /** Multipart part size in bytes (default 8 MiB, minimum 5 MiB). */
  partSize?: number;
  /** Parts of one object sent at the same time (default 2). */
  queueSize?: number;
  /**
   * Sign object bodies (`x-amz-content-sha256` = their sha256) or send them as UNSIGNED-PAYLOAD.
   * `auto` (default): unsigned over HTTPS, where TLS already protects them, and to a loopback
   * endpoint (127.0.0.0/8, ::1, localhost: no wire to tamper with); signed over plain HTTP to
   * any other host, as boto3 does. Signing costs one more sha256 pass over every byte. Applies
   * to the client created here, not to an injected one.
   */
  payloadSigning?: 'auto' | 'always' | 'never';
  /** Connect and idle deadlines of the client created here (defaults: {@link DEFAULT_TIMEOUTS}). */
  timeouts?: Partial<StoreTimeouts>;
}

/** Reads `region` of a profile from an AWS config file (INI); undefined when absent. */
function regionFromConfig(file: string, profile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) section = sec[1]!.trim().replace(/^profile\s+/, '');
    else if (section === profile) {
      const kv = /^region\s*=\s*(\S+)/.exec(line);
      if (kv) return kv[1];
    }
  }
  return undefined;
}

/**
 * The environment credentials the SDK's default chain would use, or undefined when the chain
 * would look elsewhere: a profile named (option or AWS_PROFILE) skips the environment, as does a
 * missing key or secret.
 */
function envCredentials(profile: string | undefined, env: NodeJS.ProcessEnv = process.env): EnvCredentials | undefined {
  if (profile ?? env.AWS_PROFILE) return undefined;
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return undefined;
  return { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
}

/** Parses `s3://bucket/prefix` or `bucket/prefix` into bucket and prefix (no slashes at the ends). */
export function parseS3Location(location: string): { bucket: string; prefix: string } {
  const rest = location.startsWith('s3://') ? location.slice(5) : location;
  const [bucket = '', ...parts] = rest.split('/');
  const prefix = parts.filter((p) => p !== '').join('/');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || prefix.split('/').some((p) => p === '.' || p === '..')) {
    throw new CosaError('COSA_STORE_URL_INVALID', `not a valid S3 location: ${JSON.stringify(location)}`, { hint: 'use s3://BUCKET/PREFIX' });
  }
  return { bucket, prefix };
}

// The AWS SDK takes a while to load: only S3 locations pay for it, on first use.
let sdkModule: Promise<typeof import('@aws-sdk/client-s3')> | undefined;
const sdk = () => (sdkModule ??= import('@aws-sdk/client-s3'));
let signingModule: Promise<typeof import('./_s3-sign.js')> | undefined;
const signing = () => (signingModule ??= import('./_s3-sign.js'));
let storageModule: Promise<typeof import('@aws-sdk/lib-storage')> | undefined;
const storage = () => (storageModule ??= import('@aws-sdk/lib-storage'));

/** Whether an endpoint URL names this machine (loopback address or `localhost`). */
function loopback(endpoint: string): boolean {
  let host: string;
  try {
    host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return false;
  }
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Reads a stream body of at most `max` bytes into memory. */
async function readSmall(body: Readable, max: number, url: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > max) throw new CosaError('COSA_STORE_CHECKSUM_MISMATCH', `the body for ${url} grew past ${max} bytes while it was read; not published`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Thrown by the capture middleware: the signed request is taken, nothing is sent. */
class CapturedRequest extends Error {}

interface SdkError {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * A build store in an S3 bucket under a prefix, on AWS or any S3-compatible server. Large
 * objects go up as parallel multipart uploads (lib-storage). Checksums are computed only when
 * an operation requires them (`WHEN_REQUIRED`), which S3-compatible servers handle best.
 */
export class S3Store implements BuildStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly url: string;
  readonly writable = true;
  /** S3 answers every satisfiable ranged GetObject with that range. */
  readonly honoursRanges = true;
  readonly partSize: number;
  readonly queueSize: number;
  private clientValue: S3Client | undefined;
  /** Set when the endpoint answered something the raw reader leaves to the SDK. */
  private rawOff = false;
  /** The lean GET signer once decided (null: the SDK signs). */
  private leanSignerValue: Promise<GetSigner> | null | undefined;
  private readonly options: S3StoreOptions;

  constructor(options: S3StoreOptions) {
    const { bucket, prefix } = parseS3Location(options.location);
    this.bucket = bucket;
    this.prefix = prefix;
    this.url = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    this.options = options;
    this.partSize = Math.max(5 * 1024 * 1024, options.partSize ?? 8 * 1024 * 1024);
    this.queueSize = Math.max(1, options.queueSize ?? 2);
    this.clientValue = options.client;
  }

  /** The custom endpoint: the option, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (undefined: AWS itself). */
  private endpoint(): string | undefined {
    return this.options.endpointUrl ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  }

  /** The region: the option, AWS_REGION, AWS_DEFAULT_REGION, the config file's profile, or us-east-1. */
  private region(): string {
    const o = this.options;
    const env = process.env;
    const profile = o.profile ?? env.AWS_PROFILE ?? 'default';
    const configFile = o.awsConfigFile ?? env.AWS_CONFIG_FILE ?? join(homedir(), '.aws', 'config');
    return o.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? regionFromConfig(configFile, profile) ?? 'us-east-1';
  }

  /** The S3 client (created on first use unless one was injected; loads the SDK then). */
  async client(): Promise<S3Client> {
    if (!this.clientValue) {
      const { S3Client } = await sdk();
      const o = this.options;
      const env = process.env;
      const endpoint = this.endpoint();
      const timeouts = storeTimeouts(o.timeouts);
      const region = this.region();
      const config: S3ClientConfig & { configFilepath?: string } = {
        region,
        // Without these the SDK waits forever on a server that accepts and never answers.
        requestHandler: {
          connectionTimeout: timeouts.connectMs,
          socketTimeout: timeouts.idleMs,
          // The whole request (a part of at most 64 MiB at the minimum rate, or the headers).
          requestTimeout: Math.max(timeouts.headersMs, Math.ceil(((64 * 1024 * 1024) / Math.max(1, timeouts.minBytesPerSecond)) * 1000)),
          throwOnRequestTimeout: true,
        },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...(endpoint ? { endpoint, forcePathStyle: o.forcePathStyle ?? true } : o.forcePathStyle ? { forcePathStyle: true } : {}),
        ...(o.profile ? { profile: o.profile } : {}),
        // The default credential chain reads this (like AWS_CONFIG_FILE) without touching process.env.
        ...(o.awsConfigFile ? { configFilepath: o.awsConfigFile } : {}),
      };
      const client = new S3Client(config);
      const signing = o.payloadSigning ?? 'auto';
      const unsigned = signing === 'never' || (signing === 'auto' && (endpoint === undefined || endpoint.startsWith('https:') || loopback(endpoint)));
      if (unsigned) {
        client.middlewareStack.add(
          (next, context) => async (args) => {
            const req = args.request as { headers?: Record<string, string> } | undefined;
            if (req?.headers && (context.commandName === 'PutObjectCommand' || context.commandName === 'UploadPartCommand')) {
              req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
            }
            return next(args);
          },
          { step: 'build', name: 'cosaUnsignedPayload' },
        );
      }
      this.clientValue ??= client;
    }
    return this.clientValue;
  }

  private keyOf(key: string): string {
    return joinKey(this.prefix, checkKey(key));
  }

  urlOf(key: string): string {
    return `s3://${this.bucket}/${this.keyOf(key)}`;
  }

  private fail(e: unknown, key: string, signal: AbortSignal | undefined): CosaError {
    if (e instanceof CosaError) return e;
    if (signal?.aborted || (e as SdkError).name === 'AbortError') return abortError(signal, e);
    const status = (e as SdkError).$metadata?.httpStatusCode;
    if (status !== undefined) {
      const conflict = status === 412 || status === 409;
      return new HttpStatusError(this.urlOf(key), status, { cause: e, ...(conflict ? { code: 'COSA_STORE_CONFLICT' as const } : {}) });
    }
    const what = (e as { code?: string }).code ?? (e as SdkError).name ?? 'error';
    if ((e as SdkError).name === 'TimeoutError' || what === 'ETIMEDOUT') {
      // The client's connect, idle or whole-request deadline passed (see `client()`).
      return new CosaError('COSA_STORE_TIMEOUT', `${this.urlOf(key)}: no answer within the deadline (${(e as Error).message?.split('\n')[0] ?? what})`, { cause: e });
    }
    return new CosaError('COSA_STORE_UNREACHABLE', `cannot reach ${this.urlOf(key)}: ${what}`, { cause: e });
  }

  private static missing(e: unknown): boolean {
    const s = (e as SdkError).$metadata?.httpStatusCode;
    return s === 404 || (e as SdkError).name === 'NotFound' || (e as SdkError).name === 'NoSuchKey';
  }

  async head(key: string, options: RequestOptions = {}): Promise<ObjectInfo | undefined> {
    try {
      const { HeadObjectCommand } = await sdk();
      const r = await (await this.client()).send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }), options.signal ? { abortSignal: options.signal } : {});
      return { size: r.ContentLength, etag: r.ETag, metadata: { ...(r.Metadata ?? {}) } };
    } catch (e) {
      if (S3Store.missing(e)) return undefined;
      throw this.fail(e, key, options.signal);
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<StoreObject | undefined> {
    if (this.plainHttp()) {
      try {
        return await this.getRaw(key, options);
      } catch (e) {
        if (!(e instanceof RawUnsupported)) throw e;
        this.rawOff = true;
      }
    }
    const start = options.start ?? 0;
    try {
      const { GetObjectCommand } = await sdk();
      const r = await (await this.client()).send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key), ...(start > 0 || options.end !== undefined ? { Range: `bytes=${start}-${options.end ?? ''}` } : {}) }),
        options.signal ? { abortSignal: options.signal } : {},
      );
      const total = /\/(\d+)$/.exec(r.ContentRange ?? '');
      const offset = r.ContentRange ? Number(/bytes (\d+)-/.exec(r.ContentRange)?.[1] ?? 0) : 0;
      return {
        size: total ? Number(total[1]) : r.ContentLength,
        etag: r.ETag,
        metadata: { ...(r.Metadata ?? {}) },
        body: r.Body as Readable,
        offset,
        ...(r.ContentLength !== undefined ? { length: r.ContentLength } : {}),
      };
    } catch (e) {
      if (S3Store.missing(e)) return undefined;
      if ((e as SdkError).$metadata?.httpStatusCode === 416) return { size: start, etag: undefined, metadata: {}, body: Readable.from([]), offset: start };
      throw this.fail(e, key, options.signal);
    }
  }

  /** Whether object bodies are read with {@link rawGet}: a plain-HTTP endpoint, not turned off. */
  private plainHttp(): boolean {
    if (this.rawOff || this.options.client) return false;
    const endpoint = this.endpoint();
    return endpoint?.startsWith('http:') === true;
  }

  /**
   * The lean signer (see _s3-sign.ts) when it gives what the client would: path-style addressing
   * and the environment credentials the default chain would take; undefined otherwise.
   */
  private leanSigner(): Promise<GetSigner> | undefined {
    if (this.leanSignerValue !== undefined) return this.leanSignerValue ?? undefined;
    const o = this.options;
    const endpoint = this.endpoint();
    const creds = envCredentials(o.profile || undefined);
    this.leanSignerValue = endpoint === undefined || o.forcePathStyle === false || !creds ? null : signing().then((m) => new m.GetSigner(endpoint, this.region(), creds));
    return this.leanSignerValue ?? undefined;
  }

  /** Signs a GetObject exactly as the client would send it, without sending it. */
  private async signedGet(key: string, range: string | undefined, signal: AbortSignal | undefined): Promise<SignedRequest> {
    const lean = this.leanSigner();
    if (lean) return (await lean).sign(this.bucket, this.keyOf(key), range);
    const { GetObjectCommand } = await sdk();
    const cmd = new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key), ...(range ? { Range: range } : {}) });
    let signed: SignedRequest | undefined;
    const capture = () => async (args: { request: unknown }) => {
      signed = args.request as SignedRequest;
      throw new CapturedRequest();
    };
    cmd.middlewareStack.addRelativeTo(
      capture as unknown as Parameters<typeof cmd.middlewareStack.addRelativeTo>[0],
      { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'cosaCaptureSignedRequest' },
    );
    try {
      await (await this.client()).send(cmd, signal ? { abortSignal: signal } : {});
    } catch (e) {
      if (!(e instanceof CapturedRequest) || !signed) throw this.fail(e, key, signal);
    }
    return signed!;
  }

  /** `get` over a lean socket reader (see s3-raw-get.ts); the same answers as the SDK path. */
  private async getRaw(key: string, options: GetOptions): Promise<StoreObject | undefined> {
    const start = options.start ?? 0;
    const range = start > 0 || options.end !== undefined ? `bytes=${start}-${options.end ?? ''}` : undefined;
    const req = await this.signedGet(key, range, options.signal);
    const a = await rawGet(req, storeTimeouts(this.options.timeouts), options.signal);
    if (a.status === 200 || a.status === 206) {
      const cr = a.headers['content-range'];
      const total = /\/(\d+)$/.exec(cr ?? '');
      const length = Number(a.headers['content-length']);
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(a.headers)) if (k.startsWith('x-amz-meta-')) metadata[k.slice(11)] = v;
      return { size: total ? Number(total[1]) : length, etag: a.headers.etag, metadata, body: a.body, drain: a.drain, offset: cr ? Number(/bytes (\d+)-/.exec(cr)?.[1] ?? 0) : 0, length };
    }
    a.body.resume();
    if (a.status === 404) return undefined;
    if (a.status === 416) return { size: start, etag: undefined, metadata: {}, body: Readable.from([]), offset: start };
    throw new HttpStatusError(this.urlOf(key), a.status);
  }

  async put(key: string, body: Readable | Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    const signal = options.signal;
    const params = {
      Bucket: this.bucket,
      Key: this.keyOf(key),
      ...(options.contentType ? { ContentType: options.contentType } : {}),
      ...(options.cacheControl ? { CacheControl: options.cacheControl } : {}),
      ...(options.contentEncoding ? { ContentEncoding: options.contentEncoding } : {}),
      ...(options.contentDisposition ? { ContentDisposition: options.contentDisposition } : {}),
      ...(options.metadata ? { Metadata: options.metadata } : {}),
      ...(options.acl ? { ACL: options.acl as ObjectCannedACL } : {}),
    };
    const size = body instanceof Uint8Array ? body.length : options.size;
    const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined;
    let check: Sha256Check | undefined;
    try {
      if (body instanceof Uint8Array || conditional || (size !== undefined && size <= this.partSize)) {
        let payload: Readable | Uint8Array = body;
        if (options.sha256 !== undefined) {
          // One PUT cannot be held back: a small body is read and checked first, then sent.
          payload = body instanceof Uint8Array ? body : await readSmall(body, Math.max(this.partSize, size ?? 0), this.urlOf(key));
          const got = createHash('sha256').update(payload).digest('hex');
          if (got !== options.sha256) throw checksumMismatch(this.urlOf(key), got, options.sha256);
        } else if (!(body instanceof Uint8Array)) {
          payload = body.pipe(countingStream(options.onBytes));
          body.on('error', (e) => (payload as Readable).destroy(e));
        }
        const { PutObjectCommand } = await sdk();
        const r = await (await this.client()).send(
          new PutObjectCommand({
            ...params,
            Body: payload,
            ...(payload instanceof Uint8Array ? { ContentLength: payload.length } : size !== undefined ? { ContentLength: size } : {}),
            ...(options.ifMatch !== undefined ? { IfMatch: options.ifMatch } : {}),
            ...(options.ifNoneMatch !== undefined ? { IfNoneMatch: options.ifNoneMatch } : {}),
          }),
          signal ? { abortSignal: signal } : {},
        );
        if (payload instanceof Uint8Array) options.onBytes?.(payload.length);
        return { etag: r.ETag };
      }
      const ac = new AbortController();
      const onAbort = () => ac.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const { Upload } = await storage();
        // The body is hashed as lib-storage reads it; a mismatch fails the stream at its end,
        // before the last part is handed out, so the upload is aborted and never completed.
        check = new Sha256Check(options.sha256, this.urlOf(key));
        body.on('error', (e) => check!.destroy(e));
        const upload = new Upload({
          client: await this.client(),
          params: { ...params, Body: body.pipe(check) },
          partSize: this.partSize,
          queueSize: this.queueSize,
          leavePartsOnError: false,
          abortController: ac,
        });
        upload.on('httpUploadProgress', (p) => {
          if (p.loaded !== undefined) options.onBytes?.(p.loaded);
        });
        const r = await upload.done();
        return { etag: r.ETag };
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    } catch (e) {
      if (!(body instanceof Uint8Array)) body.destroy();
      if (check?.mismatch && e !== check.mismatch) {
        // lib-storage throws the AbortMultipartUpload failure instead: the parts may be left.
        const m = check.mismatch;
        throw new CosaError('COSA_STORE_CHECKSUM_MISMATCH', `${m.message}; aborting its multipart upload failed too`, {
          hint: `abort the pending multipart upload of ${this.urlOf(key)} by hand (aws s3api list-multipart-uploads)`,
          cause: e,
        });
      }
      if (conditional && S3Store.missing(e)) {
        throw new HttpStatusError(this.urlOf(key), 404, { code: 'COSA_STORE_CONFLICT', cause: e });
      }
      throw this.fail(e, key, signal);
    }
  }

  async delete(key: string, options: RequestOptions = {}): Promise<void> {
    try {
      const { DeleteObjectCommand } = await sdk();
      await (await this.client()).send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }), options.signal ? { abortSignal: options.signal } : {});
    } catch (e) {
      if (S3Store.missing(e)) return;
      throw this.fail(e, key, options.signal);
    }
  }
}
