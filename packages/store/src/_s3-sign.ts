/**
 * SigV4 signing of a path-style GetObject without loading the AWS SDK client (≈0.15 s of a CLI
 * start): `@smithy/signature-v4` (the signer the SDK itself uses) with node:crypto's sha256. Used
 * only where the result is the one the SDK's default credential chain would give: its first link
 * (environment credentials) applies, i.e. no profile is named and AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY are set (`envCredentials` in s3-store.ts). Every other case (profiles,
 * config and credentials files, SSO, process, web identity, container and instance metadata)
 * stays with the SDK. Loaded on first use.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { SignedRequest } from './s3-raw-get.js';

/** Static credentials as the SDK's `fromEnv` reads them. */
export interface EnvCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** node:crypto behind the SDK's `Checksum` interface (sha256, or its HMAC with a secret). */
class NodeSha256 {
  private h: Hash | Hmac;
  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = this.fresh();
  }
  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    const key = typeof this.secret === 'string' ? this.secret : ArrayBuffer.isView(this.secret) ? Buffer.from(this.secret.buffer, this.secret.byteOffset, this.secret.byteLength) : Buffer.from(this.secret);
    return createHmac('sha256', key);
  }
  update(chunk: Uint8Array): void {
    this.h.update(chunk);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {
    this.h = this.fresh();
  }
}

/** The SDK's encoding of a key's path segments (encodeURIComponent plus `!'()*`). */
const encodeSegment = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Signs GetObject requests for one endpoint, region and set of credentials. */
export class GetSigner {
  private readonly signer: SignatureV4;
  private readonly host: string;
  private readonly hostname: string;
  private readonly port: number | undefined;
  private readonly base: string;

  constructor(endpoint: string, region: string, credentials: EnvCredentials) {
    const u = new URL(endpoint);
    this.host = u.host;
    this.hostname = u.hostname.replace(/^\[|\]$/g, '');
    this.port = u.port ? Number(u.port) : undefined;
    this.base = u.pathname.replace(/\/+$/, '');
    // As the S3 client signs: service s3, the path as sent (no second escaping), the payload hash in a header.
    this.signer = new SignatureV4({ service: 's3', region, credentials, sha256: NodeSha256, uriEscapePath: false, applyChecksum: true });
  }

  /** A signed path-style GET of `bucket`/`key`, with a `Range` header when given. */
  sign(bucket: string, key: string, range: string | undefined): Promise<SignedRequest> {
    return this.signPath(`${this.base}/${[bucket, ...key.split('/')].map(encodeSegment).join('/')}`, range);
  }

  /** A signed GET of an already escaped path on the endpoint's host (`date`: the signing time, default now). */
  async signPath(path: string, range: string | undefined, date?: Date): Promise<SignedRequest> {
    const headers: Record<string, string> = { host: this.host, ...(range ? { range } : {}) };
    const req = { method: 'GET', protocol: 'http:', hostname: this.hostname, path, query: {}, headers, ...(this.port !== undefined ? { port: this.port } : {}) };
    const signed = (await this.signer.sign(req, date ? { signingDate: date } : {})) as unknown as { headers: Record<string, string> };
    return { hostname: this.hostname, ...(this.port !== undefined ? { port: this.port } : {}), path, query: {}, headers: signed.headers };
  }
}
