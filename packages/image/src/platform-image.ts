/**
 * One disk, many platforms: every platform image is derived from the base raw disk by a sparse
 * (reflinked when the file system can) copy, a platform switch in the boot partition, an
 * optional resize, a format conversion and packaging. No new install per platform.
 */
import { mkdir, mkdtemp, rename, rm, stat, truncate, unlink } from 'node:fs/promises';
import { createReadStream, createWriteStream } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { basename, dirname, join } from 'node:path';
import pLimit from 'p-limit';
import { CosaError, hashFile, withPhase, type ImageConfig, type OnProgress } from '@cosa/schema';
import { removeStaleTemps } from '@cosa/schema/internal';
import { run } from '@cosa/ostree/internal';
import { readGpt } from './_gpt.js';
import { convertDisk } from './convert.js';
import { writeOva } from './ova.js';
import { platformArtifactName, resolvePlatform, type PlatformsConfig, type ResolvedPlatform } from './platforms.js';
import { setPlatform } from './set-platform.js';

const MiB = 1024 * 1024;

/** Options of {@link derivePlatformImage}. */
export interface DerivePlatformImageOptions {
  /** The base raw disk (written once per build for `qemu`; for metal4k a 4096-byte-sector disk). */
  baseRaw: string;
  /** The platform (images key), e.g. `aws`. */
  platform: string;
  /** Directory the artifact is written to (usually `builds/<id>/<arch>`). */
  output: string;
  /** image.yaml (for the `vmware-*` OVF settings). */
  imageConfig?: Partial<ImageConfig> | undefined;
  /** meta.json `summary`, shown as the OVA product name (default: `name`). */
  summary?: string | undefined;
  /** The config repo's platforms.yaml (default: the built-in console settings). */
  platformsConfig?: PlatformsConfig | undefined;
  /** OS name (meta.json `name`), build id and arch: the artifact is `<name>-<buildId>-<platform>.<arch>.<ext>`. */
  name: string;
  buildId: string;
  arch: string;
  /** Grow the disk to this many bytes before converting (never shrinks). */
  virtualSize?: number | undefined;
  /** Scratch space; best on the same file system as `output` (a rename instead of a copy). */
  tmpDir: string;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

/** The artifact {@link derivePlatformImage} produced. */
export interface PlatformImage {
  /** The platform (images key). */
  platform: string;
  /** Absolute path of the artifact. */
  path: string;
  /** sha256 (hex) and size of the artifact as stored. */
  sha256: string;
  size: number;
  /** True when `cosa compress` must leave it alone. */
  skipCompression?: boolean;
  /** The disk's format and virtual size (of the disk inside the package for gcp/ova). */
  format: string;
  virtualSize: number;
  /** The meta.json `images.<platform>` entry to merge. */
  meta: { path: string; sha256: string; size: number; 'skip-compression'?: true };
}

function phaseName(platform: string, step: string): string {
  return `${platform}:${step}`;
}

/** Moves `src` to `dest` atomically (rename, or copy + rename across file systems), hashing the bytes. */
async function moveHashed(src: string, dest: string, o: { signal?: AbortSignal | undefined; onProgress?: OnProgress | undefined }): Promise<{ sha256: string; size: number }> {
  await removeStaleTemps(dest); // what a killed move to the same place left
  const tmp = join(dirname(dest), `.${basename(dest)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await rename(src, tmp);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const h = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(createReadStream(src), tap, createWriteStream(tmp), ...(o.signal ? [{ signal: o.signal }] : []));
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await unlink(src).catch(() => {});
    return { sha256: h.digest('hex'), size };
  }
  try {
    const r = await hashFile(tmp, { signal: o.signal, onProgress: o.onProgress, name: basename(dest) });
    await rename(tmp, dest);
    return r;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Derives one platform image from the base raw disk: copy (reflink/sparse), switch the platform
 * (ignition id, kernel arguments, GRUB console), resize, convert, package, hash, and move into
 * `output` atomically. metal4k needs a base disk written with 4096-byte sectors (see
 * `PlatformSpec.needsOwnDisk`); any other platform needs the 512-byte-sector base.
 */
export async function derivePlatformImage(options: DerivePlatformImageOptions): Promise<PlatformImage> {
  const { signal, onProgress } = options;
  const spec: ResolvedPlatform = resolvePlatform(options.platform, { arch: options.arch, platformsConfig: options.platformsConfig });
  const fileName = platformArtifactName({ name: options.name, buildId: options.buildId, platform: spec.key, arch: options.arch });
  const gpt = await readGpt(options.baseRaw).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    throw new CosaError('COSA_IMAGE_FAILED', `base disk ${options.baseRaw} not found`, {
      hint: 'write the base disk first (cosa build, or cosa buildextend-qemu)',
      cause: e,
    });
  });
  if (gpt.sectorSize !== spec.sectorSize) {
    throw new CosaError(
      'COSA_IMAGE_FAILED',
      `${spec.key} needs a base disk with ${spec.sectorSize}-byte sectors; ${options.baseRaw} has ${gpt.sectorSize}-byte sectors`,
      spec.needsOwnDisk ? { hint: `write a disk with ${spec.needsOwnDisk.sectorSize}-byte logical sectors and no BIOS boot partition for ${spec.key}` } : {},
    );
  }
  await mkdir(options.tmpDir, { recursive: true });
  await mkdir(options.output, { recursive: true });
  const work = await mkdtemp(join(options.tmpDir, `platform-${spec.key}-`));
  try {
    const disk = join(work, 'disk.raw');
    await withPhase(onProgress, phaseName(spec.key, 'copy'), () =>
      run(['cp', '--reflink=auto', '--sparse=always', options.baseRaw, disk], { signal, onProgress, streamLines: false }),
    );
    await withPhase(onProgress, phaseName(spec.key, 'set-platform'), () =>
      setPlatform({
        rawDisk: disk,
        platform: spec.ignitionId,
        kargs: spec.kernelArguments,
        grubCommands: spec.grubCommands,
        arch: options.arch,
        platformsConfig: options.platformsConfig,
        tmpDir: work,
        signal,
        onProgress,
      }),
    );
    let size = (await stat(disk)).size;
    let target = Math.max(size, options.virtualSize ?? 0);
    if (spec.roundUpToMiB) target = Math.ceil(target / MiB) * MiB;
    if (target !== size) {
      await truncate(disk, target);
      size = target;
    }

    let produced: string;
    let format: string = spec.format;
    let virtualSize = size;
    if (spec.format === 'raw') {
      produced = disk;
    } else {
      const ext = spec.format === 'vpc' ? 'vhd' : spec.format;
      produced = join(work, `disk.${ext}`);
      const info = await withPhase(onProgress, phaseName(spec.key, 'convert'), () =>
        convertDisk({ input: disk, output: produced, format: spec.format, options: spec.convertOptions, compress: spec.compressClusters, signal, onProgress }),
      );
      format = info.format;
      virtualSize = info.virtualSize;
      await rm(disk, { force: true });
    }

    if (spec.packaging === 'gcp-tar') {
      const tarball = join(work, 'image.tar.gz');
      // GCE requires the raw disk named disk.raw in an oldgnu tar; -S keeps it sparse.
      await withPhase(onProgress, phaseName(spec.key, 'package'), () =>
        run(['tar', '--owner=0', '--group=0', '--numeric-owner', '--format=oldgnu', '-S', '-czf', tarball, '-C', work, 'disk.raw'], {
          signal,
          onProgress,
          streamLines: false,
        }),
      );
      produced = tarball;
    } else if (spec.packaging === 'ova') {
      const ova = join(work, 'image.ova');
      const cfg = options.imageConfig ?? {};
      const summary = options.summary ?? options.name;
      await withPhase(onProgress, phaseName(spec.key, 'package'), () =>
        writeOva({
          flavor: spec.ova ?? 'vmware',
          vmdk: produced,
          output: ova,
          name: `${options.name}-${options.buildId}`,
          product: `${options.name} ${summary}`,
          vendor: options.name,
          version: options.buildId,
          diskCapacity: virtualSize,
          hwVersion: cfg['vmware-hw-version'] ?? 13,
          osType: cfg['vmware-os-type'] ?? 'rhel7_64Guest',
          secureBoot: cfg['vmware-secure-boot'] ?? true,
          signal,
          onProgress,
        }),
      );
      produced = ova;
    }

    const dest = join(options.output, fileName);
    const { sha256, size: fileSize } = await withPhase(onProgress, phaseName(spec.key, 'finalize'), () => moveHashed(produced, dest, { signal, onProgress }));
    return {
      platform: spec.key,
      path: dest,
      sha256,
      size: fileSize,
      ...(spec.skipCompression ? { skipCompression: true } : {}),
      format,
      virtualSize,
      meta: { path: fileName, sha256, size: fileSize, ...(spec.skipCompression ? { 'skip-compression': true as const } : {}) },
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Options of {@link derivePlatformImages}. */
export interface DerivePlatformImagesOptions extends Omit<DerivePlatformImageOptions, 'platform' | 'baseRaw'> {
  /** The platforms to build. */
  platforms: readonly string[];
  /** The base disk (512-byte sectors). */
  baseRaw: string;
  /** The 4096-byte-sector base disk, needed when `platforms` has metal4k. */
  baseRaw4k?: string | undefined;
  /** How many to build at once (default 2). */
  concurrency?: number | undefined;
}

/**
 * Derives several platform images from one base disk concurrently (at most `concurrency` at a
 * time). All platform names are checked first; the first failure cancels the others and is thrown.
 */
export async function derivePlatformImages(options: DerivePlatformImagesOptions): Promise<PlatformImage[]> {
  const { platforms, concurrency, baseRaw4k, ...rest } = options;
  const specs = platforms.map((p) => resolvePlatform(p, { arch: options.arch, platformsConfig: options.platformsConfig }));
  for (const s of specs) {
    if (s.needsOwnDisk && !baseRaw4k) {
      throw new CosaError('COSA_IMAGE_FAILED', `${s.key} needs its own base disk with ${s.needsOwnDisk.sectorSize}-byte sectors (baseRaw4k)`);
    }
  }
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const limit = pLimit(Math.max(1, concurrency ?? 2));
  let firstError: unknown;
  try {
    const results = await Promise.allSettled(
      specs.map((s) =>
        limit(async () => {
          inner.signal.throwIfAborted();
          return derivePlatformImage({ ...rest, platform: s.key, baseRaw: s.needsOwnDisk ? (baseRaw4k as string) : options.baseRaw, signal: inner.signal }).catch((e: unknown) => {
            firstError ??= e;
            inner.abort(e);
            throw e;
          });
        }),
      ),
    );
    if (firstError !== undefined) throw firstError;
    return results.map((r) => (r as PromiseFulfilledResult<PlatformImage>).value);
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
  }
}
