/**
 * What happens to a composed root between the package manager and `ostree commit`:
 * {@link postprocessTree} applies the treefile's `remove-files`, `add-files`, `postprocess-script`,
 * `postprocess` and `overrides/rootfs`, as rpm-ostree does; {@link prepareOstreeTree} turns any
 * root filesystem into an OSTree-ready tree (both composers call it).
 */
import { constants } from 'node:fs';
import { access, chmod, copyFile, cp, lchown, lstat, mkdir, readdir, readFile, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CommandFailedError, CosaError, type Manifest, type OnProgress } from '@cosa/schema';
import { run } from './_exec.js';
import { claimedTmpfilesPaths, varTmpfilesLines } from './_var-tmpfiles.js';

/** Resolves `rel` inside `root`, refusing paths that escape it. */
export function resolveInside(root: string, rel: string): string {
  const p = path.resolve(root, rel.replace(/^\/+/, ''));
  if (p !== path.resolve(root) && !p.startsWith(path.resolve(root) + path.sep)) {
    throw new CosaError('COSA_PATH_UNSAFE', `${rel} points outside ${root}`);
  }
  return p;
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link postprocessTree}. */
export interface PostprocessOptions {
  /** The composed root. */
  tree: string;
  manifest: Manifest;
  /** Where `add-files` sources and `postprocess-script` resolve. */
  configDir: string;
  /** overlay.d layer directories, applied in order before anything else (see {@link applyOverlay}). */
  overlays?: readonly string[] | undefined;
  /** `overrides/rootfs`, overlaid last when it exists. */
  overridesRootfs?: string | undefined;
  /** Environment for the scripts (merged over a minimal PATH/LANG). */
  env?: Record<string, string>;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

/** Durations of the postprocess steps in ms. */
export interface PostprocessStats {
  'postprocess-ms': number;
  'postprocess-scripts': number;
}

/**
 * Applies the manifest's postprocessing to `tree`, in rpm-ostree's order: the overlay.d layers
 * (rpm-ostree's `ostree-layers`, checked out over the packages), `remove-files`,
 * `add-files` (copied from `configDir`), `postprocess-script`, each `postprocess` inline script,
 * then `overrides/rootfs` overlaid. Scripts run chrooted when the tree has `/bin/sh` and we are
 * root, else on the host with the tree as cwd and as `$1`. A failing script → COSA_COMPOSE_FAILED
 * carrying its stderr.
 */
export async function postprocessTree(o: PostprocessOptions): Promise<PostprocessStats> {
  const t0 = performance.now();
  const m = o.manifest;
  for (const layer of o.overlays ?? []) await applyOverlay(o.tree, layer);
  if (o.overlays?.length) o.onProgress?.({ type: 'info', message: `applied overlay.d layers: ${o.overlays.map((l) => path.basename(l)).join(', ')}` });
  for (const rel of m['remove-files'] ?? []) {
    await rm(resolveInside(o.tree, rel), { recursive: true, force: true });
  }
  for (const [src, dest] of m['add-files'] ?? []) {
    const from = resolveInside(o.configDir, src);
    const to = resolveInside(o.tree, dest);
    try {
      await mkdir(path.dirname(to), { recursive: true });
      await cp(from, to, { recursive: true, force: true, preserveTimestamps: true, verbatimSymlinks: true });
    } catch (e) {
      throw new CosaError('COSA_COMPOSE_FAILED', `add-files: cannot copy ${src} to ${dest}: ${(e as Error).message}`, { cause: e });
    }
  }
  const scripts: { name: string; body?: string; file?: string }[] = [];
  const ps = m['postprocess-script'];
  if (ps) scripts.push({ name: `postprocess-script ${ps}`, file: resolveInside(o.configDir, ps) });
  (m.postprocess ?? []).forEach((body, i) => scripts.push({ name: `postprocess[${i}]`, body }));
  for (const s of scripts) await runTreeScript({ ...o, ...s });
  if (o.overridesRootfs && (await exists(o.overridesRootfs))) {
    const entries = await readdir(o.overridesRootfs);
    for (const e of entries) {
      await cp(path.join(o.overridesRootfs, e), path.join(o.tree, e), { recursive: true, force: true, verbatimSymlinks: true, preserveTimestamps: true });
    }
    if (entries.length) o.onProgress?.({ type: 'info', message: `overlaid overrides/rootfs (${entries.length} entries)` });
  }
  return { 'postprocess-ms': Math.round(performance.now() - t0), 'postprocess-scripts': scripts.length };
}

/**
 * Parses an overlay's `statoverride` file (ostree's format, plus `#` comments): `=MODE /path`
 * sets the mode, `MODE /path` adds mode bits; MODE is decimal. Returns path → change.
 */
export function parseStatoverride(text: string): Map<string, { set?: number; add?: number }> {
  const out = new Map<string, { set?: number; add?: number }>();
  for (const line of text.split('\n')) {
    const m = /^(=?)(\d+)\s+(\S.*)$/.exec(line.trim());
    if (!m || line.trim().startsWith('#')) continue;
    out.set(m[3]!.replace(/^\/+/, ''), m[1] ? { set: Number(m[2]) } : { add: Number(m[2]) });
  }
  return out;
}

/** The mode an overlay entry gets: as the original commits overlays (umask 022, no setuid/setgid, read-only executables), then its statoverride. */
export function overlayMode(srcMode: number, isDir: boolean, override?: { set?: number; add?: number }): number {
  let mode = srcMode & 0o1777 & ~0o022;
  if (!isDir && mode & 0o111) mode &= ~0o222;
  if (override?.set !== undefined) mode = override.set & 0o7777;
  if (override?.add !== undefined) mode |= override.add & 0o7777;
  return mode;
}

/**
 * Applies one overlay.d layer onto `tree` with the rules the original uses when it commits
 * overlays (owner 0:0 when root, modes of {@link overlayMode}, the layer's `statoverride` file
 * applied and not copied). Files under `usr/etc/` go to `etc/` (which becomes /usr/etc in the
 * commit). Existing files are unlinked before they are written, so hard-linked trees stay intact.
 */
export async function applyOverlay(tree: string, layer: string): Promise<number> {
  const overrides = parseStatoverride(await readFile(path.join(layer, 'statoverride'), 'utf8').catch(() => ''));
  const root = process.getuid?.() === 0;
  let n = 0;
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(path.join(layer, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (r === 'statoverride') continue;
      const src = path.join(layer, r);
      const destRel = r === 'usr/etc' || r.startsWith('usr/etc/') ? `etc${r.slice('usr/etc'.length)}` : r;
      const dest = resolveInside(tree, destRel);
      const st = await lstat(src);
      if (st.isDirectory()) {
        const cur = await lstat(dest).catch(() => undefined);
        // A directory of the layer over a link to a directory of the tree (merged /usr: lib -> usr/lib) goes through it.
        const dirLike = !!cur?.isDirectory() || (!!cur?.isSymbolicLink() && (await isDirInside(tree, dest)));
        if (cur && !dirLike) await rm(dest, { recursive: true, force: true });
        if (!dirLike) {
          await mkdir(dest, { recursive: true });
          await chmod(dest, overlayMode(st.mode, true, overrides.get(r)));
          if (root) await lchown(dest, 0, 0);
        }
        await walk(r);
        continue;
      }
      await rm(dest, { recursive: true, force: true });
      await mkdir(path.dirname(dest), { recursive: true });
      if (st.isSymbolicLink()) await symlink(await readlink(src), dest);
      else {
        await copyFile(src, dest);
        await chmod(dest, overlayMode(st.mode, false, overrides.get(r)));
      }
      if (root) await lchown(dest, 0, 0);
      n++;
    }
  };
  await walk('');
  return n;
}

/** Whether `p` (a symlink) resolves to a directory inside `tree`. */
async function isDirInside(tree: string, p: string): Promise<boolean> {
  try {
    const [t, r] = await Promise.all([realpath(tree), realpath(p)]);
    return (r === t || r.startsWith(t + path.sep)) && (await stat(r)).isDirectory();
  } catch {
    return false;
  }
}

/** Alias of {@link postprocessTree} (the name the Debian composer uses). */
export const runPostprocess = postprocessTree;

/** Runs one script (inline `body` or a `file`) in `tree`. */
async function runTreeScript(o: PostprocessOptions & { name: string; body?: string; file?: string }): Promise<void> {
  const chroot = process.getuid?.() === 0 && (await isExecutable(path.join(o.tree, 'bin/sh')));
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', ...o.env };
  let argv: string[];
  let cleanup: string | undefined;
  if (chroot) {
    const tmp = path.join(o.tree, 'tmp');
    await mkdir(tmp, { recursive: true });
    const inTree = path.join(tmp, `.cosa-postprocess-${process.pid}-${Date.now()}`);
    if (o.file) await cp(o.file, inTree);
    else await writeFile(inTree, o.body ?? '');
    await chmod(inTree, 0o755);
    cleanup = inTree;
    argv = ['chroot', o.tree, '/bin/sh', '-e', `/tmp/${path.basename(inTree)}`];
  } else if (o.file) {
    argv = ['sh', '-e', o.file, o.tree];
  } else {
    argv = ['sh', '-e', '-c', o.body ?? '', 'postprocess', o.tree];
  }
  try {
    await run(argv, { cwd: o.tree, env, extendEnv: false, ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}), phase: 'postprocess' });
  } catch (e) {
    if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
      throw new CosaError('COSA_COMPOSE_FAILED', `${o.name} failed (exit ${e.exitCode ?? '?'}): ${e.stderr.trim()}`, { cause: e });
    }
    throw e;
  } finally {
    if (cleanup) await rm(cleanup, { force: true });
  }
}

