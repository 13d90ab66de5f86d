import type { S3Client } from '@aws-sdk/client-s3';
import { CosaError, type OnProgress } from '@cosa/schema';
import type { Dispatcher } from 'undici';
import { FileStore } from './file-store.js';
import { HttpStore } from './http-store.js';
import { S3Store, type S3StoreOptions } from './s3-store.js';
import type { BuildStore } from './store.js';
import { redactUrl, type StoreTimeouts } from './_util.js';
import type { RangeSplit } from './_ranged-get.js';

/** Options of {@link openBuildStore}; each backend reads the ones it knows. */
export interface OpenStoreOptions {
  /** S3: an S3 client to use instead of a lazily created one. */
  s3Client?: S3Client;
  /** S3: custom endpoint (default AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). */
  endpointUrl?: string;
  /** S3: region. */
  region?: string;
  /** S3: path-style addressing (default: on with a custom endpoint). */
  forcePathStyle?: boolean;
  /** S3: AWS config file for credentials and region. */
  awsConfigFile?: string;
  /** S3: multipart part size (bytes). */
  partSize?: number;
  /** S3: parts of one object in flight. */
  queueSize?: number;
  /** S3: sign object bodies (see {@link S3StoreOptions.payloadSigning}). */
  payloadSigning?: 'auto' | 'always' | 'never';
  /** HTTP: undici dispatcher (e.g. an Agent trusting a private CA). */
  dispatcher?: Dispatcher;
  /** Network deadlines (HTTP and S3); defaults: {@link DEFAULT_TIMEOUTS}. */
  timeouts?: Partial<StoreTimeouts>;
  /** HTTP: receives a warning for every retried request. */
  onProgress?: OnProgress;
  /** Downloads from S3: when one large object gets parallel ranges (see {@link RangeSplit}). */
  rangeSplit?: RangeSplit;
}

type Backend = (location: string, options: OpenStoreOptions) => BuildStore;

const opt = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } => (v === undefined ? {} : ({ [k]: v } as { [P in K]?: V }));

/** URL scheme → backend. A new backend is one file plus one line here. */
const backends: Record<string, Backend> = {
  's3:': (location, o) =>
    new S3Store({
      location,
      ...opt('client', o.s3Client),
      ...opt('endpointUrl', o.endpointUrl),
      ...opt('region', o.region),
      ...opt('forcePathStyle', o.forcePathStyle),
      ...opt('awsConfigFile', o.awsConfigFile),
      ...opt('partSize', o.partSize),
      ...opt('queueSize', o.queueSize),
      ...opt('payloadSigning', o.payloadSigning),
      ...opt('timeouts', o.timeouts),
    }),
  'http:': (location, o) => new HttpStore({ location, ...opt('dispatcher', o.dispatcher), ...opt('timeouts', o.timeouts), ...opt('onProgress', o.onProgress) }),
  'https:': (location, o) => new HttpStore({ location, ...opt('dispatcher', o.dispatcher), ...opt('timeouts', o.timeouts), ...opt('onProgress', o.onProgress) }),
  'file:': (location) => new FileStore({ location }),
};

/**
 * Opens a build store from a location: `s3://bucket/prefix`, `https://…`, `http://…`,
 * `file:///dir` or a plain path.
 */
export function openBuildStore(location: string, options: OpenStoreOptions = {}): BuildStore {
  const m = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(location);
  if (!m) {
    if (location === '') throw new CosaError('COSA_STORE_URL_INVALID', 'empty store location');
    return new FileStore({ location });
  }
  const backend = backends[m[1]!.toLowerCase()];
  if (!backend) {
    throw new CosaError('COSA_STORE_URL_INVALID', `unsupported store location ${redactUrl(location)}`, { hint: 'use s3://, https://, http://, file:// or a path' });
  }
  return backend(location, options);
}
