/**
 * writeImage: a platform image from a commit. The raw disk from createDisk, converted with
 * qemu-img (qcow2 for `qemu`, raw for `metal`), then hashed streaming.
 */
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CosaError, hashFile, withPhase, type OnProgress } from '@cosa/schema';
import { QEMU_TOOLS, requireHostTools } from './_host-packages.js';
import { convertDisk } from './convert.js';
import { createDisk, type CreateDiskOptions, type ImageResult } from './disk.js';

/** Platforms writeImage writes directly. */
export type ImagePlatform = 'qemu' | 'metal';

/** Options of {@link writeImage}: those of createDisk, with the platform deciding the format. */
export interface WriteImageOptions extends Omit<CreateDiskOptions, 'platform' | 'output'> {
  platform: ImagePlatform;
  /** The image to write (replaced atomically). */
  output: string;
}

/** Options of {@link convertImage}. */
export interface ConvertImageOptions {
  input: string;
  output: string;
  format: 'qcow2' | 'raw';
  /** qcow2 compression (slow: single-threaded zlib). */
  compress?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/**
 * Converts a raw disk with qemu-img (sparse in, sparse out; the format checked afterwards) and
 * returns the result's size and sha256, reporting the hashing as a `transfer`.
 */
export async function convertImage(options: ConvertImageOptions): Promise<ImageResult> {
  await requireHostTools(['qemu-img']);
  const partial = join(dirname(options.output), `.${Date.now()}-${process.pid}.partial.${options.format}`);
  try {
    await convertDisk({ input: options.input, output: partial, format: options.format, compress: options.compress, signal: options.signal, onProgress: options.onProgress });
    const h = await hashFile(partial, { signal: options.signal, onProgress: options.onProgress, name: options.output.split('/').pop() });
    await rename(partial, options.output);
    return { path: options.output, ...h };
  } finally {
    await rm(partial, { force: true });
  }
}

/**
 * Writes the `qemu` (qcow2) or `metal` (raw) image of a commit: createDisk through the executor,
 * then conversion. Resolves with the image's path, size and sha256.
 */
export async function writeImage(options: WriteImageOptions): Promise<ImageResult> {
  if (options.platform !== 'qemu' && options.platform !== 'metal') {
    throw new CosaError('COSA_PLATFORM_UNKNOWN', `unknown image platform: ${String(options.platform)}`, { hint: 'use qemu or metal' });
  }
  await requireHostTools(QEMU_TOOLS.slice(0, 1));
  await mkdir(options.tmpDir, { recursive: true });
  const tmp = await mkdtemp(join(options.tmpDir, 'image-'));
  try {
    if (options.platform === 'metal') {
      return await createDisk({ ...options, output: options.output });
    }
    const raw = await createDisk({ ...options, hash: false, output: join(tmp, 'disk.raw'), imgid: options.imgid ?? options.output.split('/').pop() ?? '' });
    return await withPhase(options.onProgress, 'convert-qcow2', () =>
      convertImage({ input: raw.path, output: options.output, format: 'qcow2', ...(options.signal ? { signal: options.signal } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) }),
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** @deprecated Renamed {@link WriteImageOptions}. */
export type BuildImageOptions = WriteImageOptions;

/**
 * @deprecated Renamed {@link writeImage} (the low-level writer). Scripts want `buildImage()` from
 * `@cosa/core`, which takes a workdir and a build.
 */
export const buildImage: (options: WriteImageOptions) => Promise<ImageResult> = writeImage;
