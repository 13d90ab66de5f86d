import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdir, readdir, rename, rm, rmdir, symlink } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { run } from '@cosa/ostree/internal';
import { CosaError, stableStringify, writeFileAtomic, type OnProgress } from '@cosa/schema';
import { Workdir, CONFIG_VARIANT_KEY } from './workdir.js';
import { isDirectory, isFile, pathExists } from './_paths.js';
import { redactCommandError, redactGitUrl } from './_git-url.js';

/** Options of {@link initWorkdir}. */
export interface InitWorkdirOptions {
  /** The directory to turn into a workdir (created when missing). */
  dir: string;
  /**
   * The config: an absolute path becomes a symlink `src/config`; anything else is cloned with
   * `git clone --depth 1` (a relative path to an existing local directory is linked too).
   */
  config: string;
  /** Allow a non-empty `dir`. */
  force?: boolean;
  /** Branch to clone. */
  branch?: string;
  /** Commit to check out after cloning. */
  commit?: string;
  /** Config variant: requires `manifest-<V>.yaml`, recorded in `src/config.json`. */
  variant?: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/**
 * Creates a workdir: `src/config` (symlink or shallow clone), then `builds/ cache/ tmp/
 * overrides/rpm overrides/rootfs`, and `src/config.json` for a variant. Fails with
 * `COSA_WORKDIR_NOT_EMPTY` when `dir` is not empty (unless `force`), and with
 * `COSA_CONFIG_MISSING` when the config lacks `manifest.yaml` (`manifest-<V>.yaml`) or
 * `image.yaml`; on failure everything it created is removed again.
 */
export async function initWorkdir(options: InitWorkdirOptions): Promise<Workdir> {
  const dir = resolve(options.dir);
  const { variant } = options;
  if (variant !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(variant)) {
    throw new CosaError('COSA_CONFIG_VARIANT', `invalid variant ${JSON.stringify(variant)}`);
  }
  if (options.commit !== undefined && isLocalConfig(options.config)) {
    throw new CosaError('COSA_USAGE', '--commit needs a git URL, not a local directory');
  }
  // A value starting with `-` would reach git as an option (`--upload-pack=…` runs a command).
  if (options.commit !== undefined && !/^[0-9a-f]{4,64}$/i.test(options.commit)) {
    throw new CosaError('COSA_USAGE', `--commit must be a hexadecimal commit id, got ${JSON.stringify(options.commit)}`);
  }
  if (options.branch !== undefined && (options.branch.startsWith('-') || options.branch === '')) {
    throw new CosaError('COSA_USAGE', `invalid branch ${JSON.stringify(options.branch)}`);
  }
  const dirExisted = await pathExists(dir);
  if (dirExisted) {
    if (!(await isDirectory(dir))) throw new CosaError('COSA_WORKDIR_NOT_EMPTY', `${dir} exists and is not a directory`);
    if (!options.force && (await readdir(dir)).length > 0) {
      throw new CosaError('COSA_WORKDIR_NOT_EMPTY', `${dir} is not empty`, { hint: 'use an empty directory, or pass --force' });
    }
  }
  const configDir = join(dir, 'src', 'config');
  if (await pathExists(configDir)) throw new CosaError('COSA_WORKDIR_NOT_EMPTY', `${configDir} already exists`);

  // Everything created is recorded so a failure leaves the directory as it was.
  const created: string[] = [];
  const mk = async (p: string): Promise<void> => {
    if (await pathExists(p)) return;
    await mkdir(p);
    created.push(p);
  };
  try {
    if (!dirExisted) {
      await mkdir(dir, { recursive: true });
      created.push(dir);
    }
    await mk(join(dir, 'src'));
    if (isLocalConfig(options.config)) {
      const target = resolve(options.config);
      await checkConfig(target, variant);
      await symlink(target, configDir);
      created.push(configDir);
    } else {
      const staging = join(dir, 'src', `.config.tmp-${randomBytes(4).toString('hex')}`);
      created.push(staging);
      await cloneConfig(options.config, staging, options);
      await checkConfig(staging, variant);
      await rename(staging, configDir);
      created[created.length - 1] = configDir;
    }
    for (const sub of ['builds', 'cache', 'tmp', 'overrides', join('overrides', 'rpm'), join('overrides', 'rootfs')]) {
      await mk(join(dir, sub));
    }
    if (variant !== undefined) {
      const file = join(dir, 'src', 'config.json');
      await writeFileAtomic(file, stableStringify({ [CONFIG_VARIANT_KEY]: variant }));
      created.push(file);
    }
  } catch (e) {
    for (const p of created.reverse()) {
      if (p === dir) await rmdir(dir).catch(() => {});
      else await rm(p, { recursive: true, force: true }).catch(() => {});
    }
    throw e;
  }
  return Workdir.open(dir);
}

function isLocalConfig(config: string): boolean {
  if (isAbsolute(config)) return true;
  // Not a URL or scp-like git address: treated as a local path when it is one.
  return !/^[a-z][a-z0-9+.-]*:\/\//i.test(config) && !/^[^/]+@[^/]+:/.test(config) && config.length > 0 && !config.includes('::') && localDirSync(config);
}

function localDirSync(p: string): boolean {
  try {
    return statSync(resolve(p)).isDirectory();
  } catch {
    return false;
  }
}

async function cloneConfig(url: string, dest: string, o: InitWorkdirOptions): Promise<void> {
  // Credentials in the URL never reach a log line or an error (git keeps them in .git/config).
  const common = { signal: o.signal, onProgress: o.onProgress, phase: 'init' as const, redact: url === redactGitUrl(url) ? [] : [url] };
  const git = (args: string[]) => run(['git', ...args], common).catch((e: unknown) => {
    throw redactCommandError(e);
  });
  await git(['clone', '--depth=1', '--recurse-submodules', ...(o.branch ? ['--branch', o.branch] : []), '--', url, dest]);
  if (o.commit !== undefined) {
    // A shallow clone rarely holds the wanted commit: fetch exactly it, else the whole history.
    try {
      await git(['-C', dest, 'fetch', '--depth=1', '--end-of-options', 'origin', o.commit]);
    } catch {
      await git(['-C', dest, 'fetch', '--unshallow', 'origin']);
    }
    await git(['-C', dest, 'reset', '--hard', o.commit]);
    await git(['-C', dest, 'submodule', 'update', '--init', '--recursive']);
  }
}

/** Checks that the config has the files a build needs (by name only; parsing happens at build time). */
async function checkConfig(configDir: string, variant: string | undefined): Promise<void> {
  if (!(await isDirectory(configDir))) throw new CosaError('COSA_CONFIG_MISSING', `config ${configDir} is not a directory`);
  const manifest = variant === undefined ? 'manifest.yaml' : `manifest-${variant}.yaml`;
  const missing: string[] = [];
  if (!(await isFile(join(configDir, manifest)))) missing.push(manifest);
  const image = variant !== undefined && (await isFile(join(configDir, `image-${variant}.yaml`))) ? `image-${variant}.yaml` : 'image.yaml';
  if (!(await isFile(join(configDir, image)))) missing.push(image);
  if (missing.length > 0) {
    throw new CosaError(variant !== undefined && missing.includes(manifest) ? 'COSA_CONFIG_VARIANT' : 'COSA_CONFIG_MISSING', `config ${configDir} has no ${missing.join(' and ')}`);
  }
}
