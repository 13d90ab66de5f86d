import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CosaError,
  hashFile,
  parseBuildsJson,
  parseMetaJson,
  withPhase,
  writeFileAtomic,
  type BuildsJson,
  type MetaJson,
  type OnProgress,
  hostBasearch,
} from '@cosa/schema';
import { noProgress, safeSegment } from '@cosa/schema/internal';
import pLimit from 'p-limit';
import type { OpenStoreOptions } from './location.js';
import type { BuildStore } from './store.js';
import { TransferMeter } from './_transfer.js';
import { readObjectText } from './_io.js';
import { downloadObject, rangeStreams } from './_ranged-get.js';
import { throwIfAborted } from './_util.js';

/** A remote builds.json as read by {@link readRemoteBuilds}. */
export interface RemoteBuilds {
  /** The parsed document. */
  builds: BuildsJson;
  /** Its bytes as the store sent them (written locally as they are). */
  bytes: Buffer;
  /** Where it was read from. */
  url: string;
}

/** Options of {@link readRemoteBuilds}. */
export interface ReadRemoteBuildsOptions {
  /** Deadlines of the read. */
  timeouts?: OpenStoreOptions['timeouts'];
  onProgress?: OnProgress;
  signal?: AbortSignal;
}

/** Reads and validates a store's builds.json; `undefined` when the store has none. */
export async function readRemoteBuilds(store: BuildStore, options: ReadRemoteBuildsOptions = {}): Promise<RemoteBuilds | undefined> {
  const onProgress = options.onProgress ?? noProgress;
  const textOptions = { onProgress, ...(options.timeouts ? { timeouts: options.timeouts } : {}) };
  const doc = await withPhase(onProgress, 'fetch builds.json', () => readObjectText(store, 'builds.json', options.signal, textOptions));
  if (!doc) return undefined;
  const url = store.urlOf('builds.json');
  return { builds: parseBuildsJson(doc.text, url), bytes: doc.bytes, url };
}

/** Options of {@link fetchBuildObjects}. */
export interface FetchObjectsOptions extends OpenStoreOptions {
  /** The store to read (see {@link openBuildStore}). */
  store: BuildStore;
  /** The store's builds.json ({@link readRemoteBuilds}). */
  remote: RemoteBuilds;
  /** Every file lands in `<stagingDir>/<arch>/` (created), meta.json last; the caller moves it into place. */
  stagingDir: string;
  /** Where the caller keeps build `id`/`arch`: a verified copy there is not downloaded again, and {@link FetchedFile.path} names it. */
  targetDir: (id: string, arch: string) => string;
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

/** What {@link fetchBuildObjects} did. */
export interface FetchObjectsResult {
  buildId: string | undefined;
  /** Arches fetched (staged under `<stagingDir>/<arch>`). */
  arches: string[];
  /** Requested arches the build does not have. */
  skippedArches: string[];
  /** Every file fetched or verified, named by its path in `targetDir`. */
  files: FetchedFile[];
  /** meta.json per fetched arch. */
  metas: Record<string, MetaJson>;
  /** Bytes downloaded (not counting verified local copies). */
  bytes: number;
}

/**
 * Downloads a build's metadata and, on request, its artifacts from a build store into a staging
 * dir (`<stagingDir>/<arch>/`): artifacts are sha256-checked while they stream and land
 * atomically, meta.json is written after them. The store only moves bytes: the caller (core's
 * `buildFetch`) owns the workdir, moves the staged dirs into `builds/` and records builds.json.
 */
export async function fetchBuildObjects(options: FetchObjectsOptions): Promise<FetchObjectsResult> {
  const onProgress = options.onProgress ?? noProgress;
  const signal = options.signal;
  const store = options.store;
  const textOptions = { onProgress, ...(options.timeouts ? { timeouts: options.timeouts } : {}) };
  const result: FetchObjectsResult = { buildId: undefined, arches: [], skippedArches: [], files: [], metas: {}, bytes: 0 };
  const remote = options.remote.builds;

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
      metas.push({ arch, meta, bytes: doc.bytes, dir: options.targetDir(buildId, arch) });
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
    const stage = (arch: string) => join(options.stagingDir, arch);
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
              if (st?.isFile() && (j.size === undefined || st.size === j.size) && (await hashFile(path, { signal })).sha256 === j.sha256) {
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
              ...(options.rangeSplit ? { rangeSplit: options.rangeSplit } : {}),
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
      result.metas[arch] = meta;
      result.files.push({ arch, name: 'meta.json', path: join(dir, 'meta.json'), bytes: bytes.length, skipped: false });
    }
  }
  return result;
}
