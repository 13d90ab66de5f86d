/**
 * `cosa buildfetch` / `cosa buildupload` at the workdir level: @cosa/store moves the bytes (and
 * merges the remote records); this module owns the workdir side — builds.json, `latest`, the
 * staging dir under tmp/ and `tmp/builds-source.{txt,json}`. @cosa/store is loaded with a dynamic
 * import, so importing @cosa/core never loads the AWS SDK.
 */
import { mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  CosaError,
  fsyncDir,
  parseBuildsJson,
  stableStringify,
  withLock,
  writeFileAtomic,
  type BuildsJson,
  type MetaJson,
  type OnProgress,
} from '@cosa/schema';
import { noProgress, safeSegment, symlinkAtomic } from '@cosa/schema/internal';
import type { BuildStore, FetchedFile, OpenStoreOptions, RemoteBuilds, UploadObjectsOptions, UploadObjectsResult } from '@cosa/store';
import { BuildsDir } from './builds-dir.js';

/**
 * @cosa/store (and with it the AWS SDK) is an optional peer of @cosa/core: installed with the CLI,
 * loaded only when builds move to or from a store.
 */
async function loadStore(): Promise<typeof import('@cosa/store')> {
  try {
    return await import('@cosa/store');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes('@cosa/store')) {
      throw new CosaError('COSA_TOOLS_MISSING', 'fetching or uploading builds needs the package @cosa/store, which is not installed', { hint: 'npm install @cosa/store (the cosa CLI ships with it)', cause: e });
    }
    throw e;
  }
}

/** Options of {@link buildFetch} (and {@link BuildsDir.fetch}, without `workdir`). */
export interface BuildFetchOptions extends OpenStoreOptions {
  /** The workdir to fetch into (`builds/` and `tmp/` are created when missing). */
  workdir: string;
  /** Where builds live: `s3://bucket/prefix`, `https://…`, `http://…`, `file://…` or a path. */
  url?: string;
  /** An already opened store (instead of `url`). */
  store?: BuildStore;
  /** The build to fetch (default: the remote latest, or the latest for the arch with `findBuildForArch`). */
  build?: string;
  /** Arches to fetch: a list or `'all'` (default: this machine's arch). Arches the build lacks are skipped. */
  arch?: string[] | 'all';
  /** Pick the newest build that has the (single) requested arch. */
  findBuildForArch?: boolean;
  /** Artifacts (`images` keys) to download, or `'all'` (default: none, only metadata). */
  artifacts?: string[] | 'all';
  /** Extra files of the arch dir to fetch (names, e.g. `manifest-lock.generated.x86_64.json`). */
  files?: string[];
  /** Overwrite a local builds.json that has changes of its own. */
  force?: boolean;
  /** Downloads in parallel (default 4). */
  concurrency?: number;
  onProgress?: OnProgress;
  signal?: AbortSignal;
}

/** What {@link buildFetch} did. */
export interface BuildFetchResult {
  /** False when the store has no builds.json (nothing was done). */
  found: boolean;
  buildId: string | undefined;
  /** Arches fetched. */
  arches: string[];
  /** Requested arches the build does not have. */
  skippedArches: string[];
  /** Every file fetched or verified (paths in the workdir). */
  files: FetchedFile[];
  /** meta.json per fetched arch. */
  metas: Record<string, MetaJson>;
  /** True when builds/latest now points at the fetched build (it is the remote latest). */
  latestUpdated: boolean;
  /** Bytes downloaded (not counting verified local copies). */
  bytes: number;
}

/** Options of {@link buildUpload} (and {@link BuildsDir.upload}, without `workdir`). */
export interface BuildUploadOptions extends Omit<UploadObjectsOptions, 'store' | 'buildId' | 'buildDir' | 'arches' | 'local'> {
  workdir: string;
  /** An already opened store (instead of `bucketPrefix` / `url`). */
  store?: BuildStore;
  /** Build to upload (default: builds/latest, else the newest in builds.json). */
  build?: string;
  /** Only these arches (default: every arch of the build that has a local meta.json). */
  arch?: string[];
}

