/**
 * The Debian composer: a manifest with a `debian:` section → a bootable OSTree commit, built with
 * mmdebstrap from the suite's archive. Fast paths, each keyed by hashes of its inputs:
 * - apt metadata and .debs live in cache/ (a private apt) and are reused; a build never refreshes
 *   metadata by itself (`fetch` does), so the input hash needs no network and under a second;
 * - the installed base tree (mmdebstrap's output) is cached per package set + metadata + assets;
 * - the initramfs is built once per kernel + initramfs inputs (see debian-initramfs.ts);
 * - the commit goes to a bare-user repo with `--skip-if-unchanged`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandFailedError, CosaError, stableStringify, withPhase } from '@cosa/schema';
import { type DebianSource } from '@cosa/schema/internal';
import { run } from './_exec.js';
import { defaultDpkgAdminDir, dpkgInstalledVersions } from './_dpkg-status.js';
import { aptDownload, aptEnv, aptResolve, aptUpdate, allCached, dpkgArch, metadataDigest, minbaseNames, sourceLine, type AptEnv, type ResolvedDeb } from './_apt.js';
import type { ComposeOptions, ComposeResult, Composer, PackageInfo } from './composer.js';
import { commitTree } from './repo.js';
import { postprocessTree, prepareOstreeTree } from './postprocess.js';
import { ensureInitramfs } from './debian-initramfs.js';
import { debianSources, type HostMirrors } from './debian-sources.js';
import { installedPackages, kernelVersion, prepareDebianTree } from './debian-tree.js';
import { composerInputHash, inputsFor, inputsHash } from './inputs.js';

/** Bumped whenever this composer's output for the same inputs changes. */
const REVISION = '2';
/** Bumped whenever the cached base tree for the same inputs would differ (2: mmdebstrap with the archive's SOURCE_DATE_EPOCH). */
const BASE_REVISION = '2';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `SOURCE_DATE_EPOCH` for a tool's environment (nothing when unknown). */
function epochEnv(epoch: number | undefined): Record<string, string> {
  return epoch === undefined ? {} : { SOURCE_DATE_EPOCH: String(epoch) };
}

/** The newest `Date:` of the archive's Release files in `lists` (seconds), the time of the package set. */
async function archiveEpoch(lists: string): Promise<number | undefined> {
  let newest: number | undefined;
  for (const n of await readdir(lists).catch(() => [] as string[])) {
    if (!/Release$/.test(n)) continue;
    const text = await readFile(join(lists, n), 'utf8').catch(() => '');
    const t = Date.parse(/^Date:\s*(.+)$/m.exec(text)?.[1] ?? '');
    if (Number.isFinite(t)) newest = Math.max(newest ?? 0, Math.floor(t / 1000));
  }
  return newest;
}

/**
 * PATH for mmdebstrap: the distribution's directories first. mmdebstrap filters every essential
 * package through `mmtarfilter` (`#!/usr/bin/env python3`, ~70 runs per compose); a version
 * manager's shims earlier in the caller's PATH (pyenv's cost ~0.12 s of CPU and up to a second
 * of wall per run on the bench host) would otherwise stand between each run and python.
 */
export function systemFirstPath(path = process.env.PATH ?? ''): string {
  const system = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  return [...system, ...path.split(':').filter((d) => d !== '' && !system.includes(d))].join(':');
}

/** Options of {@link createDebianComposer}. */
export interface DebianComposerOptions {
  /** Where the initramfs-tools hook, script and config shipped with the package live. */
  assetsDir?: string;
  /** The host's apt mirrors (default: read from /etc/apt). */
  hostMirrors?: HostMirrors;
  /** How many cached base trees to keep (default 2). */
  keepBaseTrees?: number;
  /** `apt-get update` attempts before a mirror counts as unreachable (default 3). */
  updateAttempts?: number;
  /**
   * Run dpkg under the host's libeatmydata while mmdebstrap installs (fsync and sync become
   * no-ops; the tree never keeps it). Default true; used only when the host has libeatmydata for
   * the target's architecture.
   */
  eatmydata?: boolean;
}

