import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import {
  CosaError,
  noProgress,
  parseBuildsJson,
  parseMetaJson,
  readRegularFile,
  safeSegment,
  stableStringify,
  withLock,
  withPhase,
  writeFileAtomic,
  type BuildsJson,
  type OnProgress,
} from '@cosa/schema';
import pLimit from 'p-limit';
import { openBuildStore, type OpenStoreOptions } from './location.js';
import { mergeBuildsJson, updateRemoteBuildsJson } from './remote-builds.js';
import type { BuildStore, ObjectInfo } from './store.js';
import { TransferMeter } from './_transfer.js';
import { hashFile } from './_io.js';
import { backoffMs, isTransient, logRetry, sleep, throwIfAborted } from './_util.js';

/** Options of {@link buildUpload}. */
export interface BuildUploadOptions extends OpenStoreOptions {
  workdir: string;
  /** `BUCKET/PREFIX` as `cosa buildupload s3` takes it. */
  bucketPrefix?: string;
  /** Any writable location (`s3://…`, `file://…`, a path) instead of `bucketPrefix`. */
  url?: string;
  /** An already opened store. */
  store?: BuildStore;
  /** Build to upload (default: builds/latest, else the newest in builds.json). */
  build?: string;
  /** Only these arches (default: every arch of the build that has a local meta.json). */
  arch?: string[];
  /** Only these artifacts (`images` keys); the others are left out, and scrubbed from the uploaded meta.json when absent remotely. */
  artifacts?: string[];
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
}

/** What {@link buildUpload} did. */
export interface BuildUploadResult {
  buildId: string;
  arches: string[];
  files: UploadedFile[];
  bytesSent: number;
  bytesSkipped: number;
  /** The builds.json update (absent with `skipBuildsJson` or `dryRun`). */
  buildsJson?: { attempts: number; conditional: boolean };
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
  /** sha256 is from meta.json and must be confirmed while sending. */
  verify: boolean;
  cacheControl: string;
  name: string;
}

const ARTIFACT_CACHE = 'max-age=31536000';
const METADATA_CACHE = 'max-age=300';
/** Tries per object on throttling (503 SlowDown), 5xx and dropped connections. */
const PUT_ATTEMPTS = 4;

async function resolveBuildId(workdir: string, builds: BuildsJson, wanted: string | undefined): Promise<string> {
  if (wanted !== undefined) return safeSegment.parse(wanted);
  const link = await readlink(join(workdir, 'builds', 'latest')).catch(() => undefined);
  const id = link ?? builds.builds[0]?.id;
  if (!id) throw new CosaError('COSA_BUILD_NOT_FOUND', 'no builds to upload', { hint: 'run cosa build first' });
  return safeSegment.parse(id);
}

/** Fails when a local artifact's bytes are not what meta.json says (nothing is sent then). */
async function checkLocal(item: Item, signal: AbortSignal | undefined): Promise<void> {
  const h = await hashFile(item.path, signal);
  if (h.sha256 !== item.sha256 || h.size !== item.size) {
    throw new CosaError('COSA_STORE_CHECKSUM_MISMATCH', `${item.name}: local file has sha256 ${h.sha256} (${h.size} bytes), but meta.json says ${item.sha256}; not uploaded`, {
      hint: 'the local artifact was modified after the build; rebuild or fetch it again',
    });
  }
}

/** Same size and the sha256 we recorded as metadata: nothing to send. */
function identical(remote: ObjectInfo | undefined, item: Item): boolean {
  return remote !== undefined && item.sha256 !== undefined && remote.size === item.size && remote.metadata.sha256 === item.sha256;
}

/**
 * Uploads a build to a store (`cosa buildupload s3 BUCKET/PREFIX`): every artifact and other
 * file of each arch dir under `prefix/<id>/<arch>/`, then each meta.json, then a merged
 * builds.json. An object that already exists with the same size and sha256 (kept as object
 * metadata `sha256`) is skipped unless `force`, so a re-run after an interruption sends only
 * what is missing. Files go up in parallel (bounded), big ones as multipart uploads.
 */
