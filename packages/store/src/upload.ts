import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  CosaError,
  hashFile,
  parseMetaJson,
  stableStringify,
  validateMetaJson,
  withPhase,
  type BuildEntry,
  type BuildsJson,
  type OnProgress,
} from '@cosa/schema';
import { noProgress, safeSegment, retry } from '@cosa/schema/internal';
import pLimit from 'p-limit';
import { openBuildStore, type OpenStoreOptions } from './location.js';
import { mergeBuildsJson, updateRemoteBuildsJson, updateRemoteJson, type RemoteJsonCodec, type UpdateRemoteBuildsResult } from './remote-builds.js';
import { mergeMetaForUpload, readLocalMeta } from './remote-meta.js';
import type { BuildStore, ObjectInfo } from './store.js';
import { TransferMeter } from './_transfer.js';
import { readObjectText } from './_io.js';
import { throwIfAborted, transferRetry } from './_util.js';

/** Options of {@link uploadBuildObjects}. */
export interface UploadObjectsOptions extends OpenStoreOptions {
  /** The build to upload. */
  buildId: string;
  /** The local `builds/<id>` dir it is read from (never written). */
  buildDir: string;
  /** Arches to upload (each needs `<buildDir>/<arch>/meta.json`). */
  arches: string[];
  /** The local builds.json: the order and tags merged into the remote one (needed unless `skipBuildsJson` or `dryRun`). */
  local?: BuildsJson;
  /** `BUCKET/PREFIX` as `cosa buildupload s3` takes it. */
  bucketPrefix?: string;
  /** Any writable location (`s3://…`, `file://…`, a path) instead of `bucketPrefix`. */
  url?: string;
  /** An already opened store. */
  store?: BuildStore;
  /**
   * Only these artifacts (`images` keys): only their files are sent (other files of the build
   * only when the store lacks them), and only `images.<artifact>` plus what the platform owns
   * (`amis`, …) is merged into the remote meta.json; without a remote meta.json, the other
   * artifacts are scrubbed from the uploaded one when the store lacks them.
   */
  artifacts?: string[];
  /**
   * The original's `--enable-gz-peel`: an image `*.gz` (not `*.raw.gz`) is stored without `.gz`
   * with `Content-Encoding: gzip` and `Content-Disposition: inline; filename=<name>`, and the
   * uploaded meta.json names it so (the local one is left alone).
   */
  enableGzPeel?: boolean;
  /** Send objects even when an identical one exists. */
  force?: boolean;
  /** Only report what would be sent. */
  dryRun?: boolean;
  /** Leave the remote builds.json alone. */
  skipBuildsJson?: boolean;
  /** Canned ACL for every object (S3), e.g. `public-read`. Sent only when given. */
  acl?: string;
  /** Files sent at the same time (default 4; each S3 multipart upload also sends `queueSize` parts at once). */
  concurrency?: number;
  onProgress?: OnProgress;
  signal?: AbortSignal;
}

/** One object of the upload. */
export interface UploadedFile {
  key: string;
  /** Local file ('' for a generated body such as a scrubbed meta.json). */
  path: string;
  size: number;
  /** Bytes sent (0 when skipped). */
  sent: number;
  skipped: boolean;
  /** Why it was skipped: an identical object exists, or this is a dry run. */
  reason?: 'exists' | 'dry-run' | 'remote-only';
  /** How the kept object was judged the same: its sha256 metadata, or (no sha256 metadata) its size. */
  matchedBy?: 'sha256' | 'size' | 'exists';
}

/** What {@link uploadBuildObjects} did. */
export interface UploadObjectsResult {
  buildId: string;
  arches: string[];
  files: UploadedFile[];
  bytesSent: number;
  bytesSkipped: number;
  /** The builds.json update (absent with `skipBuildsJson` or `dryRun`). */
  buildsJson?: { attempts: number; conditional: boolean };
  /** The meta.json merge per arch (absent in a dry run); `written` false when the remote one already said it all. */
  metaJson: Record<string, { attempts: number; conditional: boolean; written: boolean }>;
  /** Conditional writes refused (412) and merged again, over every meta.json and builds.json. */
  retries: number;
  /** The remote builds.json as written (absent with `skipBuildsJson` or `dryRun`): the caller takes it in locally. */
  remoteBuilds?: { text: string; builds: BuildsJson };
}

