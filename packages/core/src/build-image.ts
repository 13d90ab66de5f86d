/**
 * buildImage: the image of one platform for a build of a workdir, as scripts want it. `qemu` is
 * the base disk (an image-only build, as `cosa build --force-image`); every other platform is
 * added to the build as `cosa buildextend-<platform>` does. An image the build already has is
 * returned as it is unless `force`.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, type OnProgress } from '@cosa/schema';
import { listPlatforms, type ExecutorChoice } from '@cosa/image';
import { hostArch } from './arch.js';
import { build } from './build.js';
import { buildExtend } from './buildextend.js';
import { Workdir } from './workdir.js';

/** Options of {@link buildImage}. */
export interface BuildImageOptions {
  /** The workdir (created with `cosa init`). */
  workdir: string;
  /** Build id, or `latest` (the default). */
  build?: string;
  /** An images key: `qemu`, `metal`, `metal4k`, `aws`, `azure`, `gcp`, … (see `listPlatforms()`). */
  platform: string;
  /** Base arch (default: the host's). */
  arch?: string;
  /**
   * Write the image even when the build has it. For `qemu` this makes a new image-only build
   * (`<version>-<n>`, the same commit); for other platforms the build's image is replaced.
   */
  force?: boolean;
  /** Where a disk is written: auto (direct when root with loop devices, else the VM). */
  executor?: ExecutorChoice;
  /** With `qemu`: keep every build instead of pruning to the last 3 + tagged. */
  skipPrune?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** The image {@link buildImage} wrote or found. */
export interface BuildImageResult {
  platform: string;
  /** Absolute path of the image file. */
  path: string;
  /** sha256 (hex) of the file as stored. */
  sha256: string;
  /** Size of the file in bytes. */
  size: number;
  /** The build that holds the image (a new one for a `qemu` image-only build). */
  buildId: string;
  arch: string;
  /** False when the build already had the image and it was returned as it is. */
  written: boolean;
}

async function imageOf(wd: Workdir, buildId: string, arch: string, platform: string, written: boolean): Promise<BuildImageResult> {
  const meta = await wd.builds.getMeta(buildId, arch);
  const img = (meta.images as Record<string, { path: string; sha256: string; size?: number } | undefined> | undefined)?.[platform];
  if (!img) {
    throw new CosaError('COSA_BUILD_FAILED', `build ${buildId} (${arch}) has no ${platform} image after writing it`, { hint: 'see the progress log for what happened' });
  }
  const path = join(wd.buildsDir, buildId, arch, img.path);
  const size = img.size ?? (await stat(path)).size;
  return { platform, path, sha256: img.sha256, size, buildId, arch, written };
}

/**
 * Writes (or finds) the image of one platform for a build and resolves with its path, sha256 and
 * size. `qemu` for a build without one (or with `force`) is an image-only build of the latest
 * build: it reuses the commit and gets a new build id — like `cosa build --force-image`, it
 * composes a new commit if the config changed since. Other platforms are added to the build
 * itself, like `cosa buildextend-<platform>`.
 *
 * @example
 * ```ts
 * const img = await buildImage({ workdir: '/srv/os', build: 'latest', platform: 'metal' });
 * console.log(img.path, img.sha256, img.size);
 * ```
 */
export async function buildImage(options: BuildImageOptions): Promise<BuildImageResult> {
  const known = listPlatforms();
  if (!known.includes(options.platform)) {
    throw new CosaError('COSA_PLATFORM_UNKNOWN', `unknown platform "${options.platform}"; known platforms: ${known.join(', ')}`);
  }
  const wd = await Workdir.open(options.workdir);
  const arch = options.arch ?? hostArch();
  const buildId = await wd.builds.resolve(options.build ?? 'latest', arch);
  const common = {
    workdir: wd.dir,
    arch,
    ...(options.executor ? { executor: options.executor } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  };
  if (options.platform !== 'qemu') {
    const r = await buildExtend({ ...common, build: buildId, platforms: [options.platform], ...(options.force ? { force: true } : {}) });
    return imageOf(wd, buildId, arch, options.platform, r.built.length > 0);
  }
  const meta = await wd.builds.getMeta(buildId, arch);
  if (meta.images?.qemu && !options.force) return imageOf(wd, buildId, arch, 'qemu', false);
  const latest = await wd.builds.resolve('latest', arch);
  if (buildId !== latest) {
    throw new CosaError('COSA_USAGE', `a qemu image is written as a new image-only build of the latest build (${latest}), not of build ${buildId}`, {
      hint: "use build: 'latest'",
    });
  }
  const r = await build({ ...common, targets: ['qemu'], forceImage: true, ...(options.skipPrune ? { skipPrune: true } : {}) });
  return imageOf(wd, r.buildId, arch, 'qemu', r.status === 'built');
}
