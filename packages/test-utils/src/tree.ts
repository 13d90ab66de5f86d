import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A snapshot of a directory tree: relative path → `dir <mode>`, `file <mode> sha256:<hex>` or
 * `link -> <target>`. Two snapshots are equal exactly when the trees are byte-identical.
 */
export type TreeSnapshot = Record<string, string>;

/** Takes a {@link TreeSnapshot} of `dir` (symlinks are recorded, never followed). */
export async function snapshotTree(dir: string): Promise<TreeSnapshot> {
  const out: TreeSnapshot = {};
  const walk = async (rel: string): Promise<void> => {
    const abs = rel === '' ? dir : join(dir, rel);
    const st = await lstat(abs);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[rel || '.'] = `link -> ${await readlink(abs)}`;
    else if (st.isDirectory()) {
      out[rel || '.'] = `dir ${mode}`;
      for (const n of (await readdir(abs)).sort()) await walk(rel === '' ? n : join(rel, n));
    } else if (st.isFile()) {
      out[rel] = `file ${mode} sha256:${createHash('sha256').update(await readFile(abs)).digest('hex')}`;
    } else out[rel] = `other ${mode}`;
  };
  await walk('');
  return out;
}