/** What {@link buildUpload} did. */
export interface BuildUploadResult extends Omit<UploadObjectsResult, 'remoteBuilds'> {}

const norm = (text: string): string => {
  try {
    return stableStringify(JSON.parse(text));
  } catch {
    return text;
  }
};

async function readIfExists(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
}

/** `tmp/` of the workdir whose `builds/` this is. */
const tmpOf = (builds: BuildsDir): string => join(dirname(builds.dir), 'tmp');

/** Why the local builds.json must not be replaced, or undefined when it may. */
async function localChanges(builds: BuildsDir, remote: BuildsJson): Promise<string | undefined> {
  const local = await readIfExists(builds.file);
  if (local === undefined) return undefined;
  const source = await readIfExists(join(tmpOf(builds), 'builds-source.json'));
  if (source !== undefined) {
    return norm(local) === norm(source) ? undefined : 'builds/builds.json has changed since it was fetched (differs from tmp/builds-source.json)';
  }
  // Never fetched before: refuse only when replacing it would drop builds or arches.
  const mine = parseBuildsJson(local, builds.file);
  const lost = mine.builds.filter((b) => {
    const r = remote.builds.find((x) => x.id === b.id);
    return !r || b.arches.some((a) => !r.arches.includes(a));
  });
  return lost.length > 0 ? `builds/builds.json lists builds the remote does not have (${lost.map((b) => b.id).join(', ')})` : undefined;
}

async function refuseLocalChanges(builds: BuildsDir, remote: BuildsJson): Promise<void> {
  const why = await localChanges(builds, remote);
  if (why) throw new CosaError('COSA_STORE_LOCAL_CHANGES', why, { hint: 'run buildfetch with --force to replace it' });
}

const STAGING_PREFIX = 'buildfetch-';

/** Removes staging dirs of fetches whose process is gone (killed). */
async function removeStaleStaging(tmp: string): Promise<void> {
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    const pid = Number(/^buildfetch-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await rm(join(tmp, name), { recursive: true, force: true });
  }
}

/**
 * Moves a staged arch dir into `builds/<id>/<arch>`: one rename when the arch dir is new; else
 * file by file with meta.json last, so meta.json never names a file that is not there yet.
 */
async function moveInto(staged: string, dir: string): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  const existing = await stat(dir).catch(() => undefined);
  if (!existing) {
    await rename(staged, dir);
    await fsyncDir(dirname(dir));
    return;
  }
  const names = (await readdir(staged)).filter((n) => n !== 'meta.json');
  for (const n of [...names, 'meta.json']) await rename(join(staged, n), join(dir, n));
  await fsyncDir(dir);
}

/** Replaces builds.json by the remote one, records its source, and points `latest` at `latest` when given. */
async function takeRemoteBuilds(builds: BuildsDir, remote: RemoteBuilds, storeUrl: string, latest: string | undefined, force: boolean): Promise<void> {
  const tmp = tmpOf(builds);
  await mkdir(tmp, { recursive: true });
  await mkdir(builds.dir, { recursive: true });
  await withLock(
    builds.file,
    async () => {
      if (!force) await refuseLocalChanges(builds, remote.builds);
      await writeFileAtomic(builds.file, remote.bytes);
      await writeFileAtomic(join(tmp, 'builds-source.txt'), `${storeUrl}\n`);
      await writeFileAtomic(join(tmp, 'builds-source.json'), remote.bytes);
      if (latest !== undefined) await symlinkAtomic(latest, builds.latestLink);
    },
    { what: 'builds/builds.json' },
  );
}

/**
 * Fetches a build's metadata and, on request, its artifacts from a build store into the workdir
 * of `builds` (`cosa buildfetch`). Everything lands in a staging dir under tmp/ and moves into
 * `builds/<id>/<arch>` whole (meta.json last), so a failed or killed fetch leaves builds/ as it
 * was; builds.json is replaced by the remote one at the end (refused when the local one has
 * changes, unless `force`), the source is recorded in `tmp/builds-source.{txt,json}`, and
 * `builds/latest` follows when the remote latest was fetched.
 */