/** Content-Type by suffix, as the original. */
export function contentTypeOf(name: string): string {
  const types: Array<[string, string]> = [
    ['.json', 'application/json'],
    ['.tar', 'application/x-tar'],
    ['.xz', 'application/x-xz'],
    ['.gz', 'application/gzip'],
    ['.iso', 'application/x-iso9660-image'],
  ];
  return types.find(([s]) => name.endsWith(s))?.[1] ?? 'application/octet-stream';
}

interface Item {
  key: string;
  path: string;
  body?: Buffer;
  size: number;
  sha256: string | undefined;
  /** sha256 is from meta.json (else hashed while planning); the store confirms it while sending. */
  verify: boolean;
  cacheControl: string;
  name: string;
  /** An `images` entry: without our sha256 metadata remotely, the original's size rule decides. */
  image?: boolean;
  /** Sent only when the store lacks it (other files of a build uploaded with `artifacts`). */
  onlyIfMissing?: boolean;
  contentEncoding?: string;
  contentDisposition?: string;
}

const ARTIFACT_CACHE = 'max-age=31536000';
const METADATA_CACHE = 'max-age=300';
/** Tries per object on throttling (503 SlowDown), 5xx and dropped connections. */
const PUT_ATTEMPTS = 4;
/** Bytes per read of a file being sent. */
const READ_CHUNK = 1024 * 1024;

type Doc = Record<string, unknown>;
type Image = { path: string; sha256: string; size?: number };

/**
 * Whether the remote object may be kept: the same size and the sha256 we recorded as metadata;
 * without that metadata (an object the original uploaded) an image of the same size, as the
 * original keeps any existing image. `undefined`: send it.
 */
function keepRemote(remote: ObjectInfo | undefined, item: Item): UploadedFile['matchedBy'] {
  if (!remote) return undefined;
  if (item.onlyIfMissing) return 'exists';
  if (remote.metadata.sha256 !== undefined) return item.sha256 !== undefined && remote.size === item.size && remote.metadata.sha256 === item.sha256 ? 'sha256' : undefined;
  return item.image && remote.size === item.size ? 'size' : undefined;
}

interface Ctx {
  store: BuildStore;
  options: UploadObjectsOptions;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
  buildId: string;
  buildDir: string;
  head: (key: string) => Promise<ObjectInfo | undefined>;
  files: UploadedFile[];
}

/** One arch of the upload: its files, and the meta.json to merge remotely. */
interface ArchPlan {
  arch: string;
  items: Item[];
  /** The meta.json as this runner publishes it (paths peeled, absent artifacts scrubbed). */
  meta: Doc;
  /** Artifacts whose `images` entries this upload publishes. */
  published: string[];
  known: string[];
}

