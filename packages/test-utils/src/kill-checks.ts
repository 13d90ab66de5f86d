/**
 * What a SIGKILLed command must never leave, in a workdir and in a build store: the checks of the
 * kill-point runs. Each returns a list of problems ([] when consistent).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CreateBucketCommand, DeleteObjectsCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { parseBuildsJson, parseMetaJson } from '@cosa/schema';

/** The temp names of cosa's atomic writes and downloads: `.NAME.tmp-PID-HEX`, `.NAME.partial-PID-HEX`. */
export const TEMP_NAME = /^\..+\.(tmp|partial)-\d+-[0-9a-f]+$/;

type Images = Record<string, { path: string; size?: number; sha256?: string }>;

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

/** Options of {@link workdirProblems}. */
export interface WorkdirCheckOptions {
  /** Every image meta.json lists must be present (false: a metadata-only fetch may leave them out). */
  requireImages?: boolean;
  /** Hash every present image against meta.json (default true). */
  hash?: boolean;
  /** Temp files of atomic writes in builds/ count as problems (default true). */
  tempFiles?: boolean;
}

async function buildDirProblems(dir: string, label: string, o: WorkdirCheckOptions): Promise<string[]> {
  const metaText = await readFile(join(dir, 'meta.json'), 'utf8').catch(() => undefined);
  if (metaText === undefined) return [`${label} has no meta.json`];
  let images: Images;
  try {
    images = (parseMetaJson(metaText, `${label}/meta.json`).images ?? {}) as Images;
  } catch (e) {
    return [`${label}/meta.json: ${(e as Error).message}`];
  }
  const problems: string[] = [];
  for (const [k, img] of Object.entries(images)) {
    const file = join(dir, img.path);
    const st = await stat(file).catch(() => undefined);
    if (!st) {
      if (o.requireImages ?? true) problems.push(`${label}/${img.path} (${k}) is listed in meta.json but missing`);
      continue;
    }
    if (img.size !== undefined && st.size !== img.size) problems.push(`${label}/${img.path} (${k}) has ${st.size} bytes, meta.json says ${img.size}`);
    else if ((o.hash ?? true) && img.sha256 && (await sha256Of(file)) !== img.sha256) problems.push(`${label}/${img.path} (${k}) does not match its sha256 in meta.json`);
  }
  return problems;
}

/**
 * Problems in a workdir's builds/: builds.json must parse; every build it lists must have a
 * parseable meta.json per arch whose images are there with their size and sha256; a build dir
 * it does not list must not hold a half-made build; `latest` must name a listed build; no temp
 * file of an atomic write may be left (outside tmp/).
 */
export async function workdirProblems(workdir: string, o: WorkdirCheckOptions = {}): Promise<string[]> {
  const builds = join(workdir, 'builds');
  const problems: string[] = [];
  const text = await readFile(join(builds, 'builds.json'), 'utf8').catch(() => undefined);
  let listed: Array<{ id: string; arches: string[] }> = [];
  if (text !== undefined) {
    try {
      listed = parseBuildsJson(text, 'builds.json').builds;
    } catch (e) {
      problems.push(`builds.json: ${(e as Error).message}`);
    }
  }
  for (const b of listed) for (const arch of b.arches) problems.push(...(await buildDirProblems(join(builds, b.id, arch), `${b.id}/${arch}`, o)));
  // Build dirs builds.json does not list (a prune or fetch in between) still must not be half-made.
  const ids = new Set(listed.map((b) => b.id));
  for (const id of await readdir(builds).catch(() => [] as string[])) {
    if (ids.has(id) || id === 'builds.json' || id === 'latest' || id.startsWith('.')) continue;
    for (const arch of await readdir(join(builds, id)).catch(() => [] as string[])) {
      const metaPresent = await stat(join(builds, id, arch, 'meta.json')).then(() => true, () => false);
      if (metaPresent) problems.push(...(await buildDirProblems(join(builds, id, arch), `${id}/${arch} (not in builds.json)`, o)));
    }
  }
  const latest = await lstat(join(builds, 'latest')).then(() => readlink(join(builds, 'latest')), () => undefined);
  if (latest !== undefined && !ids.has(latest)) problems.push(`latest -> ${latest}, which builds.json does not list`);
  if (latest === undefined && listed.length > 0 && text !== undefined) problems.push('builds.json lists builds but latest is missing');
  if (o.tempFiles ?? true) {
    for (const n of await readdir(builds, { recursive: true }).catch(() => [] as string[])) {
      const base = String(n).split('/').pop() ?? '';
      if (TEMP_NAME.test(base)) problems.push(`temp file left in builds/: ${String(n)}`);
    }
  }
  return problems;
}

