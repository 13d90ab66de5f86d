/**
 * `cosa compress` / `cosa decompress`: compress a build's artifacts in place (multi-threaded xz,
 * gzip or zstd), recording `uncompressed-sha256`/`uncompressed-size`, and back. meta.json is
 * written after every artifact, so an interrupted run resumes where it stopped.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@cosa/ostree/internal';
import {
  CosaError,
  hashFile,
  parseMetaJson,
  serializeMetaJson,
  validateMetaJson,
  withLock,
  withPhase,
  writeFileAtomic,
  type Artifact,
  type MetaJson,
  type OnProgress,
} from '@cosa/schema';
import { readRegularFile } from '@cosa/schema/internal';

/** The compressors `cosa compress` can use. */
export type Compressor = 'xz' | 'gzip' | 'zstd';

const SUFFIX: Record<Compressor, string> = { xz: '.xz', gzip: '.gz', zstd: '.zst' };

/** The file name suffix each compressor adds. */
export const COMPRESSOR_SUFFIXES: Readonly<Record<Compressor, string>> = Object.freeze({ ...SUFFIX });

function compressArgv(c: Compressor, fast: boolean, file: string): string[] {
  // -k: keep the input (a hard link to the artifact); -f: it has two links, and overwrite leftovers.
  switch (c) {
    case 'xz':
      return ['xz', '-T0', fast ? '-1' : '-9', '-k', '-f', file];
    case 'gzip':
      return ['gzip', fast ? '-1' : '-6', '-k', '-f', '-n', file];
    case 'zstd':
      return ['zstd', '-q', '-T0', fast ? '-1' : '-10', '-k', '-f', file];
  }
}

function decompressArgv(c: Compressor, file: string): string[] {
  switch (c) {
    case 'xz':
      return ['xz', '-d', '-T0', '-k', '-f', file];
    case 'gzip':
      return ['gzip', '-d', '-k', '-f', file];
    case 'zstd':
      return ['zstd', '-q', '-d', '-k', '-f', file];
  }
}

function compressorOf(path: string): Compressor | undefined {
  for (const [c, s] of Object.entries(SUFFIX) as [Compressor, string][]) if (path.endsWith(s)) return c;
  return undefined;
}

/** One artifact handled (or left alone) by {@link compressBuild} / {@link decompressBuild}. */
export interface CompressedArtifact {
  arch: string;
  /** The meta.json images key, e.g. `qemu`. */
  artifact: string;
  /** File name before and after. */
  from: string;
  to: string;
  /** Size before and after, bytes. */
  fromSize: number;
  toSize: number;
  durationMs: number;
}

/** The outcome of {@link compressBuild} / {@link decompressBuild}. */
export interface CompressResult {
  /** Artifacts (de)compressed by this run. */
  done: CompressedArtifact[];
  /** Artifacts left alone, with the reason. */
  skipped: { arch: string; artifact: string; reason: 'skip-compression' | 'already-compressed' | 'not-compressed' | 'not-selected' }[];
}

/** Options shared by {@link compressBuild} and {@link decompressBuild}. */
export interface BuildArtifactsOptions {
  /** The build directory `builds/<id>` (holding one directory per arch). */
  buildDir: string;
  /** Arches to process (default: every arch directory with a meta.json). */
  arches?: readonly string[] | undefined;
  /** Images keys to process (default: all). */
  artifacts?: readonly string[] | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

/** Options of {@link compressBuild}. */
export interface CompressBuildOptions extends BuildArtifactsOptions {
  /** Default `gzip`, as the original when image.yaml names no `compressor`. */
  compressor?: Compressor | undefined;
  /** Fastest level (`-1`) instead of the default (xz `-9`, gzip `-6`, zstd `-10`). */
  fast?: boolean | undefined;
}

async function listArches(buildDir: string, arches: readonly string[] | undefined): Promise<string[]> {
  if (arches) {
    for (const a of arches) {
      if (!a || a.includes('/') || a === '.' || a === '..') throw new CosaError('COSA_PATH_UNSAFE', `invalid arch "${a}"`);
      await stat(join(buildDir, a, 'meta.json')).catch((e: unknown) => {
        throw new CosaError('COSA_BUILD_NOT_FOUND', `no meta.json for arch ${a} in ${buildDir}`, { cause: e });
      });
    }
    return [...arches];
  }
  const out: string[] = [];
  const entries = await readdir(buildDir, { withFileTypes: true }).catch((e: unknown) => {
    throw new CosaError('COSA_BUILD_NOT_FOUND', `build directory ${buildDir} not found`, { cause: e });
  });
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    if (await stat(join(buildDir, e.name, 'meta.json')).then(() => true, () => false)) out.push(e.name);
  }
  return out.sort();
}

async function readMeta(path: string): Promise<MetaJson> {
  return parseMetaJson(await readRegularFile(path), path);
}