async function isExecutable(p: string): Promise<boolean> {
  try {
    // A dangling absolute symlink (/bin/sh -> /usr/bin/dash) resolves against the host; check inside.
    let target = p;
    for (let i = 0; i < 10; i++) {
      const st = await lstat(target);
      if (!st.isSymbolicLink()) break;
      const l = await readlink(target);
      const root = p.slice(0, p.length - 'bin/sh'.length);
      target = l.startsWith('/') ? path.join(root, l) : path.join(path.dirname(target), l);
    }
    await access(target, constants.X_OK);
    return (await stat(target)).isFile();
  } catch {
    return false;
  }
}

/** Options of {@link prepareOstreeTree}. */
export interface PrepareOstreeTreeOptions {
  /** The root filesystem to convert in place. */
  tree: string;
  /** Written to `/usr/etc/fstab` when given (e.g. `LABEL=boot /boot ext4 defaults 0 2\n`). */
  fstab?: string;
  /** Name of the generated tmpfiles.d file (default `cosa-ostree.conf`). */
  tmpfilesName?: string;
  onProgress?: OnProgress | undefined;
}

/** What {@link prepareOstreeTree} did. */
export interface PrepareOstreeTreeResult {
  /** Kernel versions found under /usr/lib/modules with a vmlinuz. */
  kernels: string[];
  /** Lines written to the tmpfiles.d file. */
  tmpfiles: string[];
}

