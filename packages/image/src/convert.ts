/**
 * Disk format conversion with `qemu-img` (the streamed sha256 is `hashFile` in @cosa/schema).
 */
import { CosaError, type OnProgress } from '@cosa/schema';
import { run } from '@cosa/ostree/internal';
import type { DiskFormat } from './platforms.js';

/** What `qemu-img info --output=json` says about an image. */
export interface DiskImageInfo {
  /** Detected format (`raw`, `qcow2`, `vmdk`, `vpc`, `vhdx`, ...). */
  format: string;
  /** Size of the disk as the guest sees it, in bytes. */
  virtualSize: number;
  /** Bytes allocated on the host. */
  actualSize: number;
  /** The whole JSON document. */
  raw: Record<string, unknown>;
}

/** Runs `qemu-img info --output=json` on `path`. */
export async function diskImageInfo(path: string, options: { signal?: AbortSignal | undefined; format?: string | undefined } = {}): Promise<DiskImageInfo> {
  const r = await run(['qemu-img', 'info', '--output=json', ...(options.format ? ['-f', options.format] : []), path], { signal: options.signal });
  const j = JSON.parse(r.stdout) as Record<string, unknown>;
  return { format: String(j['format']), virtualSize: Number(j['virtual-size']), actualSize: Number(j['actual-size'] ?? 0), raw: j };
}

/** Options of {@link convertDisk}. */
export interface ConvertDiskOptions {
  /** Source image. */
  input: string;
  /** Format of the source (default `raw`). */
  inputFormat?: DiskFormat | undefined;
  /** Destination file (overwritten). */
  output: string;
  /** Destination format. */
  format: DiskFormat;
  /** `-o` options, e.g. `['subformat=fixed', 'force_size']`. */
  options?: readonly string[] | undefined;
  /** `-c`: write compressed clusters (qcow2). */
  compress?: boolean | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

/**
 * Converts a disk image with `qemu-img convert` and checks that the result has the expected
 * format (as the original did after each conversion).
 */
export async function convertDisk(options: ConvertDiskOptions): Promise<DiskImageInfo> {
  const argv = ['qemu-img', 'convert', '-f', options.inputFormat ?? 'raw', '-O', options.format];
  if (options.compress) argv.push('-c');
  if (options.options && options.options.length > 0) argv.push('-o', options.options.join(','));
  argv.push(options.input, options.output);
  await run(argv, { signal: options.signal, onProgress: options.onProgress, streamLines: false });
  // A fixed VHD has only a footer, so qemu-img probes it as raw: name the format when reading it back.
  const info = await diskImageInfo(options.output, { signal: options.signal, format: options.format === 'vpc' ? 'vpc' : undefined });
  if (info.format !== options.format) {
    throw new CosaError('COSA_IMAGE_FAILED', `${options.output}: expected format ${options.format}, qemu-img reports ${info.format}`);
  }
  return info;
}
