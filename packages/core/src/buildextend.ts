/**
 * `cosa buildextend-<platform>`: add platform images to an existing build. The base disk is the
 * build's qemu image (written once per build); every platform derives from it by rewriting its
 * platform id and kernel arguments and converting — no new install.
 */
import { open, mkdir, readFile, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, loadConfig, type OnProgress, withPhase } from '@cosa/schema';
import { pidAlive, retry } from '@cosa/schema/internal';
import { importRepoTar, revParse } from '@cosa/ostree';
import {
  createDisk,
  derivePlatformImages,
  listPlatforms,
  selectExecutor,
  type ExecutorChoice,
  type PlatformImage,
} from '@cosa/image';
import { convertDisk, getPlatform, platformArtifactName, type PlatformsConfig } from '@cosa/image/internal';
import { Workdir } from './workdir.js';
import { artifactMetaPath, isDelayedMerge, writeArtifactMeta } from './delayed-meta.js';

export { listPlatforms };
import { hostArch } from './arch.js';

/** Options of {@link buildExtend}. */
export interface BuildExtendOptions {
  workdir: string;
  /** Build id (default latest). */
  build?: string;
  arch?: string;
  /** Platforms (images keys), e.g. `['aws', 'azure']`. */
  platforms: string[];
  /** Rebuild images that already exist. */
  force?: boolean;
  /** How many platforms to derive at once (default 2). */
  concurrency?: number;
  /** Where a disk that cannot be derived (metal4k) is written (default auto: direct when root with loop devices, else the VM). */
  executor?: ExecutorChoice;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What {@link buildExtend} did, per platform. */
export interface BuildExtendResult {
  buildId: string;
  arch: string;
  built: PlatformImage[];
  /** Platforms skipped because the build already has them. */
  skipped: string[];
}

/** Takes the original's `.<platform>.building` semaphore in the build dir (stale ones are taken over). */
async function acquireSemaphore(buildDir: string, platform: string): Promise<() => Promise<void>> {
  const path = join(buildDir, `.${platform}.building`);
  // Thrown when a stale semaphore was removed: the second try takes it (unless another process was faster).
  const stale = new CosaError('COSA_WORKDIR_LOCKED', `could not take ${path}`);
  return retry(
    async () => {
      try {
        const fh = await open(path, 'wx');
        await fh.writeFile(`${process.pid}\n`);
        await fh.close();
        return () => unlink(path).catch(() => {});
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
        if (Number.isFinite(pid) && pid > 0 && pidAlive(pid)) {
          throw new CosaError('COSA_WORKDIR_LOCKED', `buildextend-${platform} is already running for this build (pid ${pid})`, {
            hint: 'wait for it to finish; meta.json will list the image',
          });
        }
        await rm(path, { force: true });
        throw stale;
      }
    },
    { attempts: 2, delayMs: 0, retryIf: (e) => e === stale },
  );
}

/** Adds platform images to a build; existing ones are skipped unless `force`. */
export async function buildExtend(options: BuildExtendOptions): Promise<BuildExtendResult> {
  const known = listPlatforms();
  for (const p of options.platforms) {
    if (!known.includes(p)) {
      throw new CosaError('COSA_PLATFORM_UNKNOWN', `unknown platform "${p}"; known platforms: ${known.join(', ')}`);
    }
  }
  const wd = await Workdir.open(options.workdir);
  const arch = options.arch ?? hostArch();
  const buildId = await wd.builds.resolve(options.build ?? 'latest', arch);
  const buildDir = join(wd.buildsDir, buildId, arch);
  const meta = await wd.builds.getMeta(buildId, arch);
  // With the original's delayed merge, an image may be waiting in meta.<platform>.json.
  const delayed = isDelayedMerge(meta);
  const pendingImage = async (p: string) => delayed && !!(await readFile(artifactMetaPath(buildDir, p), 'utf8').then((t) => (JSON.parse(t) as { images?: Record<string, unknown> }).images?.[p], () => undefined));
  const skipped: string[] = [];
  const todo: string[] = [];
  for (const p of [...new Set(options.platforms)]) {
    if (p === 'qemu') {
      skipped.push(p); // the qemu image is the base disk: `cosa build --force-image` writes a new one
      continue;
    }
    if ((meta.images?.[p as 'aws'] || (await pendingImage(p))) && !options.force) {
      options.onProgress?.({ type: 'info', message: `${p} image already exists in build ${buildId}` });
      skipped.push(p);
      continue;
    }
    todo.push(p);
  }
  if (todo.length === 0) return { buildId, arch, built: [], skipped };
  // metal4k cannot be derived from the 512-byte-sector base: it gets its own install from the commit.
  const ownDisk = todo.filter((p) => getPlatform(p).needsOwnDisk);
  const qemu = meta.images?.qemu?.path;
  if (ownDisk.length < todo.length) {
    if (!qemu) {
      throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} has no qemu image to derive platforms from`, { hint: 'run cosa build (or cosa build --force-image) first' });
    }
    if (/\.(xz|gz|zst)$/.test(qemu)) {
      throw new CosaError('COSA_BUILD_COMPRESSED', `the qemu image of build ${buildId} is compressed`, { hint: 'cosa decompress first' });
    }
  }
  // The commit of an own-disk platform: from tmp/repo when it is there (read only), else from the
  // build's ostree archive. Checked before anything is written.
  const ostreeTar = meta.images?.ostree?.path;
  const sig = options.signal ? { signal: options.signal } : {};
  const commitInRepo = ownDisk.length > 0 && !!(await revParse({ repo: wd.repo, ref: meta['ostree-commit'], ...sig }).catch(() => undefined));
  if (ownDisk.length > 0 && !commitInRepo) {
    if (!ostreeTar) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${buildId} has no ostree archive to write ${ownDisk.join(', ')} from`, { hint: 'cosa buildfetch --artifact=ostree' });
    if (/\.(xz|gz|zst)$/.test(ostreeTar)) throw new CosaError('COSA_BUILD_COMPRESSED', `the ostree archive of build ${buildId} is compressed`, { hint: 'cosa decompress first' });
  }

