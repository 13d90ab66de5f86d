import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  CosaError,
  fsyncDir,
  noProgress,
  parseBuildsJson,
  parseMetaJson,
  safeSegment,
  stableStringify,
  symlinkAtomic,
  withLock,
  withPhase,
  writeFileAtomic,
  type BuildsJson,
  type MetaJson,
  type OnProgress,
  hostBasearch,
} from '@cosa/schema';
import pLimit from 'p-limit';
import { openBuildStore, type OpenStoreOptions } from './location.js';
import type { BuildStore } from './store.js';
import { TransferMeter } from './_transfer.js';
import { hashFile, readObjectText } from './_io.js';
import { downloadObject, rangeStreams } from './_ranged-get.js';
import { throwIfAborted } from './_util.js';

/** Options of {@link buildFetch}. */
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

/** One file the fetch wrote or found already in place. */
export interface FetchedFile {
  arch: string;
  /** File name in the arch dir. */
  name: string;
  /** Absolute path in the workdir. */
  path: string;
  /** The `images` key when the file is an artifact. */
  artifact?: string;
  bytes: number;
  /** True when a verified copy was already there. */
  skipped: boolean;
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
  /** Every file fetched or verified; core imports the `ostree` artifact into tmp/repo from here. */
  files: FetchedFile[];
  /** meta.json per fetched arch. */
  metas: Record<string, MetaJson>;
  /** True when builds/latest now points at the fetched build (it is the remote latest). */
  latestUpdated: boolean;
  /** Bytes downloaded (not counting verified local copies). */
  bytes: number;
}

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

