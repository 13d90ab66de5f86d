import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openWorkdir, type WorkdirLike } from './workdir.js';

/** Options of {@link cleanWorkdir}. */
export interface CleanOptions {
  workdir: WorkdirLike;
  /** Also empty `cache/`. */
  all?: boolean;
}

/**
 * `cosa clean`: removes everything in `builds/` and `tmp/` (and `cache/` with `all`), keeping the
 * directories themselves. Returns the removed paths, relative to the workdir.
 */
export async function cleanWorkdir(options: CleanOptions): Promise<string[]> {
  const wd = await openWorkdir(options.workdir);
  const dirs = [wd.buildsDir, wd.tmpDir, ...(options.all ? [wd.cacheDir] : [])];
  const removed: string[] = [];
  for (const d of dirs) {
    let names: string[];
    try {
      names = await readdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    for (const n of names.sort()) {
      await rm(join(d, n), { recursive: true, force: true });
      removed.push(join(d.slice(wd.dir.length + 1), n));
    }
  }
  return removed;
}