export async function fetchIntoBuildsDir(builds: BuildsDir, options: Omit<BuildFetchOptions, 'workdir'>): Promise<BuildFetchResult> {
  const lib = await loadStore();
  const onProgress = options.onProgress ?? noProgress;
  const store = options.store ?? lib.openBuildStore(options.url ?? '', options);
  const result: BuildFetchResult = { found: false, buildId: undefined, arches: [], skippedArches: [], files: [], metas: {}, latestUpdated: false, bytes: 0 };
  const remote = await lib.readRemoteBuilds(store, { onProgress, ...(options.signal ? { signal: options.signal } : {}), ...(options.timeouts ? { timeouts: options.timeouts } : {}) });
  if (!remote) {
    onProgress({ type: 'info', message: `No builds.json found at ${store.url}` });
    return result;
  }
  result.found = true;
  if (!options.force) await refuseLocalChanges(builds, remote.builds);
  const tmp = tmpOf(builds);
  await mkdir(tmp, { recursive: true });
  await removeStaleStaging(tmp);
  const stageRoot = await mkdtemp(join(tmp, `${STAGING_PREFIX}${process.pid}-`));
  try {
    const got = await lib.fetchBuildObjects({ ...options, onProgress, store, remote, stagingDir: stageRoot, targetDir: (id, arch) => builds.buildDir(id, arch) });
    Object.assign(result, got);
    for (const arch of got.arches) await moveInto(join(stageRoot, arch), builds.buildDir(got.buildId!, arch));
  } finally {
    await rm(stageRoot, { recursive: true, force: true });
  }
  const id = result.buildId;
  const latest = id !== undefined && id === remote.builds.builds[0]?.id && result.arches.length > 0 ? id : undefined;
  await takeRemoteBuilds(builds, remote, store.url, latest, options.force === true);
  result.latestUpdated = latest !== undefined;
  onProgress({ type: 'info', message: id ? `Fetched build ${id} (${result.arches.join(', ') || 'no arches'}) from ${store.url}` : `Fetched builds.json from ${store.url} (no builds)` });
  return result;
}