/** Why the local builds.json must not be replaced, or undefined when it may. */
async function localChanges(workdir: string, remote: BuildsJson): Promise<string | undefined> {
  const local = await readIfExists(join(workdir, 'builds', 'builds.json'));
  if (local === undefined) return undefined;
  const source = await readIfExists(join(workdir, 'tmp', 'builds-source.json'));
  if (source !== undefined) {
    return norm(local) === norm(source) ? undefined : 'builds/builds.json has changed since it was fetched (differs from tmp/builds-source.json)';
  }
  // Never fetched before: refuse only when replacing it would drop builds or arches.
  const mine = parseBuildsJson(local, join(workdir, 'builds', 'builds.json'));
  const lost = mine.builds.filter((b) => {
    const r = remote.builds.find((x) => x.id === b.id);
    return !r || b.arches.some((a) => !r.arches.includes(a));
  });
  return lost.length > 0 ? `builds/builds.json lists builds the remote does not have (${lost.map((b) => b.id).join(', ')})` : undefined;
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

/**
 * Fetches a build's metadata and, on request, its artifacts from a build store into a workdir
 * (`cosa buildfetch`). Artifacts are sha256-checked while they stream and land atomically;
 * meta.json is written after the artifacts; builds.json is replaced by the remote one at the end
 * (refused when the local one has changes, unless `force`), the source is recorded in
 * `tmp/builds-source.{txt,json}`, and `builds/latest` follows when the remote latest was fetched.
 */
export async function buildFetch(options: BuildFetchOptions): Promise<BuildFetchResult> {
  const onProgress = options.onProgress ?? noProgress;
  const signal = options.signal;
  const store = options.store ?? openBuildStore(options.url ?? '', options);
  const workdir = options.workdir;
  const buildsDir = join(workdir, 'builds');
  const textOptions = { onProgress, ...(options.timeouts ? { timeouts: options.timeouts } : {}) };
  const result: BuildFetchResult = { found: false, buildId: undefined, arches: [], skippedArches: [], files: [], metas: {}, latestUpdated: false, bytes: 0 };

  const remoteDoc = await withPhase(onProgress, 'fetch builds.json', () => readObjectText(store, 'builds.json', signal, textOptions));
  if (!remoteDoc) {
    onProgress({ type: 'info', message: `No builds.json found at ${store.url}` });
    return result;
  }
  result.found = true;
  const remote = parseBuildsJson(remoteDoc.text, store.urlOf('builds.json'));
  if (!options.force) {
    const why = await localChanges(workdir, remote);
    if (why) throw new CosaError('COSA_STORE_LOCAL_CHANGES', why, { hint: 'run buildfetch with --force to replace it' });
  }

  const wanted = options.arch === 'all' ? 'all' : (options.arch ?? [hostBasearch()]);
  if (wanted !== 'all') for (const a of wanted) safeSegment.parse(a);
  let buildId: string | undefined;
  if (options.build !== undefined) {
    buildId = options.build;
    if (!remote.builds.some((b) => b.id === buildId)) {
      throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} is not in ${store.urlOf('builds.json')}`);
    }
  } else if (options.findBuildForArch) {
    if (wanted === 'all' || wanted.length !== 1) {
      throw new CosaError('COSA_USAGE', 'findBuildForArch needs exactly one arch');
    }
    buildId = remote.builds.find((b) => b.arches.includes(wanted[0]!))?.id;
    if (!buildId) throw new CosaError('COSA_BUILD_NOT_FOUND', `no build for ${wanted[0]} in ${store.urlOf('builds.json')}`);
  } else {
    buildId = remote.builds[0]?.id;
  }
  result.buildId = buildId;
  const entry = remote.builds.find((b) => b.id === buildId);

  if (entry && buildId) {
    const arches = wanted === 'all' ? entry.arches : wanted.filter((a) => entry.arches.includes(a));
    result.skippedArches = wanted === 'all' ? [] : wanted.filter((a) => !entry.arches.includes(a));
    for (const a of result.skippedArches) onProgress({ type: 'info', message: `Build ${buildId} has no ${a} arch; skipping it` });
    result.arches = arches;

    // Every meta.json first: it lists what to download and lets the total be known up front.
    const metas: Array<{ arch: string; meta: MetaJson; bytes: Buffer; dir: string }> = [];
    for (const arch of arches) {
      const key = `${buildId}/${arch}/meta.json`;
      const doc = await readObjectText(store, key, signal, textOptions);
      if (!doc) throw new CosaError('COSA_STORE_NOT_FOUND', `${store.urlOf(key)} does not exist`);
      const meta = parseMetaJson(doc.text, store.urlOf(key));
      if (meta.buildid !== buildId) {
        throw new CosaError('COSA_SCHEMA_INVALID', `${store.urlOf(key)} describes build ${meta.buildid}, not ${buildId}`);
      }
      metas.push({ arch, meta, bytes: doc.bytes, dir: join(buildsDir, buildId, arch) });
    }

    const jobs: Array<{ arch: string; dir: string; name: string; artifact?: string; sha256?: string; size?: number; required: boolean }> = [];
    for (const { arch, meta, dir } of metas) {
      const images = (meta.images ?? {}) as Record<string, { path: string; sha256: string; size?: number } | undefined>;
      const names = options.artifacts === 'all' ? Object.keys(images) : (options.artifacts ?? []);
      for (const n of names) {
        const img = images[n];
        if (!img) throw new CosaError('COSA_STORE_ARTIFACT_UNKNOWN', `build ${buildId} (${arch}) has no artifact ${n}`, { hint: `known: ${Object.keys(images).join(', ')}` });
        jobs.push({ arch, dir, name: img.path, artifact: n, sha256: img.sha256, ...(img.size !== undefined ? { size: img.size } : {}), required: true });
      }
      for (const f of ['commitmeta.json', 'ostree-commit-object']) jobs.push({ arch, dir, name: f, required: false });
      for (const f of options.files ?? []) {
        const r = safeSegment.safeParse(f);
        if (!r.success || f === 'meta.json') throw new CosaError('COSA_PATH_UNSAFE', `not a file name in the build dir: ${JSON.stringify(f)}`);
        if (!jobs.some((j) => j.arch === arch && j.name === f)) jobs.push({ arch, dir, name: f, required: true });
      }
    }
    const total = jobs.reduce((n, j) => n + (j.size ?? 0), 0);
    const meter = new TransferMeter(onProgress, total > 0 ? total : undefined);
    const limit = pLimit(Math.max(1, options.concurrency ?? 4));
    // Connections are shared: large artifacts fetched side by side get one stream each; one
    // alone is split into parallel byte ranges (see _ranged-get.ts).
    const ranges = rangeStreams(jobs, options.concurrency ?? 4);
    // Everything lands in tmp/ first and moves into builds/ whole: a failed or killed fetch
    // leaves builds/ as it was (a killed one leaves a staging dir the next fetch removes).
    await mkdir(join(workdir, 'tmp'), { recursive: true });
    await removeStaleStaging(join(workdir, 'tmp'));
    const stageRoot = await mkdtemp(join(workdir, 'tmp', `${STAGING_PREFIX}${process.pid}-`));
    const stage = (arch: string) => join(stageRoot, arch);
    try {
      await withPhase(onProgress, 'download', async () => {
        for (const { arch } of metas) await mkdir(stage(arch), { recursive: true });
        const settled = await Promise.allSettled(
          jobs.map((j) =>
            limit(async () => {
              throwIfAborted(signal);
              const path = join(j.dir, j.name);
              const key = `${buildId}/${j.arch}/${j.name}`;
              if (j.sha256 !== undefined) {
                const st = await stat(path).catch(() => undefined);
                if (st?.isFile() && (j.size === undefined || st.size === j.size) && (await hashFile(path, signal)).sha256 === j.sha256) {
                  result.files.push({ arch: j.arch, name: j.name, path, ...(j.artifact ? { artifact: j.artifact } : {}), bytes: st.size, skipped: true });
                  onProgress({ type: 'log', line: `${j.name}: already present and verified` });
                  return;
                }
              }
              const got = await downloadObject(store, key, join(stage(j.arch), j.name), {
                name: j.name,
                ...(j.sha256 !== undefined ? { sha256: j.sha256 } : {}),
                ...(j.size !== undefined ? { size: j.size } : {}),
                meter,
                ...(signal ? { signal } : {}),
                ...(options.timeouts ? { timeouts: options.timeouts } : {}),
                // Optional extras without a declared size are small JSON files.
                ...(j.size === undefined && !j.artifact ? { maxBytes: 256 * 1024 * 1024 } : {}),
                onProgress,
                concurrency: ranges,
              });
              if (!got) {
                if (j.required) throw new CosaError('COSA_STORE_NOT_FOUND', `${store.urlOf(key)} does not exist`);
                return;
              }
              result.bytes += got.bytes;
              result.files.push({ arch: j.arch, name: j.name, path, ...(j.artifact ? { artifact: j.artifact } : {}), bytes: got.bytes, skipped: false });
            }),
          ),
        );
        meter.end();
        const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
        if (failed) throw failed.reason;
      });
      // meta.json last: a build dir with meta.json has everything meta.json lists that was asked for.
      for (const { arch, meta, bytes, dir } of metas) {
        await writeFileAtomic(join(stage(arch), 'meta.json'), bytes);
        await moveInto(stage(arch), dir);
        result.metas[arch] = meta;
        result.files.push({ arch, name: 'meta.json', path: join(dir, 'meta.json'), bytes: bytes.length, skipped: false });
      }
    } finally {
      await rm(stageRoot, { recursive: true, force: true });
    }
  }

  await mkdir(join(workdir, 'tmp'), { recursive: true });
  await mkdir(buildsDir, { recursive: true });
  await withLock(
    join(buildsDir, 'builds.json'),
    async () => {
      if (!options.force) {
        const why = await localChanges(workdir, remote);
        if (why) throw new CosaError('COSA_STORE_LOCAL_CHANGES', why, { hint: 'run buildfetch with --force to replace it' });
      }
      await writeFileAtomic(join(buildsDir, 'builds.json'), remoteDoc.bytes);
      await writeFileAtomic(join(workdir, 'tmp', 'builds-source.txt'), `${store.url}\n`);
      await writeFileAtomic(join(workdir, 'tmp', 'builds-source.json'), remoteDoc.bytes);
      if (buildId !== undefined && buildId === remote.builds[0]?.id && result.arches.length > 0) {
        await symlinkAtomic(buildId, join(buildsDir, 'latest'));
        result.latestUpdated = true;
      }
    },
    { what: 'builds/builds.json' },
  );
  onProgress({ type: 'info', message: buildId ? `Fetched build ${buildId} (${result.arches.join(', ') || 'no arches'}) from ${store.url}` : `Fetched builds.json from ${store.url} (no builds)` });
  return result;
}