/** Debian multiarch triplets of the architectures whose host libeatmydata can serve the target. */
const MULTIARCH: Record<string, string> = { amd64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', ppc64el: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu', riscv64: 'riscv64-linux-gnu' };
const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64el', s390x: 's390x', riscv64: 'riscv64' };

/** The host's libeatmydata for a target of dpkg architecture `arch` (same as the host's), or undefined. */
async function hostEatmydata(arch: string): Promise<string | undefined> {
  if (NODE_ARCH[process.arch] !== arch || !MULTIARCH[arch]) return undefined;
  const lib = `/usr/lib/${MULTIARCH[arch]}/libeatmydata.so.1`;
  return (await exists(lib)) ? lib : undefined;
}

/** Where the eatmydata library lives inside the tree while mmdebstrap runs (removed afterwards). */
const TREE_EATMYDATA = '/usr/lib/cosa-eatmydata/libeatmydata.so';

/**
 * mmdebstrap hooks that divert the tree's dpkg to a wrapper preloading libeatmydata (what
 * mmdebstrap's own eatmydata hook does, with the host's library instead of one downloaded at
 * build time, so offline builds keep it) and undo it all before any other customize hook.
 * The wrapper is installed only when the library loads in the tree (a too-old libc skips it).
 */
function eatmydataHooks(lib: string, q: (s: string) => string): { extract: string; customize: string } {
  const dir = TREE_EATMYDATA.replace(/\/[^/]+$/, '');
  return {
    extract: [
      `if [ -x "$1/usr/bin/dpkg" ] && [ ! -e "$1/usr/bin/dpkg.distrib" ]; then`,
      `mkdir -p "$1${dir}" && cp ${q(lib)} "$1${TREE_EATMYDATA}"`,
      `&& if chroot "$1" env LD_PRELOAD=${TREE_EATMYDATA} /usr/bin/dpkg --version >/dev/null 2>&1; then`,
      `mv "$1/usr/bin/dpkg" "$1/usr/bin/dpkg.distrib"`,
      `&& printf '#!/bin/sh\\nLD_PRELOAD=${TREE_EATMYDATA}\${LD_PRELOAD:+:\$LD_PRELOAD} exec /usr/bin/dpkg.distrib "$@"\\n' > "$1/usr/bin/dpkg"`,
      `&& chmod 755 "$1/usr/bin/dpkg"`,
      `&& printf '/usr/bin/dpkg\\n/usr/bin/dpkg.distrib\\n:\\n' >> "$1/var/lib/dpkg/diversions";`,
      `else rm -rf "$1${dir}"; fi; fi`,
    ].join(' '),
    customize: [
      `if [ -e "$1/usr/bin/dpkg.distrib" ] && [ -e "$1${TREE_EATMYDATA}" ]; then`,
      `rm "$1/usr/bin/dpkg" && chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/bin/dpkg; fi`,
      `&& rm -rf "$1${dir}"`,
    ].join(' '),
  };
}

function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

async function digestDir(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p, `${rel}${e.name}/`);
      else h.update(`${rel}${e.name}\0${(await stat(p)).mode & 0o777}\0`).update(await readFile(p));
    }
  };
  await walk(dir, '');
  return h.digest('hex');
}

function debianSection(o: ComposeOptions): DebianSource {
  const d = o.manifest.debian;
  if (!d) throw new CosaError('COSA_COMPOSE_FAILED', 'the manifest has no debian: section', { hint: 'the Debian composer needs debian.suite' });
  initramfsModules(d);
  return d;
}

/** The manifest's `debian.initramfs-modules` (default `targeted`); anything else is an error naming the key. */
function initramfsModules(d: DebianSource): 'targeted' | 'most' {
  const v = (d as Record<string, unknown>)['initramfs-modules'] ?? 'targeted';
  if (v !== 'targeted' && v !== 'most') {
    throw new CosaError('COSA_SCHEMA_INVALID', `manifest debian.initramfs-modules: ${JSON.stringify(v)} is not targeted or most`, {
      hint: 'targeted (the default: virtio, NVMe, AHCI/SCSI disks and the root file systems) or most (initramfs-tools MODULES=most)',
    });
  }
  return v;
}