const VAR_LINKS: [string, string, string][] = [
  // [path in tree, symlink target, directory it needs at boot]
  ['home', 'var/home', '/var/home'],
  ['root', 'var/roothome', '/var/roothome'],
  ['opt', 'var/opt', '/var/opt'],
  ['srv', 'var/srv', '/var/srv'],
  ['mnt', 'var/mnt', '/var/mnt'],
  ['media', 'run/media', '/run/media'],
  ['usr/local', '../var/usrlocal', '/var/usrlocal'],
];

/**
 * Turns a root filesystem into an OSTree-ready tree, in place:
 * - a kernel left in /boot (`vmlinuz-<kver>`, `initrd.img-<kver>` or `initramfs-<kver>.img`) moves
 *   to `/usr/lib/modules/<kver>/{vmlinuz,initramfs.img}`; /boot, /dev, /proc, /sys, /run and /tmp
 *   are emptied (device nodes cannot be committed);
 * - /etc moves to /usr/etc;
 * - /var moves to /usr/share/factory/var and is recreated empty; tmpfiles.d lines (one file)
 *   recreate its directories (`d`), symlinks (`L`) and copy back content (`C`) at boot, with no
 *   line for a path the tree's own tmpfiles.d files create;
 * - home, root, opt, srv, mnt, media and usr/local become the usual var-based symlinks (their
 *   content, if any, goes to the factory /var and is copied back at boot);
 * - `/sysroot` and `ostree → sysroot/ostree` are created.
 * Idempotent on an already prepared tree.
 */
