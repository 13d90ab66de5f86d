import { access, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CosaError, SchemaError } from './errors.js';
import { isNotFound, isPlainObject } from './_config-io.js';
import { parseJsonText, stableStringify } from './json.js';
import { writeFileAtomic } from './fs.js';
import type { ImageConfig } from './image-config.js';
import { loadImageConfig } from './image-yaml.js';
import { loadLockfiles, type LockedPackage } from './lockfile.js';
import type { Manifest } from './manifest.js';
import { loadPlatforms, type PlatformConfig } from './platforms.js';
import { flattenTreefile, type TreefileVariables } from './treefile.js';

/** The key of `src/config.json` that records the variant chosen at `cosa init --variant`. */
export const VARIANT_KEY = 'coreos-assembler.config-variant';

/** The base architecture of this machine, in rpm's spelling (`x86_64`, `aarch64`, …). */
export function hostBasearch(): string {
  switch (process.arch) {
    case 'x64': return 'x86_64';
    case 'arm64': return 'aarch64';
    case 'ppc64': return 'ppc64le';
    case 's390x': return 's390x';
    case 'riscv64': return 'riscv64';
    default: return process.arch;
  }
}

/**
 * The variant recorded in `<workdir>/src/config.json` (`{"coreos-assembler.config-variant": V}`),
 * or undefined when there is no such file or key.
 *
 * @throws SchemaError when the file is not JSON or the value is not a string.
 */