/** Read-modify-write of meta.json under its lock; `fn` returns false to leave it unchanged. */
async function updateMeta(path: string, fn: (meta: MetaJson) => boolean): Promise<boolean> {
  return withLock(
    path,
    async () => {
      const meta = await readMeta(path);
      if (!fn(meta)) return false;
      const valid = validateMetaJson(meta, path);
      await writeFileAtomic(path, serializeMetaJson(valid, path));
      return true;
    },
    { what: path },
  );
}

function images(meta: MetaJson): Record<string, Artifact | undefined> {
  return (meta.images ?? {}) as Record<string, Artifact | undefined>;
}

/**
 * Runs `work` for each arch with the arch directory locked against another compress or
 * decompress, after removing scratch directories a killed run left behind.
 */
async function forEachArch(opts: BuildArtifactsOptions, work: (arch: string, archDir: string, scratch: string) => Promise<void>): Promise<void> {
  for (const arch of await listArches(opts.buildDir, opts.arches)) {
    const archDir = join(opts.buildDir, arch);
    await withLock(
      join(archDir, '.compress'),
      async () => {
        for (const e of await readdir(archDir)) if (e.startsWith('.cosa-compress-')) await rm(join(archDir, e), { recursive: true, force: true });
        // Same directory as the artifacts: hard links in, renames out, never a cross-device copy.
        const scratch = join(archDir, `.cosa-compress-${process.pid}-${randomBytes(4).toString('hex')}`);
        await mkdir(scratch);
        try {
          await work(arch, archDir, scratch);
        } finally {
          await rm(scratch, { recursive: true, force: true });
        }
      },
      { what: `compression of ${archDir}` },
    );
  }
}

/**
 * Compresses a build's artifacts in place (§8.4 of the original): for each arch and each
 * `images` entry that is not `skip-compression` and not compressed yet, record
 * `uncompressed-sha256`/`uncompressed-size`, compress (xz multi-threaded), update
 * `path`/`sha256`/`size`, write meta.json, then delete the uncompressed file. Interrupted runs
 * resume: finished artifacts are skipped, leftovers are cleaned up.
 */
export async function compressBuild(options: CompressBuildOptions): Promise<CompressResult> {
  const compressor = options.compressor ?? 'gzip';
  const suffix = SUFFIX[compressor];
  if (!suffix) throw new CosaError('COSA_USAGE', `unknown compressor "${String(compressor)}" (xz, gzip or zstd)`);
  const { signal, onProgress } = options;
  const result: CompressResult = { done: [], skipped: [] };
  await forEachArch(options, async (arch, archDir, scratch) => {
    const metaPath = join(archDir, 'meta.json');
    const meta = await readMeta(metaPath);
    for (const [key, img] of Object.entries(images(meta))) {
      if (!img) continue;
      if (options.artifacts && !options.artifacts.includes(key)) {
        result.skipped.push({ arch, artifact: key, reason: 'not-selected' });
        continue;
      }
      if (img['skip-compression']) {
        result.skipped.push({ arch, artifact: key, reason: 'skip-compression' });
        continue;
      }
      if (img['uncompressed-sha256'] !== undefined || compressorOf(img.path)) {
        // A run killed between the meta.json write and the delete leaves the uncompressed file.
        const c = compressorOf(img.path);
        if (c && img['uncompressed-sha256'] !== undefined) await rm(join(archDir, img.path.slice(0, -SUFFIX[c].length)), { force: true });
        result.skipped.push({ arch, artifact: key, reason: 'already-compressed' });
        continue;
      }
      signal?.throwIfAborted();
      const t0 = performance.now();
      const src = join(archDir, img.path);
      const outName = `${img.path}${suffix}`;
      const done = await withPhase(onProgress, `compress:${arch}/${key}`, async () => {
        const st = await stat(src).catch((e: unknown) => {
          throw new CosaError('COSA_BUILD_NOT_FOUND', `${key} (${arch}): ${img.path} is missing from ${archDir}`, {
            hint: `fetch it first: cosa buildfetch --artifact ${key}`,
            cause: e,
          });
        });
        const srcSize = img.size ?? st.size;
        const staged = join(scratch, img.path);
        await link(src, staged);
        // uncompressed-sha256 records what was compressed: hash the source while it is read
        // (not the sha256 meta.json claims), and refuse a source that does not match meta.json.
        const [srcHash] = await Promise.all([
          hashFile(staged, { name: img.path }), // the compressor's abort is the one reported
          run(compressArgv(compressor, options.fast ?? false, staged), { signal, onProgress, streamLines: false }),
        ]);
        await unlink(staged);
        if (srcHash.sha256 !== img.sha256 || (img.size !== undefined && srcHash.size !== img.size)) {
          await rm(`${staged}${suffix}`, { force: true });
          throw new CosaError(
            'COSA_COMPRESS_CHECKSUM_MISMATCH',
            `${key} (${arch}): ${src} has sha256 ${srcHash.sha256} (${srcHash.size} bytes), meta.json says ${img.sha256} (${img.size ?? '?'} bytes); not compressed`,
            { hint: 'the artifact was modified after the build; rebuild or fetch it again' },
          );
        }
        const { sha256, size } = await hashFile(`${staged}${suffix}`, { signal, onProgress, name: outName });
        await rename(`${staged}${suffix}`, join(archDir, outName));
        const updated = await updateMeta(metaPath, (m) => {
          const cur = images(m)[key];
          // Someone replaced the artifact meanwhile (e.g. buildextend --force): leave theirs.
          if (!cur || cur.path !== img.path || cur.sha256 !== img.sha256) return false;
          Object.assign(cur, { path: outName, sha256, size, 'uncompressed-sha256': img.sha256, 'uncompressed-size': srcSize });
          return true;
        });
        if (!updated) {
          await rm(join(archDir, outName), { force: true });
          throw new CosaError('COSA_BUILD_FAILED', `${key} (${arch}) changed while it was being compressed`, { hint: 'run cosa compress again' });
        }
        await rm(src, { force: true });
        return { arch, artifact: key, from: img.path, to: outName, fromSize: srcSize, toSize: size, durationMs: Math.round(performance.now() - t0) };
      });
      result.done.push(done);
    }
  });
  return result;
}