  const releases: (() => Promise<void>)[] = [];
  const work = join(wd.tmpDir, `buildextend-${buildId}-${process.pid}`);
  try {
    for (const p of todo) releases.push(await acquireSemaphore(buildDir, p));
    await mkdir(work, { recursive: true });
    const variant = await wd.configVariant();
    const cfg = await loadConfig({ configDir: wd.configDir, arch, ...(variant ? { variant } : {}) }).catch(() => undefined);
    const platformsConfig: PlatformsConfig | undefined = cfg?.platforms ? ({ [arch]: cfg.platforms } as unknown as PlatformsConfig) : undefined;
    const prog = options.onProgress ? { onProgress: options.onProgress } : {};
    const baseRaw = join(work, 'base.raw');
    if (qemu && ownDisk.length < todo.length) {
      await withPhase(options.onProgress, 'base-disk', () => convertDisk({ input: join(buildDir, qemu), inputFormat: 'qcow2', output: baseRaw, format: 'raw', ...sig, ...prog }));
    }
    let baseRaw4k: string | undefined;
    if (ownDisk.length > 0) {
      const commit = meta['ostree-commit'];
      let repo = wd.repo;
      if (!commitInRepo) {
        repo = join(work, 'repo');
        await withPhase(options.onProgress, 'import', () => importRepoTar({ tar: join(buildDir, ostreeTar as string), repo, tmpDir: work, ...sig }));
      }
      baseRaw4k = join(work, 'base4k.raw');
      const executor = await selectExecutor({ choice: options.executor ?? 'auto', cacheDir: wd.cacheDir });
      const imgid = platformArtifactName({ name: meta.name, buildId, platform: 'metal4k', arch });
      await withPhase(options.onProgress, 'disk-4k', () =>
        createDisk({
          repo, commit, ...(meta.ref ? { ref: meta.ref } : {}), osname: meta.name, platform: 'metal', sectorSize: 4096, hash: false,
          ...(cfg ? { imageConfig: cfg.imageConfig } : {}),
          executor, output: baseRaw4k as string, buildId, imgid, tmpDir: work, cacheDir: wd.cacheDir, ...sig, ...prog,
        }),
      );
    }
    const built = await withPhase(options.onProgress, `platforms (${todo.join(', ')})`, () =>
      derivePlatformImages({
        platforms: todo,
        baseRaw,
        ...(baseRaw4k ? { baseRaw4k } : {}),
        output: buildDir,
        ...(cfg ? { imageConfig: cfg.imageConfig } : {}),
        ...(platformsConfig ? { platformsConfig } : {}),
        name: meta.name,
        buildId,
        arch,
        tmpDir: work,
        concurrency: options.concurrency ?? 2,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      }),
    );
    const images: Record<string, unknown> = {};
    for (const img of built) {
      images[img.platform] = {
        path: img.path.slice(buildDir.length + 1),
        sha256: img.sha256,
        size: img.size,
        ...(img.skipCompression ? { 'skip-compression': true } : {}),
      };
    }
    if (delayed) {
      // Each platform in its own meta.<platform>.json: parallel writers never touch meta.json.
      const current = await wd.builds.getMeta(buildId, arch);
      for (const img of built) await writeArtifactMeta(buildDir, img.platform, current, { images: { [img.platform]: images[img.platform] } });
    } else {
      await wd.builds.mergeMeta(buildId, arch, { images });
    }
    return { buildId, arch, built, skipped };
  } finally {
    await rm(work, { recursive: true, force: true });
    for (const r of releases) await r();
  }
}