export async function readVariant(workdir: string): Promise<string | undefined> {
  const file = join(workdir, 'src', 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  const data = parseJsonText(text, file);
  if (!isPlainObject(data)) throw new SchemaError(file, [{ path: '', message: 'expected a JSON object' }]);
  const v = data[VARIANT_KEY];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw new SchemaError(file, [{ path: VARIANT_KEY, message: 'expected a non-empty string' }]);
  return v;
}

/** Records `variant` in `<workdir>/src/config.json` (atomic write), as `cosa init --variant` does. */
export async function writeVariant(workdir: string, variant: string): Promise<void> {
  await writeFileAtomic(join(workdir, 'src', 'config.json'), stableStringify({ [VARIANT_KEY]: variant }));
}

/** The variants a config dir offers: `V` for every `manifest-V.yaml` (lockfiles excluded), sorted. */
export async function listVariants(configDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(configDir);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  return names
    .map((n) => /^manifest-(.+)\.yaml$/.exec(n)?.[1])
    .filter((v): v is string => v !== undefined && !v.startsWith('lock.'))
    .sort();
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions {
  /** The config directory (`<workdir>/src/config`). */
  configDir: string;
  /** Variant (`manifest-V.yaml` + `image-V.yaml`); default: `manifest.yaml` + `image.yaml`. */
  variant?: string;
  /** Base architecture. */
  arch: string;
  /** Variable overrides for the treefile (see {@link flattenTreefile}). */
  variables?: TreefileVariables;
  /** Unknown treefile keys are an error. */
  strict?: boolean;
}

/** Everything a build reads from the config repo, loaded and typed. */
export interface LoadedConfig {
  /** The flattened treefile. */
  manifest: Manifest;
  /** The top-level treefile used (`manifest.yaml` or `manifest-V.yaml`). */
  manifestFile: string;
  /** Unknown treefile keys (kept in `manifest`). */
  unknownKeys: string[];
  /** Files the treefile refers to (add-files, postprocess-script, passwd/group). */
  manifestExternals: string[];
  /** image.yaml merged over the defaults. */
  imageConfig: ImageConfig;
  /** The top-level image config used (`image.yaml` or `image-V.yaml`). */
  imageConfigFile: string;
  /** `imageConfig` as stable JSON (the bytes of tmp/image.json). */
  imageConfigRendered: string;
  /** sha256 of `imageConfigRendered` (`coreos-assembler.image-config-checksum`). */
  imageConfigChecksum: string;
  /** platforms.yaml for `arch`, when the config has one. */
  platforms?: Record<string, PlatformConfig>;
  /** The merged lockfiles, when the config has any. */
  lockfile?: { packages: Record<string, LockedPackage>; files: string[] };
  /** Every file read: treefiles, image configs, platforms.yaml, lockfiles (absolute paths). */
  files: string[];
  /** The files that make the commit: treefiles, their externals, lockfiles (for the input hash). */
  manifestFiles: string[];
  /** The files that make the images: image configs and platforms.yaml. */
  imageFiles: string[];
  /** The variant used, if any. */
  variant?: string;
}

/**
 * Loads a config dir as a build uses it: the flattened treefile, image.yaml (with includes and
 * defaults), platforms.yaml and the lockfiles of `arch`. With a variant, `manifest-V.yaml` and
 * `image-V.yaml` replace `manifest.yaml` and `image.yaml` (both must exist, as the original).
 *
 * @throws CosaError `COSA_CONFIG_VARIANT` (unknown variant; the message lists the known ones),
 *   `COSA_CONFIG_MISSING` (no manifest or image config), and every error of
 *   {@link flattenTreefile}, {@link loadImageConfig}, {@link loadPlatforms}, loadLockfiles.
 */
export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const configDir = resolve(options.configDir);
  const { variant, arch } = options;
  let manifestFile = join(configDir, 'manifest.yaml');
  let imageFile = join(configDir, 'image.yaml');
  if (variant !== undefined) {
    const known = await listVariants(configDir);
    if (!known.includes(variant)) {
      throw new CosaError(
        'COSA_CONFIG_VARIANT',
        `unknown variant "${variant}" in ${configDir}; known variants: ${known.length > 0 ? known.join(', ') : '(none)'}`,
        { hint: known.length > 0 ? `use one of: ${known.join(', ')}` : 'this config has no manifest-<variant>.yaml files' },
      );
    }
    manifestFile = join(configDir, `manifest-${variant}.yaml`);
    imageFile = join(configDir, `image-${variant}.yaml`);
  }
  if (!(await exists(manifestFile))) {
    throw new CosaError('COSA_CONFIG_MISSING', `no ${manifestFile.slice(configDir.length + 1)} in ${configDir}`, {
      hint: 'is this a cosa config repo? (cosa init CONFIG)',
    });
  }
  if (!(await exists(imageFile))) {
    throw new CosaError('COSA_CONFIG_MISSING', `no ${imageFile.slice(configDir.length + 1)} in ${configDir}`);
  }

  const tf = await flattenTreefile({
    file: manifestFile,
    arch,
    ...(options.variables ? { variables: options.variables } : {}),
    ...(options.strict !== undefined ? { strict: options.strict } : {}),
  });
  const image = await loadImageConfig({ file: imageFile });
  const files = [...tf.files, ...image.files];

  const platformsFile = join(configDir, 'platforms.yaml');
  let platforms: Record<string, PlatformConfig> | undefined;
  if (await exists(platformsFile)) {
    platforms = await loadPlatforms({ file: platformsFile, arch });
    files.push(platformsFile);
  }
  const locks = await loadLockfiles({ configDir, arch });
  files.push(...locks.files);

  return {
    manifest: tf.manifest,
    manifestFile,
    unknownKeys: tf.unknownKeys,
    manifestExternals: tf.externals,
    imageConfig: image.config,
    imageConfigFile: imageFile,
    imageConfigRendered: image.rendered,
    imageConfigChecksum: image.checksum,
    ...(platforms ? { platforms } : {}),
    ...(locks.files.length > 0 ? { lockfile: locks } : {}),
    files,
    manifestFiles: [...tf.files, ...tf.externals, ...locks.files],
    imageFiles: [...image.files, ...(platforms ? [platformsFile] : [])],
    ...(variant !== undefined ? { variant } : {}),
  };
}

/** Options for {@link loadWorkdirConfig}. */
export interface LoadWorkdirConfigOptions {
  /** The cosa workdir (holding `src/config` and, after `init --variant`, `src/config.json`). */
  workdir: string;
  /** Base architecture (default: this machine's, see {@link hostBasearch}). */
  arch?: string;
  /** Unknown treefile keys are an error. */
  strict?: boolean;
}

/**
 * {@link loadConfig} for a workdir: `src/config` with the variant recorded in `src/config.json`.
 *
 * @throws CosaError `COSA_CONFIG_MISSING` when the workdir has no `src/config`, and every error of
 *   {@link loadConfig} and {@link readVariant}.
 */
export async function loadWorkdirConfig(options: LoadWorkdirConfigOptions): Promise<LoadedConfig> {
  const configDir = join(resolve(options.workdir), 'src', 'config');
  if (!(await exists(configDir))) {
    throw new CosaError('COSA_CONFIG_MISSING', `${resolve(options.workdir)} has no src/config`, {
      hint: 'run this in a cosa workdir (cosa init CONFIG)',
    });
  }
  const variant = await readVariant(options.workdir);
  return loadConfig({
    configDir,
    arch: options.arch ?? hostBasearch(),
    ...(variant !== undefined ? { variant } : {}),
    ...(options.strict !== undefined ? { strict: options.strict } : {}),
  });
}