/** Plans one arch dir: which objects to send, and the meta.json copy to merge. */
async function planArch(ctx: Ctx, arch: string): Promise<ArchPlan> {
  const { options, store, buildId } = ctx;
  const dir = join(ctx.buildDir, arch);
  const metaPath = join(dir, 'meta.json');
  const local = await readLocalMeta(dir).catch((e: unknown) => {
    if (e instanceof CosaError) throw e;
    throw new CosaError('COSA_SCHEMA_INVALID', `${metaPath} cannot be read: ${(e as Error).message}`, { cause: e });
  });
  const meta = validateMetaJson(local.doc, metaPath);
  if (meta.buildid !== buildId) throw new CosaError('COSA_SCHEMA_INVALID', `${metaPath} describes build ${meta.buildid}`);
  const copy = structuredClone(local.doc);
  const images = (copy.images ?? {}) as Record<string, Image>;
  const localPaths = new Set(Object.values(images).map((i) => i.path));
  const plan: ArchPlan = { arch, items: [], meta: copy, published: [], known: Object.keys(images) };
  for (const [name, img] of Object.entries(images)) {
    const peel = options.enableGzPeel === true && img.path.endsWith('.gz') && !img.path.endsWith('.raw.gz');
    const localPath = join(dir, img.path);
    if (peel) images[name] = { ...img, path: img.path.slice(0, -3) };
    const remotePath = images[name]!.path;
    const key = `${buildId}/${arch}/${remotePath}`;
    if (options.artifacts && !options.artifacts.includes(name)) {
      if (!(await ctx.head(key))) delete images[name];
      continue;
    }
    plan.published.push(name);
    const st = await stat(localPath).catch(() => undefined);
    if (!st?.isFile()) {
      const remote = await ctx.head(key);
      if (!remote) throw new CosaError('COSA_STORE_NOT_FOUND', `${name} (${img.path}) is neither in ${dir} nor in ${store.urlOf(key)}`);
      ctx.files.push({ key, path: localPath, size: remote.size ?? 0, sent: 0, skipped: true, reason: 'remote-only' });
      continue;
    }
    plan.items.push({
      key, path: localPath, size: st.size, sha256: img.sha256, verify: true, cacheControl: ARTIFACT_CACHE, name: img.path, image: true,
      ...(peel ? { contentEncoding: 'gzip', contentDisposition: `inline; filename=${remotePath}` } : {}),
    });
  }
  const scrubbed = plan.known.filter((n) => !(n in images));
  if (scrubbed.length > 0) ctx.onProgress({ type: 'info', message: `${arch}: leaving ${scrubbed.join(', ')} out of the uploaded meta.json (not in the store)` });
  for (const d of await readdir(dir, { withFileTypes: true })) {
    if (!d.isFile() || d.name === 'meta.json' || d.name.startsWith('.') || localPaths.has(d.name)) continue;
    plan.items.push(await otherFile(ctx, join(dir, d.name), `${buildId}/${arch}/${d.name}`, d.name));
  }
  return plan;
}

/** A file that is not an `images` entry (commitmeta.json, lockfiles, release.json, …). */
async function otherFile(ctx: Ctx, path: string, key: string, name: string): Promise<Item> {
  const h = await hashFile(path, { signal: ctx.signal });
  return {
    key, path, size: h.size, sha256: h.sha256, verify: false, cacheControl: name.endsWith('.json') ? METADATA_CACHE : ARTIFACT_CACHE, name,
    ...(ctx.options.artifacts ? { onlyIfMissing: true } : {}),
  };
}