/**
 * The inverse of {@link compressBuild}: decompresses every compressed artifact (not
 * `skip-compression`), verifies it against `uncompressed-sha256`/`uncompressed-size`, restores
 * `path`/`sha256`/`size`, removes the `uncompressed-*` keys and writes meta.json after each.
 */
export async function decompressBuild(options: BuildArtifactsOptions): Promise<CompressResult> {
  const { signal, onProgress } = options;
  const result: CompressResult = { done: [], skipped: [] };
  await forEachArch(options, async (arch, archDir, scratch) => {
    const metaPath = join(archDir, 'meta.json');
    const meta = await readMeta(metaPath);
    for (const [key, img] of Object.entries(images(meta))) {
      if (!img) continue;
      if (options.artifacts && !options.artifacts.includes(key)) {
        result.skipped.push({ arch, artifact: key, reason: 'not-selected' });
        continue;
      }
      if (img['skip-compression']) {
        result.skipped.push({ arch, artifact: key, reason: 'skip-compression' });
        continue;
      }
      const c = compressorOf(img.path);
      const wantSha = img['uncompressed-sha256'];
      if (!c || wantSha === undefined) {
        // A run killed between the meta.json write and the delete leaves the compressed file.
        for (const s of Object.values(SUFFIX)) await rm(join(archDir, `${img.path}${s}`), { force: true });
        result.skipped.push({ arch, artifact: key, reason: 'not-compressed' });
        continue;
      }
      signal?.throwIfAborted();
      const t0 = performance.now();
      const outName = img.path.slice(0, -SUFFIX[c].length);
      const done = await withPhase(onProgress, `decompress:${arch}/${key}`, async () => {
        const staged = join(scratch, img.path);
        await link(join(archDir, img.path), staged);
        await run(decompressArgv(c, staged), { signal, onProgress, streamLines: false });
        const plain = join(scratch, outName);
        const { sha256, size } = await hashFile(plain, { signal, onProgress, name: outName });
        const wantSize = img['uncompressed-size'];
        if (sha256 !== wantSha || (wantSize !== undefined && size !== wantSize)) {
          throw new CosaError(
            'COSA_COMPRESS_CHECKSUM_MISMATCH',
            `${img.path} (${arch}) decompresses to sha256 ${sha256} (${size} bytes), meta.json says ${wantSha} (${wantSize ?? '?'} bytes)`,
          );
        }
        await rename(plain, join(archDir, outName));
        const updated = await updateMeta(metaPath, (m) => {
          const cur = images(m)[key];
          if (!cur || cur.path !== img.path || cur.sha256 !== img.sha256) return false;
          cur.path = outName;
          cur.sha256 = sha256;
          cur.size = size;
          delete cur['uncompressed-sha256'];
          delete cur['uncompressed-size'];
          return true;
        });
        if (!updated) {
          await rm(join(archDir, outName), { force: true });
          throw new CosaError('COSA_BUILD_FAILED', `${key} (${arch}) changed while it was being decompressed`, { hint: 'run cosa decompress again' });
        }
        await rm(join(archDir, img.path), { force: true });
        return { arch, artifact: key, from: img.path, to: outName, fromSize: img.size ?? 0, toSize: size, durationMs: Math.round(performance.now() - t0) };
      });
      result.done.push(done);
    }
  });
  return result;
}