/**
 * Writes the initramfs-tools module policy into the per-build tree: MODULES=list with the
 * cosa-modules hook's list (targeted), or MODULES=most. A fresh file (the tree's /etc is a copy).
 */
async function writeInitramfsModules(tree: string, d: DebianSource): Promise<void> {
  const conf = join(tree, 'etc/initramfs-tools/conf.d/cosa-modules.conf');
  const mode = initramfsModules(d);
  await mkdir(join(tree, 'etc/initramfs-tools/conf.d'), { recursive: true });
  await rm(conf, { force: true });
  await writeFile(conf, `# cosa: debian.initramfs-modules: ${mode}\nMODULES=${mode === 'most' ? 'most' : 'list'}\n`);
}

function toPackageInfo(d: ResolvedDeb): PackageInfo {
  const m = /^(?:(\d+):)?(.*)$/.exec(d.version);
  return { name: d.name, ...(m?.[1] ? { epoch: m[1] } : {}), version: m?.[2] ?? d.version, arch: d.arch, checksum: d.checksum };
}

/** Everything the composer knows about a manifest before composing. */
interface Plan {
  debian: DebianSource;
  env: AptEnv;
  metaDigest: string;
  /** Names passed to apt/mmdebstrap (the manifest's packages). */
  include: string[];
  resolved: ResolvedDeb[];
  assetsDigest: string;
  sourceLines: string[];
}