/** Sends one object unless the store already has it; confirms an artifact's sha256 on the way. */
async function sendItem(ctx: Ctx, meter: TransferMeter, item: Item): Promise<void> {
  const { store, options, onProgress, signal } = ctx;
  throwIfAborted(signal);
  if (!options.force) {
    const matchedBy = keepRemote(await ctx.head(item.key), item);
    if (matchedBy) {
      ctx.files.push({ key: item.key, path: item.path, size: item.size, sent: 0, skipped: true, reason: 'exists', matchedBy });
      onProgress({ type: 'log', line: `${store.urlOf(item.key)} exists${matchedBy === 'sha256' ? ' with the same sha256' : matchedBy === 'size' ? ' with the same size (no sha256 recorded)' : ''}; skipping` });
      return;
    }
  }
  if (options.dryRun) {
    ctx.files.push({ key: item.key, path: item.path, size: item.size, sent: 0, skipped: true, reason: 'dry-run' });
    onProgress({ type: 'info', message: `Would upload ${store.urlOf(item.key)}` });
    return;
  }
  // One read: the store hashes the bytes as it sends them and publishes the object only if
  // they match meta.json (S3: the multipart upload is completed only then, else aborted), so an
  // object that does not match is never visible, not even for a moment.
  meter.start(item.name, item.size);
  let sent = 0;
  // A streamed body cannot be replayed by the SDK: a throttled or dropped PUT is repeated here
  // with a fresh stream, every retry logged.
  try {
    await retry(async () => {
      // Large reads: fewer syscalls and buffers to collect than the default 64 KiB.
      const body = item.body ?? createReadStream(item.path, { highWaterMark: READ_CHUNK });
      try {
        await store.put(item.key, body, {
          size: item.size,
          contentType: contentTypeOf(item.key),
          cacheControl: item.cacheControl,
          ...(item.sha256 ? { metadata: { sha256: item.sha256 }, sha256: item.sha256 } : {}),
          ...(item.contentEncoding ? { contentEncoding: item.contentEncoding } : {}),
          ...(item.contentDisposition ? { contentDisposition: item.contentDisposition } : {}),
          ...(options.acl ? { acl: options.acl } : {}),
          ...(signal ? { signal } : {}),
          onBytes: (n) => {
            sent = n;
            meter.update(item.name, n);
          },
        });
      } catch (e) {
        if (typeof (body as { destroy?: unknown }).destroy === 'function') (body as Readable).destroy();
        throw e;
      }
    }, transferRetry(`uploading ${store.urlOf(item.key)}`, { attempts: PUT_ATTEMPTS, signal, onProgress }));
  } catch (e) {
    meter.drop(item.name);
    throw e;
  }
  meter.update(item.name, item.size);
  meter.finish(item.name);
  ctx.files.push({ key: item.key, path: item.path, size: item.size, sent: Math.max(sent, item.size), skipped: false });
}

const metaCodec: RemoteJsonCodec<Doc> = {
  parse: (text, url) => {
    parseMetaJson(text, url);
    return JSON.parse(text) as Doc;
  },
  serialize: (doc) => stableStringify(doc),
};

const withoutStamp = (d: Doc): string => stableStringify({ ...d, 'coreos-assembler.meta-stamp': 0 });

/**
 * Merges this runner's part of one arch's meta.json into the remote one with a conditional
 * write (If-Match, re-read and re-merge on 412); nothing is written when the remote one already
 * says everything this upload would add (unless `force`).
 */
async function publishMeta(ctx: Ctx, meter: TransferMeter, plan: ArchPlan): Promise<UploadObjectsResult['metaJson'][string] | undefined> {
  const { store, options, signal } = ctx;
  const key = `${ctx.buildId}/${plan.arch}/meta.json`;
  const name = `${plan.arch}/meta.json`;
  if (options.dryRun) {
    ctx.files.push({ key, path: '', size: 0, sent: 0, skipped: true, reason: 'dry-run' });
    ctx.onProgress({ type: 'info', message: `Would merge into ${store.urlOf(key)}` });
    return undefined;
  }
  const mine = (plan.meta.images ?? {}) as Record<string, Image>;
  const merge = { what: store.urlOf(key), ...(options.artifacts ? { artifacts: options.artifacts } : {}) };
  meter.start(name, undefined);
  const r = await updateRemoteJson(
    store,
    key,
    metaCodec,
    (remote) => {
      const next = mergeMetaForUpload(remote, plan.meta, merge);
      validateMetaJson(next, store.urlOf(key));
      return remote && !options.force && withoutStamp(remote) === withoutStamp(next) ? undefined : next;
    },
    (written) => plan.published.every((p) => !mine[p] || ((written.images ?? {}) as Record<string, Image>)[p]?.sha256 === mine[p]!.sha256),
    { cacheControl: METADATA_CACHE, ...(options.acl ? { acl: options.acl } : {}), ...(signal ? { signal } : {}), onProgress: ctx.onProgress },
  );
  const size = Buffer.byteLength(r.text);
  meter.update(name, r.written ? size : 0);
  meter.finish(name);
  ctx.files.push(r.written ? { key, path: '', size, sent: size, skipped: false } : { key, path: '', size, sent: 0, skipped: true, reason: 'exists', matchedBy: 'sha256' });
  return { attempts: r.attempts, conditional: r.conditional, written: r.written };
}

