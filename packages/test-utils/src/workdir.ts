import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stableStringify } from '@cosa/schema';
import { makeTempDir } from '@cosa/schema/internal';

/** A temporary workdir; `cleanup()` (or `await using`) removes it. */
export interface TempWorkdir extends AsyncDisposable {
  /** The workdir. */
  dir: string;
  /** Its `src/config` (a real directory with a tiny manifest.yaml and image.yaml). */
  configDir: string;
  cleanup(): Promise<void>;
}

/** The tiny config `tempWorkdir()` writes: file name → content. */
export const TINY_CONFIG: Record<string, string> = {
  'manifest.yaml': 'ref: test/x86_64/tiny\npackages:\n  - bash\n',
  'image.yaml': 'size: 2\n',
};

/**
 * Creates a workdir layout in a new temp dir (`src/config` with a tiny config, `builds/`,
 * `cache/`, `tmp/`, `overrides/{rpm,rootfs}`) without going through `cosa init`.
 */
export async function tempWorkdir(options: { prefix?: string } = {}): Promise<TempWorkdir> {
  const dir = await makeTempDir(options.prefix ?? 'cosa-wd-');
  const configDir = join(dir, 'src', 'config');
  await mkdir(configDir, { recursive: true });
  for (const [name, text] of Object.entries(TINY_CONFIG)) await writeFile(join(configDir, name), text);
  for (const d of ['builds', 'cache', 'tmp', 'overrides/rpm', 'overrides/rootfs']) await mkdir(join(dir, d), { recursive: true });
  const cleanup = () => rm(dir, { recursive: true, force: true });
  return { dir, configDir, cleanup, [Symbol.asyncDispose]: cleanup };
}

/** A temp directory that `cleanup()` (or `await using`) removes. */
export async function tempDir(prefix = 'cosa-test-'): Promise<{ dir: string; cleanup(): Promise<void> } & AsyncDisposable> {
  const dir = await makeTempDir(prefix);
  const cleanup = () => rm(dir, { recursive: true, force: true });
  return { dir, cleanup, [Symbol.asyncDispose]: cleanup };
}

/** Options of {@link fakeMeta}. */
export interface FakeMetaOptions {
  arch?: string;
  /** `coreos-assembler.build-timestamp` (default: a fixed time). */
  timestamp?: string;
  name?: string;
  /** Extra top-level keys. */
  extra?: Record<string, unknown>;
}

/**
 * A valid meta.json for build `id` with a fake 64-hex commit and an `ostree` artifact, for tests
 * that need builds without building.
 */
export function fakeMeta(id: string, options: FakeMetaOptions = {}): Record<string, unknown> {
  const hex = (seed: string) => Array.from({ length: 64 }, (_, i) => '0123456789abcdef'[(seed.charCodeAt(i % seed.length) + i) % 16]).join('');
  const arch = options.arch ?? 'x86_64';
  const name = options.name ?? 'tiny';
  const ts = options.timestamp ?? '2026-01-01T00:00:00Z';
  return {
    buildid: id,
    name,
    'ostree-commit': hex(id),
    'ostree-timestamp': ts,
    'ostree-version': id,
    'coreos-assembler.basearch': arch,
    'coreos-assembler.build-timestamp': ts,
    images: {
      ostree: { path: `${name}-${id}-ostree.${arch}.tar`, sha256: hex(`${id}-tar`), size: 1024, 'skip-compression': true },
    },
    ...options.extra,
  };
}

/** Writes `builds/<id>/<arch>/meta.json` of a {@link fakeMeta} build directly (builds.json is not touched). */
export async function writeFakeBuild(workdir: string, id: string, options: FakeMetaOptions = {}): Promise<Record<string, unknown>> {
  const meta = fakeMeta(id, options);
  const dir = join(workdir, 'builds', id, options.arch ?? 'x86_64');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'meta.json'), stableStringify(meta));
  return meta;
}
