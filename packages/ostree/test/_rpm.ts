import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '@cosa/ostree/internal';

const specs = fileURLToPath(new URL('./fixtures/rpm/', import.meta.url));

/**
 * Builds the test RPMs (versions per package, default 1.0) with rpmbuild into `repoDir` and
 * indexes it with createrepo_c. Returns the repo dir.
 */
export async function buildRpmRepo(work: string, versions: Record<string, string> = {}): Promise<string> {
  const top = path.join(work, 'rpmbuild');
  const repo = path.join(work, 'rpm-repo');
  await mkdir(repo, { recursive: true });
  for (const spec of (await readdir(specs)).filter((f) => f.endsWith('.spec'))) {
    const name = spec.replace(/\.spec$/, '');
    await run(['rpmbuild', '--define', `_topdir ${top}`, '--define', `pkgver ${versions[name] ?? '1.0'}`, '-bb', path.join(specs, spec)], { env: { HOME: work } });
  }
  for (const f of await readdir(path.join(top, 'RPMS', 'noarch'))) await cp(path.join(top, 'RPMS', 'noarch', f), path.join(repo, f));
  await run(['createrepo_c', '-q', '--update', repo]);
  return repo;
}

/** Writes a `.repo` file for `repoDir` under id `id` in `configDir`. */
export async function writeRepoFile(configDir: string, id: string, repoDir: string): Promise<void> {
  await mkdir(configDir, { recursive: true });
  await writeFile(path.join(configDir, `${id}.repo`), `[${id}]\nname=${id}\nbaseurl=file://${repoDir}\ngpgcheck=0\nmetadata_expire=0\n`);
}