/** `coreos-assembler.build-timestamp` (else `ostree-timestamp`) of a meta.json, in ms. */
function buildTimeOf(doc: Doc | undefined): number | undefined {
  const t = doc?.['coreos-assembler.build-timestamp'] ?? doc?.['ostree-timestamp'];
  const ms = typeof t === 'string' ? Date.parse(t) : Number.NaN;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Moves build `id`, new to the remote builds.json, to its place by build time: above the first
 * build (from the top) that is not newer; builds whose time cannot be read are passed over.
 * So `builds[0]` is the newest build, not the last upload; a tie goes to the later upload.
 */
async function placeByBuildTime(doc: BuildsJson, id: string, mine: number, timeOf: (b: BuildEntry) => Promise<number | undefined>): Promise<BuildsJson> {
  const at = doc.builds.findIndex((b) => b.id === id);
  if (at < 0) return doc;
  const [entry] = doc.builds.splice(at, 1);
  let lastNewer = -1;
  let to = -1;
  for (let i = 0; i < doc.builds.length && i < 200; i++) {
    const t = await timeOf(doc.builds[i]!);
    if (t === undefined) continue;
    if (t <= mine) {
      to = i;
      break;
    }
    lastNewer = i;
  }
  if (to < 0) to = lastNewer >= 0 ? lastNewer + 1 : at;
  doc.builds.splice(to, 0, entry!);
  return doc;
}

/** Merges the uploaded arches into the remote builds.json (the caller takes the result in locally). */
async function publishBuildsJson(ctx: Ctx, local: BuildsJson, arches: string[], myTime: number | undefined): Promise<UpdateRemoteBuildsResult> {
  const { store, options, signal, onProgress, buildId } = ctx;
  const localIds = new Set(local.builds.map((b) => b.id));
  const times = new Map<string, Promise<number | undefined>>();
  const timeOf = (b: BuildEntry) => {
    let t = times.get(b.id);
    if (!t) {
      const arch = b.arches[0];
      t = arch === undefined ? Promise.resolve(undefined) : readObjectText(store, `${b.id}/${arch}/meta.json`, signal).then((d) => buildTimeOf(d ? (JSON.parse(d.text) as Doc) : undefined), () => undefined);
      times.set(b.id, t);
    }
    return t;
  };
  const up = await withPhase(onProgress, 'update builds.json', () =>
    updateRemoteBuildsJson(
      store,
      async (current) => {
        const base = current ?? { 'schema-version': local['schema-version'], builds: [] };
        const remoteIds = new Set(base.builds.map((b) => b.id));
        // Only this build's uploaded arches are news; other local builds only give the order.
        const incoming: BuildsJson = {
          ...local,
          builds: local.builds
            .filter((b) => b.id === buildId || remoteIds.has(b.id))
            .map((b) => ({ ...b, arches: b.id === buildId ? arches : [] })),
          tags: (local.tags ?? []).filter((t) => t.target === buildId || remoteIds.has(t.target) || !localIds.has(t.target)),
        };
        const merged = mergeBuildsJson(base, incoming);
        return remoteIds.has(buildId) || myTime === undefined ? merged : placeByBuildTime(merged, buildId, myTime, timeOf);
      },
      (written) => arches.every((a) => written.builds.find((b) => b.id === buildId)?.arches.includes(a)),
      { ...(options.acl ? { acl: options.acl } : {}), ...(signal ? { signal } : {}), onProgress },
    ),
  );
  return up;
}

/**
 * Uploads a build's objects to a store (core's `buildUpload` is `cosa buildupload`): the artifacts and other files
 * of each arch dir under `prefix/<id>/<arch>/`, then each arch's meta.json merged into the remote
 * one, then a merged builds.json. Many runners can upload platforms of one build at once: every
 * remote record is merged with conditional writes, never overwritten. An object that already
 * exists with the same size and sha256 (kept as object metadata `sha256`) is skipped unless
 * `force`, so a re-run after an interruption sends only what is missing. Files go up in parallel
 * (bounded), big ones as multipart uploads. The local build dir is only read; the remote
 * builds.json written comes back as `remoteBuilds` for the caller to record locally.
 */
export async function uploadBuildObjects(options: UploadObjectsOptions): Promise<UploadObjectsResult> {
  const onProgress = options.onProgress ?? noProgress;
  const signal = options.signal;
  const location = options.bucketPrefix !== undefined ? `s3://${options.bucketPrefix.replace(/^s3:\/\//, '')}` : options.url;
  const store = options.store ?? openBuildStore(location ?? '', options);
  if (!store.writable) throw new CosaError('COSA_STORE_READ_ONLY', `${store.url} cannot be written`);
  const { buildId, buildDir, arches } = options;
  for (const a of arches) safeSegment.parse(a);
  const heads = pLimit(8);
  const ctx: Ctx = { store, options, onProgress, signal, buildId, buildDir, files: [], head: (key) => heads(() => store.head(key, signal ? { signal } : {})) };

  const plans = await withPhase(onProgress, 'plan', async () => {
    const out: ArchPlan[] = [];
    for (const arch of arches) out.push(await planArch(ctx, arch));
    const unknown = (options.artifacts ?? []).filter((a) => !out.some((p) => p.known.includes(a)));
    if (unknown.length > 0) {
      throw new CosaError('COSA_STORE_ARTIFACT_UNKNOWN', `build ${buildId} has no artifact ${unknown.join(', ')}`, { hint: `known: ${[...new Set(out.flatMap((p) => p.known))].join(', ')}` });
    }
    for (const d of await readdir(buildDir, { withFileTypes: true })) {
      if (d.isFile() && !d.name.startsWith('.')) out[0]!.items.push(await otherFile(ctx, join(buildDir, d.name), `${buildId}/${d.name}`, d.name));
    }
    return out;
  });

  const meter = new TransferMeter(onProgress, undefined);
  const limit = pLimit(Math.max(1, options.concurrency ?? 4));
  await withPhase(onProgress, 'upload artifacts', async () => {
    const settled = await Promise.allSettled(plans.flatMap((p) => p.items).map((i) => limit(() => sendItem(ctx, meter, i))));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  });
  // meta.json only once everything it lists is in place.
  const metaJson: UploadObjectsResult['metaJson'] = {};
  await withPhase(onProgress, 'upload meta.json', async () => {
    for (const p of plans) {
      const r = await publishMeta(ctx, meter, p);
      if (r) metaJson[p.arch] = r;
    }
  });
  meter.end();

  const files = ctx.files;
  const result: UploadObjectsResult = {
    buildId,
    arches,
    files,
    bytesSent: files.reduce((n, f) => n + f.sent, 0),
    bytesSkipped: files.filter((f) => f.skipped).reduce((n, f) => n + f.size, 0),
    metaJson,
    retries: Object.values(metaJson).reduce((n, m) => n + m.attempts - 1, 0),
  };
  if (!options.skipBuildsJson && !options.dryRun) {
    if (!options.local) throw new CosaError('COSA_USAGE', 'uploadBuildObjects needs the local builds.json (local) to merge the remote one');
    const up = await publishBuildsJson(ctx, options.local, arches, buildTimeOf(plans[0]!.meta));
    result.buildsJson = { attempts: up.attempts, conditional: up.conditional };
    result.remoteBuilds = { text: up.text, builds: up.buildsJson };
    result.retries += result.buildsJson.attempts - 1;
  }
  onProgress({
    type: 'info',
    message: `${options.dryRun ? 'Would upload' : 'Uploaded'} build ${buildId} (${arches.join(', ')}) to ${store.url}: ${files.filter((f) => !f.skipped).length} sent, ${files.filter((f) => f.skipped).length} skipped`,
  });
  return result;
}