/** Reads the local builds.json and checks the build and arches asked for. */
async function resolveTarget(builds: BuildsDir, options: Omit<BuildUploadOptions, 'workdir'>, onProgress: OnProgress) {
  const localText = await readFile(builds.file, 'utf8').catch(() => {
    throw new CosaError('COSA_WORKDIR_INVALID', `${builds.file} does not exist`, { hint: 'run cosa build or cosa buildfetch first' });
  });
  const local = parseBuildsJson(localText, builds.file);
  let wanted = options.build;
  if (wanted === undefined) {
    wanted = (await readlink(builds.latestLink).catch(() => undefined)) ?? local.builds[0]?.id;
    if (!wanted) throw new CosaError('COSA_BUILD_NOT_FOUND', 'no builds to upload', { hint: 'run cosa build first' });
  }
  const buildId = safeSegment.parse(wanted);
  const entry = local.builds.find((b) => b.id === buildId);
  if (!entry) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} is not in builds/builds.json`);
  for (const a of options.arch ?? []) {
    safeSegment.parse(a);
    if (!entry.arches.includes(a)) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} has no ${a} arch`);
  }
  const buildDir = builds.buildDir(buildId);
  const arches: string[] = [];
  for (const a of options.arch ?? entry.arches) {
    if (await stat(join(buildDir, a, 'meta.json')).catch(() => undefined)) arches.push(a);
    else onProgress({ type: 'warning', message: `${buildId}/${a} has no local meta.json; not uploading it` });
  }
  if (arches.length === 0) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} has no arch with a local meta.json`);
  return { local, buildId, buildDir, arches };
}

/** Takes the remote builds.json an upload wrote into the local one: keeps local builds the remote does not list. */
async function takeUploadedBuilds(builds: BuildsDir, remote: { text: string; builds: BuildsJson }, storeUrl: string, lib: typeof import('@cosa/store')): Promise<void> {
  const tmp = tmpOf(builds);
  await mkdir(tmp, { recursive: true });
  await withLock(
    builds.file,
    async () => {
      const now = parseBuildsJson(await readFile(builds.file, 'utf8'), builds.file);
      const merged = lib.mergeBuildsJson(remote.builds, { ...now, builds: now.builds.filter((b) => !remote.builds.builds.some((r) => r.id === b.id)) });
      const mergedText = merged.builds.length === remote.builds.builds.length ? remote.text : stableStringify(merged);
      await writeFileAtomic(builds.file, mergedText);
      await writeFileAtomic(join(tmp, 'builds-source.txt'), `${storeUrl}\n`);
      await writeFileAtomic(join(tmp, 'builds-source.json'), remote.text);
    },
    { what: 'builds/builds.json' },
  );
}

/**
 * Uploads a build of the workdir of `builds` to a store (`cosa buildupload s3 BUCKET/PREFIX`):
 * @cosa/store sends the objects and merges the remote meta.json and builds.json with conditional
 * writes; the merged builds.json is then taken in locally (local builds the remote lacks are
 * kept) and recorded as `tmp/builds-source.{txt,json}`.
 */
export async function uploadFromBuildsDir(builds: BuildsDir, options: Omit<BuildUploadOptions, 'workdir'>): Promise<BuildUploadResult> {
  const lib = await loadStore();
  const onProgress = options.onProgress ?? noProgress;
  const location = options.bucketPrefix !== undefined ? `s3://${options.bucketPrefix.replace(/^s3:\/\//, '')}` : options.url;
  const store = options.store ?? lib.openBuildStore(location ?? '', options);
  if (!store.writable) throw new CosaError('COSA_STORE_READ_ONLY', `${store.url} cannot be written`);
  const { local, buildId, buildDir, arches } = await resolveTarget(builds, options, onProgress);
  if (!options.skipBuildsJson && !(await stat(join(tmpOf(builds), 'builds-source.txt')).catch(() => undefined))) {
    onProgress({ type: 'log', line: 'no tmp/builds-source.txt: this workdir never fetched builds.json; the remote one is merged, not replaced' });
  }
  const { remoteBuilds, ...result } = await lib.uploadBuildObjects({ ...options, onProgress, store, buildId, buildDir, arches, local });
  if (remoteBuilds) await takeUploadedBuilds(builds, remoteBuilds, store.url, lib);
  return result;
}

/**
 * Fetches a build's metadata and, on request, its artifacts from a build store into a workdir
 * (`cosa buildfetch`); the same as `new BuildsDir(join(workdir, 'builds')).fetch(options)`.
 * Artifacts are sha256-checked while they stream; everything is staged under tmp/ and moves into
 * `builds/<id>/<arch>` whole (meta.json last); builds.json is replaced by the remote one at the
 * end (refused when the local one has changes, unless `force`), the source is recorded in
 * `tmp/builds-source.{txt,json}`, and `builds/latest` follows when the remote latest was fetched.
 * Needs @cosa/store installed (loaded on first use).
 */
export async function buildFetch(options: BuildFetchOptions): Promise<BuildFetchResult> {
  const { workdir, ...rest } = options;
  return new BuildsDir(join(workdir, 'builds')).fetch(rest);
}

/**
 * Uploads a build of a workdir to a store (`cosa buildupload s3 BUCKET/PREFIX`); the same as
 * `new BuildsDir(join(workdir, 'builds')).upload(options)`. Artifacts first, then each arch's
 * meta.json merged into the remote one, then a merged builds.json (conditional writes, never
 * overwritten), which is then taken in locally. Needs @cosa/store installed (loaded on first use).
 */
export async function buildUpload(options: BuildUploadOptions): Promise<BuildUploadResult> {
  const { workdir, ...rest } = options;
  return new BuildsDir(join(workdir, 'builds')).upload(rest);
}
