import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop()!, { recursive: true, force: true });
});

/** A temp directory removed after the current test. */
export async function tempDir(prefix = 'cosa-ostree-'): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** Writes a small tree: `{ 'usr/bin/x': 'content', 'usr/bin/y': { link: 'x' } }`. */
export async function writeTree(root: string, files: Record<string, string | { link: string } | { dir: true }>): Promise<void> {
  for (const [rel, v] of Object.entries(files)) {
    const p = path.join(root, rel);
    if (typeof v === 'object' && 'dir' in v) {
      await mkdir(p, { recursive: true });
      continue;
    }
    await mkdir(path.dirname(p), { recursive: true });
    if (typeof v === 'string') await writeFile(p, v);
    else await symlink(v.link, p);
  }
}