export async function buildUpload(options: BuildUploadOptions): Promise<BuildUploadResult> {
  const onProgress = options.onProgress ?? noProgress;
  const signal = options.signal;
  const location = options.bucketPrefix !== undefined ? `s3://${options.bucketPrefix.replace(/^s3:\/\//, '')}` : options.url;
  const store = options.store ?? openBuildStore(location ?? '', options);
  if (!store.writable) throw new CosaError('COSA_STORE_READ_ONLY', `${store.url} cannot be written`);
  const workdir = options.workdir;
  const buildsPath = join(workdir, 'builds', 'builds.json');
  const localText = await readFile(buildsPath, 'utf8').catch(() => {
    throw new CosaError('COSA_WORKDIR_INVALID', `${buildsPath} does not exist`, { hint: 'run cosa build or cosa buildfetch first' });
  });
  const local = parseBuildsJson(localText, buildsPath);
  const buildId = await resolveBuildId(workdir, local, options.build);
  const entry = local.builds.find((b) => b.id === buildId);
  if (!entry) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} is not in builds/builds.json`);
  for (const a of options.arch ?? []) {
    safeSegment.parse(a);
    if (!entry.arches.includes(a)) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} has no ${a} arch`);
  }
  const buildDir = join(workdir, 'builds', buildId);
  const arches: string[] = [];
  for (const a of options.arch ?? entry.arches) {
    if (await stat(join(buildDir, a, 'meta.json')).catch(() => undefined)) arches.push(a);
    else onProgress({ type: 'warning', message: `${buildId}/${a} has no local meta.json; not uploading it` });
  }
  if (arches.length === 0) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} has no arch with a local meta.json`);
  if (!options.skipBuildsJson) {
    const src = await stat(join(workdir, 'tmp', 'builds-source.txt')).catch(() => undefined);
    if (!src) onProgress({ type: 'log', line: 'no tmp/builds-source.txt: this workdir never fetched builds.json; the remote one is merged, not replaced' });
  }

  const heads = pLimit(8);
  const head = (key: string) => heads(() => store.head(key, signal ? { signal } : {}));
  const files: UploadedFile[] = [];
  const artifactItems: Item[] = [];
  const metaItems: Item[] = [];

  await withPhase(onProgress, 'plan', async () => {
    const known = new Set<string>();
    for (const arch of arches) {
      const dir = join(buildDir, arch);
      const metaText = await readRegularFile(join(dir, 'meta.json'));
      const meta = parseMetaJson(metaText, join(dir, 'meta.json'));
      if (meta.buildid !== buildId) throw new CosaError('COSA_SCHEMA_INVALID', `${join(dir, 'meta.json')} describes build ${meta.buildid}`);
      const images = (meta.images ?? {}) as Record<string, { path: string; sha256: string; size?: number }>;
      for (const k of Object.keys(images)) known.add(k);
      const scrub: string[] = [];
      const artifactPaths = new Set(Object.values(images).map((i) => i.path));
      for (const [name, img] of Object.entries(images)) {
        const key = `${buildId}/${arch}/${img.path}`;
        const path = join(dir, img.path);
        const st = await stat(path).catch(() => undefined);
        if (options.artifacts && !options.artifacts.includes(name)) {
          if (!(await head(key))) scrub.push(name);
          continue;
        }
        if (!st?.isFile()) {
          const remote = await head(key);
          if (!remote) throw new CosaError('COSA_STORE_NOT_FOUND', `${name} (${img.path}) is neither in ${dir} nor in ${store.urlOf(key)}`);
          files.push({ key, path, size: remote.size ?? 0, sent: 0, skipped: true, reason: 'remote-only' });
          continue;
        }
        artifactItems.push({ key, path, size: st.size, sha256: img.sha256, verify: true, cacheControl: ARTIFACT_CACHE, name: img.path });
      }
      for (const d of await readdir(dir, { withFileTypes: true })) {
        if (!d.isFile() || d.name === 'meta.json' || d.name.startsWith('.') || artifactPaths.has(d.name)) continue;
        const path = join(dir, d.name);
        const h = await hashFile(path, signal);
        artifactItems.push({ key: `${buildId}/${arch}/${d.name}`, path, size: h.size, sha256: h.sha256, verify: false, cacheControl: d.name.endsWith('.json') ? METADATA_CACHE : ARTIFACT_CACHE, name: d.name });
      }
      let body = Buffer.from(metaText);
      if (scrub.length > 0) {
        const copy = JSON.parse(metaText) as { images: Record<string, unknown> };
        for (const n of scrub) delete copy.images[n];
        body = Buffer.from(stableStringify(copy));
        onProgress({ type: 'info', message: `${arch}: leaving ${scrub.join(', ')} out of the uploaded meta.json (not in the store)` });
      }
      metaItems.push({ key: `${buildId}/${arch}/meta.json`, path: scrub.length > 0 ? '' : join(dir, 'meta.json'), body, size: body.length, sha256: createHash('sha256').update(body).digest('hex'), verify: false, cacheControl: METADATA_CACHE, name: `${arch}/meta.json` });
    }
    const unknown = (options.artifacts ?? []).filter((a) => !known.has(a));
    if (unknown.length > 0) {
      throw new CosaError('COSA_STORE_ARTIFACT_UNKNOWN', `build ${buildId} has no artifact ${unknown.join(', ')}`, { hint: `known: ${[...known].join(', ')}` });
    }
    for (const d of await readdir(buildDir, { withFileTypes: true })) {
      if (!d.isFile() || d.name.startsWith('.')) continue;
      const path = join(buildDir, d.name);
      const h = await hashFile(path, signal);
      artifactItems.push({ key: `${buildId}/${d.name}`, path, size: h.size, sha256: h.sha256, verify: false, cacheControl: d.name.endsWith('.json') ? METADATA_CACHE : ARTIFACT_CACHE, name: d.name });
    }
  });

  const meter = new TransferMeter(onProgress, undefined);
  const send = async (item: Item): Promise<void> => {
    throwIfAborted(signal);
    if (!options.force) {
      const remote = await head(item.key);
      if (identical(remote, item)) {
        files.push({ key: item.key, path: item.path, size: item.size, sent: 0, skipped: true, reason: 'exists' });
        onProgress({ type: 'log', line: `${store.urlOf(item.key)} exists with the same sha256; skipping` });
        return;
      }
    }
    if (options.dryRun) {
      files.push({ key: item.key, path: item.path, size: item.size, sent: 0, skipped: true, reason: 'dry-run' });
      onProgress({ type: 'info', message: `Would upload ${store.urlOf(item.key)}` });
      return;
    }
    // Hash before sending: an object that does not match meta.json is never published, not
    // even for the moment between its upload and its removal.
    if (item.verify) await checkLocal(item, signal);
    meter.start(item.name, item.size);
    let sent = 0;
    let hash = createHash('sha256');
    // A streamed body cannot be replayed by the SDK: a throttled or dropped PUT is repeated here
    // with a fresh stream (and a fresh hash), every retry logged.
    for (let attempt = 1; ; attempt++) {
      hash = createHash('sha256');
      const h = hash;
      const body = item.body ?? createReadStream(item.path).pipe(
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            if (item.verify) h.update(chunk);
            cb(null, chunk);
          },
        }),
      );
      try {
        await store.put(item.key, body, {
          size: item.size,
          contentType: contentTypeOf(item.key),
          cacheControl: item.cacheControl,
          ...(item.sha256 ? { metadata: { sha256: item.sha256 } } : {}),
          ...(options.acl ? { acl: options.acl } : {}),
          ...(signal ? { signal } : {}),
          onBytes: (n) => {
            sent = n;
            meter.update(item.name, n);
          },
        });
        break;
      } catch (e) {
        if (typeof (body as { destroy?: unknown }).destroy === 'function') (body as Transform).destroy();
        if (signal?.aborted || attempt >= PUT_ATTEMPTS || !isTransient(e)) {
          meter.drop(item.name);
          throw e;
        }
        logRetry(onProgress, `uploading ${store.urlOf(item.key)}`, attempt, PUT_ATTEMPTS, e);
        await sleep(backoffMs(attempt), signal);
      }
    }
    meter.update(item.name, item.size);
    meter.finish(item.name);
    if (item.verify) {
      const got = hash.digest('hex');
      if (got !== item.sha256) {
        // The file changed while it was sent: the object carries a sha256 it does not have, and a
        // later run would skip it as identical. It must go; a failed removal is an error of its own.
        const why = `${item.name} changed while it was sent: sent sha256 ${got}, meta.json says ${item.sha256}`;
        await store.delete(item.key, signal ? { signal } : {}).catch((e: unknown) => {
          throw new CosaError('COSA_STORE_CHECKSUM_MISMATCH', `${why}; removing the corrupt ${store.urlOf(item.key)} failed too`, {
            hint: `delete ${store.urlOf(item.key)} by hand before uploading again`,
            cause: e,
          });
        });
        throw new CosaError('COSA_STORE_CHECKSUM_MISMATCH', `${why}; the object was removed again`);
      }
    }
    files.push({ key: item.key, path: item.path, size: item.size, sent: Math.max(sent, item.size), skipped: false });
  };

  const limit = pLimit(Math.max(1, options.concurrency ?? 4));
  const runAll = async (items: Item[]) => {
    const settled = await Promise.allSettled(items.map((i) => limit(() => send(i))));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  };
  await withPhase(onProgress, 'upload artifacts', () => runAll(artifactItems));
  // meta.json only once everything it lists is in place.
  await withPhase(onProgress, 'upload meta.json', () => runAll(metaItems));
  meter.end();

  const result: BuildUploadResult = {
    buildId,
    arches,
    files,
    bytesSent: files.reduce((n, f) => n + f.sent, 0),
    bytesSkipped: files.filter((f) => f.skipped).reduce((n, f) => n + f.size, 0),
  };

  if (!options.skipBuildsJson && !options.dryRun) {
    const localIds = new Set(local.builds.map((b) => b.id));
    const up = await withPhase(onProgress, 'update builds.json', () =>
      updateRemoteBuildsJson(
        store,
        (current) => {
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
          return mergeBuildsJson(base, incoming);
        },
        (written) => arches.every((a) => written.builds.find((b) => b.id === buildId)?.arches.includes(a)),
        { ...(options.acl ? { acl: options.acl } : {}), ...(signal ? { signal } : {}), onProgress },
      ),
    );
    result.buildsJson = { attempts: up.attempts, conditional: up.conditional };
    await mkdir(join(workdir, 'tmp'), { recursive: true });
    await withLock(
      buildsPath,
      async () => {
        // Keep local builds the remote does not list (never uploaded) and take in everything remote.
        const now = parseBuildsJson(await readFile(buildsPath, 'utf8'), buildsPath);
        const merged = mergeBuildsJson(up.buildsJson, { ...now, builds: now.builds.filter((b) => !up.buildsJson.builds.some((r) => r.id === b.id)) });
        const mergedText = merged.builds.length === up.buildsJson.builds.length ? up.text : stableStringify(merged);
        await writeFileAtomic(buildsPath, mergedText);
        await writeFileAtomic(join(workdir, 'tmp', 'builds-source.txt'), `${store.url}\n`);
        await writeFileAtomic(join(workdir, 'tmp', 'builds-source.json'), up.text);
      },
      { what: 'builds/builds.json' },
    );
  }
  onProgress({
    type: 'info',
    message: `${options.dryRun ? 'Would upload' : 'Uploaded'} build ${buildId} (${arches.join(', ')}) to ${store.url}: ${result.files.filter((f) => !f.skipped).length} sent, ${result.files.filter((f) => f.skipped).length} skipped`,
  });
  return result;
}