/** Read access to a build store (a directory or an S3 prefix), for {@link storeProblems}. */
export interface StoreReader {
  /** The object's bytes, or undefined when it does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  /** Every key (relative to the store root). */
  list(): Promise<string[]>;
  /** Multipart uploads started and neither completed nor aborted (S3 only). */
  pendingUploads(): Promise<string[]>;
}

/** A {@link StoreReader} of a file store directory. */
export function fileStoreReader(dir: string): StoreReader {
  return {
    get: (key) => readFile(join(dir, key)).catch(() => undefined),
    list: async () => (await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name).slice(dir.length + 1)),
    pendingUploads: async () => [],
  };
}

/** A {@link StoreReader} of `s3://bucket/prefix` on a local S3 server, with what a test needs to reset it. */
export interface S3StoreReader extends StoreReader {
  createBucket(): Promise<void>;
  put(key: string, data: Buffer | string): Promise<void>;
  /** Deletes every object whose key (relative to the prefix) starts with `keyPrefix`. */
  removeUnder(keyPrefix: string): Promise<void>;
}

/** A {@link StoreReader} of `s3://bucket/prefix` on a local S3 server (test credentials). */
export function s3StoreReader(endpoint: string, bucket: string, prefix: string): S3StoreReader {
  const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const root = prefix ? `${prefix.replace(/\/+$/, '')}/` : '';
  const list = async () => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: root, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of r.Contents ?? []) if (o.Key) keys.push(o.Key.slice(root.length));
      token = r.NextContinuationToken;
    } while (token);
    return keys;
  };
  return {
    async get(key) {
      try {
        const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: root + key }));
        return Buffer.from(await r.Body!.transformToByteArray());
      } catch (e) {
        if ((e as { name?: string }).name === 'NoSuchKey') return undefined;
        throw e;
      }
    },
    list,
    async pendingUploads() {
      const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: root }));
      return (r.Uploads ?? []).map((u) => `${u.Key} (upload ${u.UploadId})`);
    },
    async createBucket() {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    },
    async put(key, data) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: root + key, Body: data }));
    },
    async removeUnder(keyPrefix) {
      const keys = (await list()).filter((k) => k.startsWith(keyPrefix));
      for (let i = 0; i < keys.length; i += 1000) {
        await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000).map((k) => ({ Key: root + k })) } }));
      }
    },
  };
}

/**
 * Problems in a build store: builds.json (when present) must parse, and every build it lists
 * must be complete: meta.json per arch parses, and every image it names is there with its size
 * and sha256. Temp files of the file store count as problems when `tempFiles` (default true).
 */
export async function storeProblems(store: StoreReader, o: { tempFiles?: boolean } = {}): Promise<string[]> {
  const text = await store.get('builds.json');
  if (text === undefined) return [];
  let listed: Array<{ id: string; arches: string[] }>;
  try {
    listed = parseBuildsJson(text.toString('utf8'), 'store builds.json').builds;
  } catch (e) {
    return [`store builds.json: ${(e as Error).message}`];
  }
  const problems: string[] = [];
  for (const b of listed) {
    for (const arch of b.arches) {
      const label = `store ${b.id}/${arch}`;
      const metaText = await store.get(`${b.id}/${arch}/meta.json`);
      if (metaText === undefined) {
        problems.push(`${label}: builds.json lists it but meta.json is missing`);
        continue;
      }
      let images: Images;
      try {
        images = (parseMetaJson(metaText.toString('utf8'), `${label}/meta.json`).images ?? {}) as Images;
      } catch (e) {
        problems.push(`${label}/meta.json: ${(e as Error).message}`);
        continue;
      }
      for (const [k, img] of Object.entries(images)) {
        const data = await store.get(`${b.id}/${arch}/${img.path}`);
        if (data === undefined) problems.push(`${label}/${img.path} (${k}) is named by meta.json but missing`);
        else if (img.size !== undefined && data.length !== img.size) problems.push(`${label}/${img.path} (${k}) has ${data.length} bytes, meta.json says ${img.size}`);
        else if (img.sha256 && createHash('sha256').update(data).digest('hex') !== img.sha256) problems.push(`${label}/${img.path} (${k}) does not match its sha256`);
      }
    }
  }
  if (o.tempFiles ?? true) {
    for (const k of await store.list()) if (TEMP_NAME.test(k.split('/').pop() ?? '')) problems.push(`temp file left in the store: ${k}`);
  }
  return problems;
}