export async function prepareOstreeTree(o: PrepareOstreeTreeOptions): Promise<PrepareOstreeTreeResult> {
  const t = (p: string) => path.join(o.tree, p);
  // Kernel and initramfs into /usr/lib/modules/<kver>/.
  const kernels: string[] = [];
  const modules = t('usr/lib/modules');
  for (const kver of (await exists(modules)) ? await readdir(modules) : []) {
    const dir = path.join(modules, kver);
    const vmlinuz = path.join(dir, 'vmlinuz');
    const bootK = t(`boot/vmlinuz-${kver}`);
    if (!(await exists(vmlinuz)) && (await exists(bootK))) await rename(bootK, vmlinuz);
    for (const name of [`initrd.img-${kver}`, `initramfs-${kver}.img`]) {
      const src = t(`boot/${name}`);
      if (!(await exists(path.join(dir, 'initramfs.img'))) && (await exists(src))) await rename(src, path.join(dir, 'initramfs.img'));
    }
    if (await exists(vmlinuz)) kernels.push(kver);
  }
  // Root-level kernel symlinks (Debian's vmlinuz, initrd.img) point into /boot.
  for (const name of ['vmlinuz', 'vmlinuz.old', 'initrd.img', 'initrd.img.old']) await rm(t(name), { force: true });
  for (const d of ['boot', 'dev', 'proc', 'sys', 'run', 'tmp']) {
    await emptyDir(t(d));
  }
  await chmod(t('tmp'), 0o1777);

  // /etc → /usr/etc
  if (await exists(t('etc'))) {
    if (await exists(t('usr/etc'))) throw new CosaError('COSA_COMPOSE_FAILED', `${o.tree} has both /etc and /usr/etc`);
    await mkdir(t('usr'), { recursive: true });
    await rename(t('etc'), t('usr/etc'));
  }
  if (o.fstab !== undefined) {
    await mkdir(t('usr/etc'), { recursive: true });
    await writeFile(t('usr/etc/fstab'), o.fstab);
  }

  // /var → factory copy.
  const factory = t('usr/share/factory/var');
  await mkdir(path.dirname(factory), { recursive: true });
  if ((await exists(t('var'))) && !(await isSymlink(t('var')))) {
    if ((await readdir(t('var'))).length > 0) {
      await rm(factory, { recursive: true, force: true });
      await rename(t('var'), factory);
    } else await rm(t('var'), { recursive: true });
  }
  await mkdir(t('var'), { recursive: true });

  // Var-based symlinks; existing content moves to the factory /var.
  for (const [p, target, bootDir] of VAR_LINKS) {
    const abs = t(p);
    if ((await exists(abs)) && !(await isSymlink(abs))) {
      const content = await readdir(abs);
      if (content.length > 0 && bootDir.startsWith('/var/')) {
        const dest = path.join(factory, bootDir.slice('/var/'.length));
        await rm(dest, { recursive: true, force: true });
        await mkdir(path.dirname(dest), { recursive: true });
        await rename(abs, dest);
      } else await rm(abs, { recursive: true, force: true });
    }
    if (!(await exists(abs))) {
      await mkdir(path.dirname(abs), { recursive: true });
      await symlink(target, abs);
    }
  }

  // One generated file: no line for a path the tree's own tmpfiles.d already create.
  const tmpfilesName = o.tmpfilesName ?? 'cosa-ostree.conf';
  const claimed = await claimedTmpfilesPaths(o.tree, tmpfilesName);
  const lines: string[] = [];
  for (const [, , bootDir] of VAR_LINKS) {
    const mode = bootDir === '/var/roothome' ? '0700' : '0755';
    if (!claimed.has(bootDir) && !(await exists(path.join(factory, bootDir.replace(/^\/var\//, ''))))) lines.push(`d ${bootDir} ${mode} root root -`);
  }
  if (await exists(factory)) await varTmpfilesLines(factory, '/var', claimed, lines);
  const tmpfilesDir = t('usr/lib/tmpfiles.d');
  await mkdir(tmpfilesDir, { recursive: true });
  await writeFile(path.join(tmpfilesDir, tmpfilesName), `# Generated by cosa: recreates /var from /usr/share/factory/var\n${lines.join('\n')}\n`);

  await mkdir(t('sysroot'), { recursive: true });
  if (!(await exists(t('ostree')))) await symlink('sysroot/ostree', t('ostree'));
  return { kernels: kernels.sort(), tmpfiles: lines };
}

async function isSymlink(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isSymbolicLink();
  } catch {
    return false;
  }
}

async function emptyDir(dir: string): Promise<void> {
  if (await isSymlink(dir)) await rm(dir);
  if (await exists(dir)) {
    for (const e of await readdir(dir)) await rm(path.join(dir, e), { recursive: true, force: true });
  } else await mkdir(dir, { recursive: true });
}
