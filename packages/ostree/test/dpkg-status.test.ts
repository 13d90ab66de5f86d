/**
 * The dpkg status reader must give exactly what `dpkg-query -W -f '${Package} ${Version}\n'`
 * prints (the Debian composer's version, part of the input hash), or step aside. Each case runs
 * the real dpkg-query on the same database directory (DPKG_ADMINDIR) and compares.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultDpkgAdminDir, dpkgInstalledVersions, DPKG_ADMINDIR } from '../src/_dpkg-status.js';
import { createDebianComposer } from '../src/debian.js';
import { tempDir } from './_tmp.js';

/** What dpkg-query prints for `names` with `adminDir` as its database, as sorted lines. */
function dpkgQuery(names: string[], adminDir?: string): Promise<{ code: number; lines: string[] }> {
  const env = { ...process.env, ...(adminDir ? { DPKG_ADMINDIR: adminDir } : {}) };
  return new Promise((resolve) => {
    execFile('dpkg-query', ['-W', '-f', '${Package} ${Version}\n', ...names], { env }, (err, stdout) => {
      const code = err ? Number((err as { code?: unknown }).code ?? 2) : 0;
      resolve({ code, lines: stdout.split('\n').filter(Boolean).sort() });
    });
  });
}

const stanza = (fields: Record<string, string>): string => `${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`;
const installed = (pkg: string, version: string, arch = 'amd64', extra: Record<string, string> = {}): string =>
  stanza({ Package: pkg, Status: 'install ok installed', Priority: 'optional', Architecture: arch, ...extra, Version: version, Description: `the ${pkg} tool\n more text\n version: 9.9 (not a field)` });

async function adminDir(stanzas: string[], more: { available?: string; journal?: boolean } = {}): Promise<string> {
  const dir = await tempDir('cosa-dpkg-');
  await mkdir(path.join(dir, 'updates'), { recursive: true });
  await mkdir(path.join(dir, 'info'), { recursive: true });
  await writeFile(path.join(dir, 'status'), stanzas.join('\n'));
  await writeFile(path.join(dir, 'available'), more.available ?? '');
  if (more.journal) await writeFile(path.join(dir, 'updates', '0000'), installed('ostree', '2099.1-1'));
  return dir;
}

describe('dpkgInstalledVersions', () => {
  const base = [
    installed('base-files', '12.4+deb12u5'),
    installed('mmdebstrap', '1.3.5-7', 'all'),
    installed('ostree', '2022.7-2+deb12u1'),
    installed('libfoo1', '1:2.0-3', 'amd64', { 'Multi-Arch': 'same' }),
    installed('libfoo1', '1:2.0-3', 'i386', { 'Multi-Arch': 'same' }),
    stanza({ Package: 'oldtool', Status: 'deinstall ok config-files', Architecture: 'amd64', Version: '0.9-1' }),
  ];

  it('gives the lines dpkg-query prints: installed, all-arch, epochs, two arches of a Multi-Arch: same package, config-files', async () => {
    const dir = await adminDir(base);
    for (const names of [['mmdebstrap', 'ostree'], ['libfoo1'], ['oldtool', 'base-files'], ['ostree']]) {
      const q = await dpkgQuery(names, dir);
      expect(q.code).toBe(0);
      expect((await dpkgInstalledVersions(names, dir))?.sort(), names.join(' ')).toEqual(q.lines);
    }
    expect((await dpkgInstalledVersions(['libfoo1'], dir))?.length).toBe(2);
  });

  it('matches dpkg-query on this host for the Debian composer\'s tools', async () => {
    const names = ['mmdebstrap', 'ostree'];
    const q = await dpkgQuery(names);
    const mine = await dpkgInstalledVersions(names, DPKG_ADMINDIR);
    // Where the host lacks one of them the reader steps aside (dpkg-query exits 1 then).
    if (q.code !== 0) expect(mine).toBeUndefined();
    else expect(mine?.sort()).toEqual(q.lines);
  });

  it('steps aside where only dpkg-query knows the answer', async () => {
    // A package dpkg does not know: dpkg-query reports it (exit 1).
    const dir = await adminDir(base);
    expect((await dpkgQuery(['mmdebstrap', 'nosuchpkg'], dir)).code).toBe(1);
    expect(await dpkgInstalledVersions(['mmdebstrap', 'nosuchpkg'], dir)).toBeUndefined();
    // A pending update journal (dpkg-query replays it: here it changes ostree's version).
    const journal = await adminDir(base, { journal: true });
    expect((await dpkgQuery(['ostree'], journal)).lines).toEqual(['ostree 2099.1-1']);
    expect(await dpkgInstalledVersions(['ostree'], journal)).toBeUndefined();
    // The available file names the package (it can add an instance of another arch).
    const avail = await adminDir(base, { available: stanza({ Package: 'ostree', Architecture: 'arm64', Version: '2023.1-1' }) });
    expect(await dpkgInstalledVersions(['ostree'], avail)).toBeUndefined();
    // No version (purged, not-installed), or an explicit 0: epoch that dpkg-query drops.
    const odd = await adminDir([
      ...base,
      stanza({ Package: 'gone', Status: 'purge ok not-installed', Architecture: 'amd64' }),
      installed('zeroepoch', '0:1.0-1'),
    ]);
    expect((await dpkgQuery(['zeroepoch'], odd)).lines).toEqual(['zeroepoch 1.0-1']);
    expect(await dpkgInstalledVersions(['zeroepoch'], odd)).toBeUndefined();
    expect(await dpkgInstalledVersions(['gone'], odd)).toBeUndefined();
    // No status file at all.
    expect(await dpkgInstalledVersions(['ostree'], path.join(dir, 'missing'))).toBeUndefined();
  });

  it('is used only when DPKG_ROOT and DPKG_ADMINDIR leave dpkg-query on the default database', () => {
    expect(defaultDpkgAdminDir({})).toBe(DPKG_ADMINDIR);
    expect(defaultDpkgAdminDir({ DPKG_ADMINDIR: '/x' })).toBeUndefined();
    expect(defaultDpkgAdminDir({ DPKG_ROOT: '/x' })).toBeUndefined();
  });

  it('gives the Debian composer the version string dpkg-query gives it', async () => {
    const q = await dpkgQuery(['mmdebstrap', 'ostree']);
    expect(await createDebianComposer().version()).toBe(`cosa-debian/2 ${q.lines.join(' ')}`);
  });
});
