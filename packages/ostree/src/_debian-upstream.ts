/**
 * The pieces the Debian composer takes from composer.ts / repo.ts / postprocess.ts, which are
 * written in parallel on another branch. Until those land, this file holds the agreed shapes and
 * stand-in implementations; on merge, replace its body with re-exports from those modules (every
 * call site of the Debian composer goes through this one file).
 */
import { chmod, copyFile, mkdir, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CommandFailedError, CosaError, type Manifest, type OnProgress } from '@cosa/schema';
import { run } from './_exec.js';

/** A package in a composed tree. */
export interface PackageInfo {
  name: string;
  epoch?: string;
  version: string;
  release?: string;
  arch: string;
  checksum?: string;
  source?: string;
}

/** What every composer takes. */
export interface ComposeOptions {
  manifest: Manifest;
  /** The config directory (src/config): relative paths in the manifest are resolved here. */
  configDir: string;
  /** Files (relative to configDir) the manifest refers to; part of the input hash. */
  files: string[];
  /** The workdir's cache/ directory (packages, metadata, cached trees). */
  cacheDir: string;
  /** The workdir's tmp/ directory (scratch trees are made and removed here). */
  tmpDir: string;
  /** A bare-user OSTree repo the commit is written to. */
  repo: string;
  /** Base architecture (`x86_64`). */
  arch: string;
  /** Commit metadata `version`. */
  version: string;
  /** The ref to commit to. */
  ref: string;
  parentCommit?: string;
  /** overrides/rootfs: overlaid on the tree before commit. */
  overridesRootfs?: string;
  /** Use only cached metadata and packages. */
  offline?: boolean;
  strict?: boolean;
  lockfile?: unknown;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** {@link Composer.inputHash}'s answer. */
export interface InputHashResult {
  inputHash: string;
  packages: PackageInfo[];
}

/** {@link Composer.compose}'s answer. */
export interface ComposeResult {
  commit: string;
  ref: string;
  version: string;
  inputHash: string;
  packages: PackageInfo[];
  /** False when the tree equals the ref's current commit and no commit was written. */
  changed: boolean;
  /** Milliseconds per phase (and other counters). */
  stats: Record<string, number>;
}

/** A manifest → OSTree commit backend. */
export interface Composer {
  readonly name: 'rpm-ostree' | 'dnf' | 'debian';
  version(): Promise<string>;
  inputHash(o: ComposeOptions): Promise<InputHashResult>;
  compose(o: ComposeOptions): Promise<ComposeResult>;
  fetch(o: ComposeOptions): Promise<void>;
}

/** Options of {@link commitTree}. */
export interface CommitTreeOptions {
  repo: string;
  branch: string;
  tree: string;
  subject?: string;
  metadata?: Record<string, string>;
  skipIfUnchanged?: boolean;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

async function revParse(repo: string, ref: string): Promise<string | undefined> {
  const r = await run(['ostree', `--repo=${repo}`, 'rev-parse', ref], { okExitCodes: [0, 1] });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

/** Stand-in for repo.ts `commit()`: commits `tree` to `branch` of a bare-user repo (created if missing). */
export async function commitTree(o: CommitTreeOptions): Promise<{ commit: string; changed: boolean }> {
  const exists = await stat(join(o.repo, 'config')).catch(() => undefined);
  if (!exists) {
    await mkdir(o.repo, { recursive: true });
    await run(['ostree', `--repo=${o.repo}`, 'init', '--mode=bare-user']);
  }
  const before = await revParse(o.repo, o.branch);
  const argv = ['ostree', `--repo=${o.repo}`, 'commit', `--branch=${o.branch}`, `--tree=dir=${o.tree}`, '--no-xattrs', '--fsync=false'];
  if (o.subject) argv.push(`--subject=${o.subject}`);
  for (const [k, v] of Object.entries(o.metadata ?? {})) argv.push(`--add-metadata-string=${k}=${v}`);
  if (o.skipIfUnchanged) argv.push('--skip-if-unchanged');
  let out: string;
  try {
    out = (await run(argv, { signal: o.signal, onProgress: o.onProgress, phase: 'commit', timeoutMs: 30 * 60_000 })).stdout.trim();
  } catch (e) {
    if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
      throw new CosaError('COSA_OSTREE_FAILED', `ostree commit to ${o.branch} failed: ${e.stderr.trim().split('\n').slice(-5).join('\n')}`, { cause: e });
    }
    throw e;
  }
  const commit = out.split('\n').pop() ?? '';
  return { commit, changed: commit !== before };
}

/**
 * Stand-in for postprocess.ts `prepareOstreeTree()`: the generic OSTree layout rpm-ostree applies
 * to any tree: /etc → /usr/etc, /var kept as a factory copy recreated by tmpfiles.d, the
 * var-based symlinks, /sysroot and /ostree.
 */
export async function prepareOstreeTree(o: { tree: string }): Promise<void> {
  const t = o.tree;
  await rename(join(t, 'etc'), join(t, 'usr/etc'));
  await mkdir(join(t, 'usr/share/factory'), { recursive: true });
  await rm(join(t, 'usr/share/factory/var'), { recursive: true, force: true });
  await rename(join(t, 'var'), join(t, 'usr/share/factory/var'));
  await mkdir(join(t, 'var'));
  await mkdir(join(t, 'usr/lib/tmpfiles.d'), { recursive: true });
  await writeFile(
    join(t, 'usr/lib/tmpfiles.d/cosa-ostree-var.conf'),
    [
      '# cosa: the per-deployment /var layout (the tree ships /var empty)',
      'd /var/home 0755 root root -',
      'd /var/roothome 0700 root root -',
      'd /var/opt 0755 root root -',
      'd /var/srv 0755 root root -',
      'd /var/mnt 0755 root root -',
      'd /var/usrlocal 0755 root root -',
      'd /run/media 0755 root root -',
      '',
    ].join('\n'),
  );
  for (const d of ['home', 'root', 'opt', 'srv', 'mnt', 'media', 'usr/local']) await rm(join(t, d), { recursive: true, force: true });
  const links: Array<[string, string]> = [
    ['var/home', 'home'],
    ['var/roothome', 'root'],
    ['var/opt', 'opt'],
    ['var/srv', 'srv'],
    ['var/mnt', 'mnt'],
    ['run/media', 'media'],
    ['../var/usrlocal', 'usr/local'],
    ['sysroot/ostree', 'ostree'],
  ];
  for (const [target, path] of links) {
    await rm(join(t, path), { recursive: true, force: true });
    await symlink(target, join(t, path));
  }
  await mkdir(join(t, 'sysroot'), { recursive: true });
}

/**
 * Stand-in for postprocess.ts `runPostprocess()`: `add-files` copied from the config dir,
 * `remove-files` deleted, `postprocess` scripts run chrooted in the tree (stderr in the error).
 */
export async function runPostprocess(o: {
  tree: string;
  manifest: Manifest;
  configDir: string;
  overridesRootfs?: string | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}): Promise<void> {
  const t = o.tree;
  for (const [src, dest] of o.manifest['add-files'] ?? []) {
    const to = join(t, dest);
    await mkdir(dirname(to), { recursive: true });
    await rm(to, { force: true });
    await copyFile(resolve(o.configDir, src), to);
  }
  for (const f of o.manifest['remove-files'] ?? []) await rm(join(t, f), { recursive: true, force: true });
  const scripts = [...(o.manifest.postprocess ?? [])];
  if (o.manifest['postprocess-script']) {
    const { readFile } = await import('node:fs/promises');
    scripts.push(await readFile(resolve(o.configDir, o.manifest['postprocess-script']), 'utf8'));
  }
  for (const [i, script] of scripts.entries()) {
    const name = `cosa-postprocess-${i}`;
    await mkdir(join(t, 'tmp'), { recursive: true });
    await writeFile(join(t, 'tmp', name), script.startsWith('#!') ? script : `#!/bin/sh\nset -e\n${script}`);
    await chmod(join(t, 'tmp', name), 0o755);
    try {
      await run(['chroot', t, `/tmp/${name}`], { signal: o.signal, onProgress: o.onProgress, phase: 'postprocess' });
    } catch (e) {
      if (e instanceof CommandFailedError) {
        throw new CommandFailedError(e.command, e.exitCode, e.stderr, { code: 'COSA_COMPOSE_FAILED', message: `postprocess script ${i} failed: ${e.stderr.trim()}`, cause: e });
      }
      throw e;
    } finally {
      await rm(join(t, 'tmp', name), { force: true });
    }
  }
  if (o.overridesRootfs) {
    const entries = await readdir(o.overridesRootfs).catch(() => [] as string[]);
    if (entries.length > 0) await run(['cp', '-a', '--remove-destination', `${o.overridesRootfs}/.`, `${t}/`], { signal: o.signal });
  }
}
