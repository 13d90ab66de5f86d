/**
 * The one interface every build store backend implements. A backend maps keys such as
 * `builds.json` or `<id>/<arch>/meta.json`, relative to the location's prefix, onto its objects.
 */
import type { Readable } from 'node:stream';

/** What a store knows about one object. */
export interface ObjectInfo {
  /** Bytes, when the store reports it. */
  size: number | undefined;
  /** The entity tag as the store sends it (quoted), used for conditional writes. */
  etag: string | undefined;
  /** User metadata (S3 `x-amz-meta-*`, without the prefix, lower-case keys). */
  metadata: Record<string, string>;
}

/** An object being read: its info and a byte stream starting at `offset`. */
export interface StoreObject extends ObjectInfo {
  body: Readable;
  /** Where `body` starts in the object (0 unless a range was asked for and honoured). */
  offset: number;
  /** Bytes in `body` when the store says (Content-Length); tells a honoured range from a whole body. */
  length?: number;
  /**
   * Set by stores that can hand the body over without a stream (S3 over plain HTTP, see
   * s3-raw-get.ts): reads it straight into `write`, one chunk at a time, each chunk valid until
   * the promise `write` returned resolves. Resolves once every byte is written. Read the body
   * either this way or through `body`, not both. `onRead` hears of every network read.
   */
  drain?: (write: (chunk: Buffer) => Promise<void>, onRead?: (bytes: number) => void) => Promise<void>;
}

/** Options of {@link BuildStore.get}. */
export interface GetOptions {
  signal?: AbortSignal;
  /** Start reading at this byte (to resume an interrupted download). */
  start?: number;
  /** Stop after this byte (inclusive): a bounded range `bytes=start-end` (stores may ignore it; check `offset` and `length`). */
  end?: number;
}

/** Options of {@link BuildStore.put}. */
export interface PutOptions {
  /** Length of a stream body (required for streams on S3). */
  size?: number;
  contentType?: string;
  cacheControl?: string;
  /** `Content-Encoding` of the stored object (S3; e.g. `gzip` for a peeled `.gz`). */
  contentEncoding?: string;
  /** `Content-Disposition` of the stored object (S3). */
  contentDisposition?: string;
  /** Stored as user metadata (S3 `x-amz-meta-<key>`). */
  metadata?: Record<string, string>;
  /** Write only if the current object has this ETag (else a COSA_STORE_CONFLICT error). */
  ifMatch?: string;
  /** `'*'`: write only if no object exists yet (else a COSA_STORE_CONFLICT error). */
  ifNoneMatch?: '*';
  /** Canned ACL (S3 only), sent only when given. */
  acl?: string;
  signal?: AbortSignal;
  /** Called with the number of bytes sent so far. */
  onBytes?: (sent: number) => void;
  /**
   * The body's sha256 (hex) as the caller knows it: the bytes are hashed while they are sent and
   * the object becomes visible only if they match (S3: the multipart upload is completed only
   * then, else aborted; a file store renames its temp file only then). A mismatch is a
   * COSA_STORE_CHECKSUM_MISMATCH error and leaves the store as it was.
   */
  sha256?: string;
}

/** What a successful write returns. */
export interface PutResult {
  etag: string | undefined;
}

/** Options of {@link BuildStore.head} and {@link BuildStore.delete}. */
export interface RequestOptions {
  signal?: AbortSignal;
}

/**
 * A place builds live: an S3 bucket prefix, an HTTP(S) base URL or a local directory.
 * Missing objects are `undefined`, never an error; other failures are CosaErrors
 * (`HttpStatusError` carries the status and a URL without secrets).
 */
export interface BuildStore {
  /** The location for messages: no credentials, no query string. */
  readonly url: string;
  /** False for stores that can only be read (HTTP). */
  readonly writable: boolean;
  /**
   * True when the protocol answers every satisfiable ranged GET with that range (S3), so a
   * ranged download opens all its streams at once instead of waiting for the first answer.
   */
  readonly honoursRanges?: boolean;
  /** The display URL of one key. */
  urlOf(key: string): string;
  /** Opens an object for reading, or `undefined` when it does not exist. */
  get(key: string, options?: GetOptions): Promise<StoreObject | undefined>;
  /** Reads an object's size, ETag and metadata, or `undefined` when it does not exist. */
  head(key: string, options?: RequestOptions): Promise<ObjectInfo | undefined>;
  /** Writes an object; the body is streamed. Honours `ifMatch`/`ifNoneMatch` when the store does. */
  put(key: string, body: Readable | Uint8Array, options?: PutOptions): Promise<PutResult>;
  /** Removes an object (missing is fine). */
  delete(key: string, options?: RequestOptions): Promise<void>;
}