/** Creates a Debian composer (mmdebstrap + ostree). */
export function createDebianComposer(opts: DebianComposerOptions = {}): Composer {
  const assetsDir = opts.assetsDir ?? fileURLToPath(new URL('../assets/', import.meta.url));
  let versionMemo: Promise<string> | undefined;
  let assetsMemo: Promise<string> | undefined;

  const version = (): Promise<string> => {
    versionMemo ??= (async () => {
      // dpkg's status file, else one dpkg-query, instead of starting perl (mmdebstrap) and ostree:
      // the no-op check is timed, and starting a process costs more than reading the file.
      const tools = ['mmdebstrap', 'ostree'];
      const admin = defaultDpkgAdminDir();
      const lines = (admin ? await dpkgInstalledVersions(tools, admin) : undefined)
        ?? (await run(['dpkg-query', '-W', '-f', '${Package} ${Version}\\n', ...tools], { okExitCodes: [0, 1] })).stdout.trim().split('\n');
      return `cosa-debian/${REVISION} ${lines.sort().join(' ')}`;
    })();
    return versionMemo;
  };

  async function plan(o: ComposeOptions, refresh: boolean): Promise<Plan> {
    const debian = debianSection(o);
    const sources = await debianSources(debian, opts.hostMirrors);
    const env = await aptEnv(o.cacheDir, sources, dpkgArch(o.arch));
    let metaDigest = refresh ? undefined : await metadataDigest(env);
    if (metaDigest === undefined) {
      if (o.offline) {
        throw new CosaError('COSA_COMPOSE_FAILED', `no cached package metadata for ${sources.map(sourceLine).join('; ')}`, { hint: 'run `cosa fetch` while online' });
      }
      await withPhase(o.onProgress, 'apt-update', () =>
        aptUpdate(env, { signal: o.signal, onProgress: o.onProgress, ...(opts.updateAttempts ? { attempts: opts.updateAttempts } : {}) }),
      );
      metaDigest = await metadataDigest(env);
      if (metaDigest === undefined) throw new CosaError('COSA_COMPOSE_FAILED', 'apt-get update wrote no Release files');
    }
    const include = [...new Set(o.manifest.packages ?? [])].sort();
    const variant = debian.variant ?? 'minbase';
    const resolveFile = join(o.cacheDir, 'debian', 'resolve', `${sha256(stableStringify({ REVISION, metaDigest, include, variant, arch: env.arch }))}.json`);
    let resolved: ResolvedDeb[];
    const cached = await readFile(resolveFile, 'utf8').catch(() => undefined);
    if (cached !== undefined) resolved = JSON.parse(cached) as ResolvedDeb[];
    else {
      resolved = await withPhase(o.onProgress, 'resolve', async () => {
        // What mmdebstrap adds to --include for the variant (custom/extract: nothing).
        const base = variant === 'custom' || variant === 'extract' ? [] : await minbaseNames(env, variant === 'apt' || variant === 'essential' ? 'essential' : 'required');
        return aptResolve(env, [...new Set([...base, ...include])], { signal: o.signal });
      });
      await mkdir(join(o.cacheDir, 'debian', 'resolve'), { recursive: true });
      const part = `${resolveFile}.${process.pid}.tmp`;
      await writeFile(part, JSON.stringify(resolved));
      await rename(part, resolveFile);
    }
    assetsMemo ??= digestDir(assetsDir);
    return { debian, env, metaDigest, include, resolved, assetsDigest: await assetsMemo, sourceLines: sources.map(sourceLine) };
  }

  async function ensureDebs(o: ComposeOptions, p: Plan): Promise<void> {
    if (await allCached(p.env, p.resolved)) return;
    if (o.offline) throw new CosaError('COSA_COMPOSE_FAILED', 'some packages are not in cache/ and the build is offline', { hint: 'run `cosa fetch` while online' });
    await aptDownload(p.env, p.resolved.map((d) => `${d.name}=${d.version}`), { signal: o.signal, onProgress: o.onProgress });
  }

  /** The installed tree before any per-build customisation, cached by everything that shapes it. */
  async function baseTree(o: ComposeOptions, p: Plan, stats: Record<string, number>): Promise<string> {
    const variant = p.debian.variant ?? 'minbase';
    const mm = await version();
    const same = { BASE_REVISION, mm, sources: p.sourceLines, metaDigest: p.metaDigest, variant, arch: p.env.arch, assets: p.assetsDigest };
    const key = sha256(stableStringify({ ...same, include: p.include }));
    const root = join(o.cacheDir, 'debian', 'base');
    const dir = join(root, key);
    if (await exists(join(dir, 'done'))) {
      stats.baseTreeCached = 1;
      return join(dir, 'rootfs');
    }
    stats.baseTreeCached = 0;
    await mkdir(root, { recursive: true });
    // Partial trees of builds that died (their pid is gone) are garbage.
    for (const n of await readdir(root)) {
      const pid = /\.partial-(\d+)-/.exec(n)?.[1];
      if (pid && !isAlive(Number(pid))) await rm(join(root, n), { recursive: true, force: true });
    }
    // A cached base with the same archive state and a subset of the packages: install only the
    // difference on top of a copy of it (mmdebstrap's documented refinement of an existing root).
    const sameKey = sha256(stableStringify(same));
    let from: { dir: string; add: string[] } | undefined;
    for (const n of await readdir(root)) {
      const info = await readFile(join(root, n, 'done'), 'utf8').then((t) => JSON.parse(t) as { sameKey?: string; include?: string[] }).catch(() => undefined);
      if (!info || info.sameKey !== sameKey || !info.include) continue;
      const have = new Set(info.include);
      if (!info.include.every((x) => p.include.includes(x))) continue;
      const add = p.include.filter((x) => !have.has(x));
      if (!from || add.length < from.add.length) from = { dir: join(root, n, 'rootfs'), add };
    }
    const partial = join(root, `.${key}.partial-${process.pid}-${randomBytes(3).toString('hex')}`);
    await mkdir(partial);
    try {
      const t0 = performance.now();
      if (from && from.add.length > 0) {
        stats.baseTreeIncremental = 1;
        const f = from;
        await withPhase(o.onProgress, 'mmdebstrap', () => mmdebstrap(o, p, join(partial, 'rootfs'), 'custom', f));
      } else {
        await withPhase(o.onProgress, 'mmdebstrap', () => mmdebstrap(o, p, join(partial, 'rootfs'), variant));
      }
      stats.mmdebstrapMs = Math.round(performance.now() - t0);
      await writeFile(join(partial, 'done'), `${JSON.stringify({ sameKey, include: p.include, created: new Date().toISOString(), ...(from && from.add.length > 0 ? { derived: true } : {}) })}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(partial, dir);
    } finally {
      await rm(partial, { recursive: true, force: true });
    }
    // Keep the newest few base trees; each is a full root (~600 MB).
    const others: Array<{ n: string; t: number }> = [];
    for (const n of await readdir(root)) {
      if (n === key) continue;
      const st = await stat(join(root, n, 'done')).catch(() => undefined);
      if (st) others.push({ n, t: st.mtimeMs });
    }
    others.sort((a, b) => b.t - a.t);
    for (const x of others.slice(Math.max(0, (opts.keepBaseTrees ?? 2) - 1))) await rm(join(root, x.n), { recursive: true, force: true });
    return join(dir, 'rootfs');
  }

  async function mmdebstrap(o: ComposeOptions, p: Plan, target: string, variant: string, from?: { dir: string; add: string[] }): Promise<void> {
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const lists = p.env.lists;
    const debs = p.env.debs;
    const eat = opts.eatmydata === false ? undefined : await hostEatmydata(p.env.arch);
    const eatHooks = eat ? eatmydataHooks(eat, q) : undefined;
    const argv = [
      'mmdebstrap',
      '--mode=root',
      `--variant=${variant}`,
      `--architectures=${p.env.arch}`,
      // The indexes are the private apt's: the same ones the input hash resolved against.
      '--skip=update',
      '--skip=essential/unlink',
      '--aptopt=Acquire::Languages "none"',
      '--aptopt=APT::Install-Recommends "false"',
      '--dpkgopt=force-unsafe-io',
      ...(o.manifest.documentation === true
        ? []
        : ['--dpkgopt=path-exclude=/usr/share/man/*', '--dpkgopt=path-exclude=/usr/share/info/*', '--dpkgopt=path-exclude=/usr/share/doc/*', '--dpkgopt=path-include=/usr/share/doc/*/copyright']),
      '--dpkgopt=path-exclude=/usr/share/locale/*',
      '--dpkgopt=path-include=/usr/share/locale/locale.alias',
      ...(from ? [`--setup-hook=cp -a ${q(from.dir)}/. "$1/"`] : []),
      `--setup-hook=mkdir -p "$1/var/lib/apt/lists" "$1/var/cache/apt/archives" "$1/etc/initramfs-tools"`,
      // Hard links when cache/ and the target share a filesystem, copies otherwise.
      `--setup-hook=for f in ${q(lists)}/*Release ${q(lists)}/*_Packages; do [ -e "$f" ] && { ln "$f" "$1/var/lib/apt/lists/" 2>/dev/null || cp "$f" "$1/var/lib/apt/lists/"; }; done; true`,
      `--setup-hook=for f in ${q(debs)}/*.deb; do [ -e "$f" ] && { ln "$f" "$1/var/cache/apt/archives/" 2>/dev/null || cp "$f" "$1/var/cache/apt/archives/"; }; done; true`,
      // The ostree initramfs glue must be in place before any initramfs could be built.
      `--setup-hook=cp -a ${q(join(assetsDirAbs(), 'initramfs-tools'))}/. "$1/etc/initramfs-tools/"`,
      // initramfs-tools skips hooks and scripts that are not executable, and a package manager
      // may have unpacked our assets without the mode bits: set them in the tree.
      `--setup-hook=cd ${q(join(assetsDirAbs(), 'initramfs-tools'))} && find hooks scripts -type f -exec chmod 0755 "$1/etc/initramfs-tools/{}" ';'`,
      // No initramfs while packages install: it is built once, afterwards, and cached. (On top of
      // an existing root, dpkg is there from the start: divert in the setup hook.)
      // dpkg exists from the extract step on (from the start on top of an existing root).
      ...(eatHooks ? [`--extract-hook=${eatHooks.extract}`, `--customize-hook=${eatHooks.customize}`] : []),
      `--${from ? 'setup' : 'essential'}-hook=chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && printf '#!/bin/sh\\nexit 0\\n' > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs"`,
      `--customize-hook=rm -f "$1/usr/sbin/update-initramfs" && chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs`,
      // Anything apt had to download goes back to the shared cache.
      `--customize-hook=for f in "$1"/var/cache/apt/archives/*.deb; do [ -e "$f" ] && { [ -e ${q(debs)}/"$(basename "$f")" ] || cp "$f" ${q(debs)}/; }; done; true`,
    ];
    const include = from ? from.add : p.include;
    if (include.length > 0) argv.push(`--include=${include.join(',')}`);
    argv.push(p.debian.suite, target, ...p.sourceLines);
    try {
      // The archive's date, not the build's: a cached base tree is a function of its cache key.
      const epoch = await archiveEpoch(lists);
      await run(argv, { signal: o.signal, onProgress: o.onProgress, phase: 'mmdebstrap', timeoutMs: 60 * 60_000, env: { LC_ALL: 'C.UTF-8', PATH: systemFirstPath(), ...epochEnv(epoch) } });
    } catch (e) {
      if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
        throw new CommandFailedError(e.command, e.exitCode, e.stderr, {
          code: 'COSA_COMPOSE_FAILED',
          message: `mmdebstrap failed for ${p.debian.suite}: ${e.stderr.trim().split('\n').slice(-15).join('\n')}`,
          cause: e,
        });
      }
      throw e;
    }
  }

  function assetsDirAbs(): string {
    return assetsDir.replace(/\/+$/, '');
  }

  /**
   * The per-build copy of the base tree. Our own steps only rename, unlink and create files, so
   * hard links are safe for them; /etc is copied for real (passwd rewrites /etc/shadow- in
   * place; overlay.d layers are applied the same way). User hooks and postprocess scripts may
   * write anything in place: then a full copy.
   */
  async function copyBase(o: ComposeOptions, p: Plan, base: string, tree: string): Promise<void> {
    const m = o.manifest;
    const overrides = o.overridesRootfs ? (await readdir(o.overridesRootfs).catch(() => [] as string[])).length > 0 : false;
    const userCode = (p.debian['customize-hooks']?.length ?? 0) > 0 || (m.postprocess?.length ?? 0) > 0 || !!m['postprocess-script'] || (m['add-files']?.length ?? 0) > 0 || overrides;
    if (userCode) {
      await run(['cp', '-a', base, tree], { signal: o.signal });
      return;
    }
    await run(['cp', '-al', base, tree], { signal: o.signal });
    await rm(join(tree, 'etc'), { recursive: true, force: true });
    await run(['cp', '-a', join(base, 'etc'), join(tree, 'etc')], { signal: o.signal });
  }

  /** Hostname, unattended login and the manifest's customize hooks, on the per-build copy. */
  async function customize(o: ComposeOptions, p: Plan, tree: string): Promise<void> {
    if (p.debian.hostname) {
      await rm(join(tree, 'etc/hostname'), { force: true });
      await writeFile(join(tree, 'etc/hostname'), `${p.debian.hostname}\n`);
    }
    if (p.debian['unattended-login']) {
      await run(['chroot', tree, 'passwd', '--delete', 'root'], { signal: o.signal, env: epochEnv(o.sourceDateEpoch) });
      const mask = join(tree, 'etc/systemd/system/systemd-firstboot.service');
      await mkdir(join(tree, 'etc/systemd/system'), { recursive: true });
      await rm(mask, { force: true });
      await symlink('/dev/null', mask);
    }
    for (const [i, hook] of (p.debian['customize-hooks'] ?? []).entries()) {
      try {
        await run(['sh', '-ec', hook, 'customize-hook', tree], { signal: o.signal, onProgress: o.onProgress, phase: 'customize', cwd: o.configDir, env: { LC_ALL: 'C.UTF-8', ...epochEnv(o.sourceDateEpoch) } });
      } catch (e) {
        if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
          throw new CommandFailedError(e.command, e.exitCode, e.stderr, {
            code: 'COSA_COMPOSE_FAILED',
            message: `debian.customize-hooks[${i}] failed with exit code ${e.exitCode ?? '?'}: ${e.stderr.trim() || '(no stderr)'}`,
            cause: e,
          });
        }
        throw e;
      }
    }
  }

  const composer: Composer = {
    name: 'debian',
    version,

    async resolve(o) {
      const p = await plan(o, false);
      return { packages: p.resolved.map(toPackageInfo), extra: { sources: p.sourceLines, assets: p.assetsDigest } };
    },

    async inputHash(o) {
      return composerInputHash(o, composer);
    },

    async fetch(o) {
      const p = await plan(o, !o.offline);
      await ensureDebs(o, p);
    },

    async compose(o) {
      const stats: Record<string, number> = {};
      const time = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
        const t0 = performance.now();
        try {
          return await withPhase(o.onProgress, name, fn);
        } finally {
          stats[`${name}Ms`] = Math.round(performance.now() - t0);
        }
      };
      const inputs = await time('inputHash', () => inputsFor(o, composer));
      const inputHash = inputsHash(inputs);
      const p = await plan(o, false);
      const overlays = inputs.overlays.map((l) => join(o.configDir, 'overlay.d', l.name));
      await time('download', () => ensureDebs(o, p));
      const base = await time('base', () => baseTree(o, p, stats));
      await mkdir(o.tmpDir, { recursive: true });
      const work = join(o.tmpDir, `debian-compose-${randomBytes(4).toString('hex')}`);
      const tree = join(work, 'rootfs');
      try {
        await mkdir(work);
        await time('copy', () => copyBase(o, p, base, tree));
        await time('customize', () => customize(o, p, tree));
        await time('postprocess', () => postprocessTree({ tree, manifest: o.manifest, configDir: o.configDir, overlays, overridesRootfs: o.overridesRootfs, env: epochEnv(o.sourceDateEpoch), signal: o.signal, onProgress: o.onProgress }));
        const kver = await kernelVersion(tree);
        await writeInitramfsModules(tree, p.debian);
        const initrd = await time('initramfs', async () => ensureInitramfs({ tree, kver, cacheDir: o.cacheDir, sourceDateEpoch: await archiveEpoch(p.env.lists), signal: o.signal, onProgress: o.onProgress }));
        stats.initramfsCached = initrd.cached ? 1 : 0;
        const packages = await installedPackages(tree);
        await time('ostreeLayout', async () => {
          await prepareDebianTree({ tree });
          await prepareOstreeTree({ tree });
        });
        const { commit, changed } = await time('commit', () =>
          commitTree({
            repo: o.repo,
            branch: o.ref,
            tree,
            subject: `${o.manifest.rojig?.name ?? 'cosa'} ${o.version}`,
            metadata: { version: o.version, 'cosa.inputhash': inputHash },
            skipIfUnchanged: true,
            ...(o.sourceDateEpoch !== undefined ? { timestamp: new Date(o.sourceDateEpoch * 1000) } : {}),
            fsync: false,
            signal: o.signal,
            onProgress: o.onProgress,
          }),
        );
        // Checksums from the repo metadata the packages were resolved from.
        const sums = new Map(p.resolved.map((d) => [d.name, d.checksum]));
        const withSums = packages.map((x) => (sums.has(x.name) ? { ...x, checksum: sums.get(x.name) as string } : x));
        const result: ComposeResult = { commit, ref: o.ref, version: o.version, inputHash, packages: withSums, changed, stats };
        return result;
      } finally {
        await time('cleanup', () => rm(work, { recursive: true, force: true }));
      }
    },
  };
  return composer;
}

/** The Debian composer with default options. */
export const debianComposer: Composer = createDebianComposer();
