/**
 * The initramfs of a Debian tree, built once per kernel + initramfs inputs and reused: the cache
 * key covers the kernel version, the versions of the packages whose files end up in or shape the
 * initramfs, and the bytes of every initramfs-tools hook, script and config file in the tree.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { CommandFailedError, type OnProgress } from '@cosa/schema';
import { run } from './_exec.js';
import { installedPackages } from './debian-tree.js';

/** Packages whose binaries or data mkinitramfs copies, besides those shipping initramfs-tools hooks. */
const BASE_INPUTS = ['libc6', 'kmod', 'udev', 'klibc-utils', 'libklibc', 'busybox', 'zstd', 'ostree', 'ostree-boot', 'initramfs-tools', 'initramfs-tools-core', 'systemd', 'util-linux', 'libblkid1', 'libmount1', 'libselinux1', 'cpio'];

async function walkFiles(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walkFiles(p, out);
    else out.push(p);
  }
}

/** Options of {@link initramfsKey} and {@link ensureInitramfs}. */
export interface InitramfsOptions {
  tree: string;
  kver: string;
  cacheDir: string;
  /** SOURCE_DATE_EPOCH for mkinitramfs (file times in the cpio archive). */
  sourceDateEpoch?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

/** The cache key of the tree's initramfs (hex sha256). */
export async function initramfsKey(o: { tree: string; kver: string }): Promise<string> {
  const t = o.tree;
  const h = createHash('sha256');
  h.update(`kver\0${o.kver}\0`);
  const owners = new Set(BASE_INPUTS);
  const info = join(t, 'var/lib/dpkg/info');
  for (const n of (await readdir(info)).filter((x) => x.endsWith('.list'))) {
    const text = await readFile(join(info, n), 'utf8');
    if (/^(\/usr)?\/(share|etc)\/initramfs-tools\//m.test(text) || text.includes(`/lib/modules/${o.kver}/`)) owners.add(n.slice(0, -5).split(':')[0] ?? '');
  }
  for (const p of await installedPackages(t)) {
    if (owners.has(p.name)) h.update(`pkg\0${p.name}=${p.epoch ?? ''}:${p.version}\0`);
  }
  for (const dir of ['etc/initramfs-tools', 'usr/share/initramfs-tools']) {
    const files: string[] = [];
    await walkFiles(join(t, dir), files);
    for (const f of files.sort()) {
      const st = await stat(f).catch(() => undefined);
      if (!st?.isFile()) continue;
      h.update(`file\0${relative(t, f)}\0${st.mode & 0o777}\0`);
      h.update(await readFile(f));
    }
  }
  return h.digest('hex');
}

/** The outcome of {@link ensureInitramfs}. */
export interface InitramfsResult {
  key: string;
  /** True when the cached image was reused. */
  cached: boolean;
  /** The image's path inside the tree. */
  path: string;
}

/**
 * Puts the initramfs at `/usr/lib/modules/<kver>/initramfs.img`: from the cache when the key
 * matches, else built with `mkinitramfs` chrooted in the tree and stored in the cache (the last
 * few images are kept).
 */
export async function ensureInitramfs(o: InitramfsOptions): Promise<InitramfsResult> {
  const key = await initramfsKey(o);
  const cacheDir = join(o.cacheDir, 'debian', 'initramfs');
  await mkdir(cacheDir, { recursive: true });
  const cached = join(cacheDir, `${key}.img`);
  const dest = join(o.tree, 'usr/lib/modules', o.kver, 'initramfs.img');
  await rm(dest, { force: true });
  if (await stat(cached).catch(() => undefined)) {
    await copyFile(cached, dest);
    const now = new Date();
    await utimes(cached, now, now);
    return { key, cached: true, path: dest };
  }
  const inTree = `/tmp/cosa-initramfs-${randomBytes(4).toString('hex')}.img`;
  try {
    await run(['chroot', o.tree, 'mkinitramfs', '-o', inTree, o.kver], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', ...(o.sourceDateEpoch !== undefined ? { SOURCE_DATE_EPOCH: String(o.sourceDateEpoch) } : {}) },
      signal: o.signal,
      onProgress: o.onProgress,
      phase: 'initramfs',
      timeoutMs: 20 * 60_000,
    });
  } catch (e) {
    await rm(join(o.tree, inTree), { force: true });
    if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
      throw new CommandFailedError(e.command, e.exitCode, e.stderr, { code: 'COSA_COMPOSE_FAILED', message: `mkinitramfs failed for ${o.kver}: ${e.stderr.trim().split('\n').slice(-10).join('\n')}`, cause: e });
    }
    throw e;
  }
  await rename(join(o.tree, inTree), dest);
  const part = `${cached}.partial-${process.pid}`;
  await copyFile(dest, part);
  await rename(part, cached);
  await pruneCache(cacheDir, 3);
  return { key, cached: false, path: dest };
}

async function pruneCache(dir: string, keep: number): Promise<void> {
  const imgs: Array<{ p: string; t: number }> = [];
  for (const n of await readdir(dir)) {
    if (!n.endsWith('.img')) continue;
    const st = await stat(join(dir, n)).catch(() => undefined);
    if (st) imgs.push({ p: join(dir, n), t: st.mtimeMs });
  }
  imgs.sort((a, b) => b.t - a.t);
  for (const x of imgs.slice(keep)) await rm(x.p, { force: true });
}
