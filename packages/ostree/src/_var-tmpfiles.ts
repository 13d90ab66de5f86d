/**
 * The tmpfiles.d lines that rebuild an OSTree tree's /var from its factory copy
 * (/usr/share/factory/var) on a fresh stateroot: one generated file per tree, whichever composer
 * made it, and no line for a path another tmpfiles.d file of the tree already creates (tmpfiles
 * keeps the first line per path and warns about the rest).
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';

/** Line types that create the path they name: two of them for one path conflict. */
const CREATING = /^[fFwdDevqQpLcbC][-!+=~^]*$/;

/**
 * The paths that the tree's tmpfiles.d files (`usr/lib/tmpfiles.d`, and `usr/etc/tmpfiles.d` or
 * `etc/tmpfiles.d`, which override a file of the same name) create, except in the file named
 * `own` (the one being generated). Lines with specifiers or globs are not resolved.
 */
export async function claimedTmpfilesPaths(tree: string, own: string): Promise<Set<string>> {
  const byName = new Map<string, string>();
  for (const dir of ['usr/lib/tmpfiles.d', 'etc/tmpfiles.d', 'usr/etc/tmpfiles.d']) {
    const names = await readdir(path.join(tree, dir)).catch(() => [] as string[]);
    for (const n of names) if (n.endsWith('.conf') && n !== own) byName.set(n, path.join(tree, dir, n));
  }
  const claimed = new Set<string>();
  for (const file of byName.values()) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const [type, p] = line.trim().split(/\s+/);
      if (type && p && CREATING.test(type) && !/[%*?[]/.test(p)) claimed.add(path.posix.normalize(p));
    }
  }
  return claimed;
}

async function hasFiles(dir: string): Promise<boolean> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) return true;
    if (await hasFiles(path.join(dir, e.name))) return true;
  }
  return false;
}

/**
 * Appends the lines recreating `dir` (the factory copy of `at`, e.g. /usr/share/factory/var for
 * /var) to `out`, in path order: `L` for a symlink, `C` (copy) for a file and for a directory below
 * the top level that holds files, `d` (mode and owner of the factory's) for the other directories,
 * whose entries follow. A top-level directory of /var (lib, cache, spool…) is never copied whole:
 * `C` does nothing on a directory that exists and is not empty, and ostree, systemd or a service
 * may make those before tmpfiles runs; nor is a directory another file creates. A path in
 * `claimed` gets no line of its own.
 */
export async function varTmpfilesLines(dir: string, at: string, claimed: ReadonlySet<string>, out: string[], depth = 0): Promise<void> {
  for (const name of (await readdir(dir)).sort()) {
    const src = path.join(dir, name);
    const dest = `${at}/${name}`;
    const st = await lstat(src);
    const mine = !claimed.has(dest);
    if (st.isSymbolicLink()) {
      if (mine) out.push(`L ${dest} - - - - ${await readlink(src)}`);
    } else if (st.isDirectory()) {
      if (depth >= 1 && mine && (await hasFiles(src))) {
        out.push(`C ${dest} - - - - /usr/share/factory${dest}`);
        continue;
      }
      if (mine) out.push(`d ${dest} ${(st.mode & 0o7777).toString(8).padStart(4, '0')} ${st.uid} ${st.gid} -`);
      await varTmpfilesLines(src, dest, claimed, out, depth + 1);
    } else if (mine) out.push(`C ${dest} - - - - /usr/share/factory${dest}`);
  }
}
