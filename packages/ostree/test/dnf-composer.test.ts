import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Manifest, ProgressEvent } from '@cosa/schema';
import { createDnfComposer, listRefs, readCommitMeta, type ComposeOptions } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import { tempDir } from './_tmp.js';
import { buildRpmRepo, writeRepoFile } from './_rpm.js';

async function setup(manifest: Partial<Manifest> = {}, versions: Record<string, string> = {}) {
  const work = await tempDir('cosa-dnf-');
  const rpmRepo = await buildRpmRepo(work, versions);
  const configDir = path.join(work, 'src', 'config');
  await writeRepoFile(configDir, 'local', rpmRepo);
  await writeFile(path.join(configDir, 'manifest.yaml'), 'ref: test\n');
  const o: ComposeOptions = {
    manifest: { ref: 'cosa/x86_64/test', repos: ['local'], packages: ['cosa-test-app'], ...manifest } as Manifest,
    configDir,
    files: [path.join(configDir, 'manifest.yaml')],
    cacheDir: path.join(work, 'cache'),
    tmpDir: path.join(work, 'tmp'),
    repo: path.join(work, 'tmp', 'repo'),
    arch: 'x86_64',
    version: '1.0.0',
    ref: 'cosa/x86_64/test',
  };
  return { work, rpmRepo, configDir, o };
}

async function ls(repo: string, rev: string, p: string): Promise<string> {
  return (await run(['ostree', `--repo=${repo}`, 'ls', '-R', rev, p])).stdout;
}
async function cat(repo: string, rev: string, p: string): Promise<string> {
  return (await run(['ostree', `--repo=${repo}`, 'cat', rev, p])).stdout;
}
async function scratch(o: ComposeOptions): Promise<string[]> {
  return (await readdir(o.tmpDir).catch(() => [] as string[])).filter((n) => n !== 'repo');
}

describe('dnf composer', () => {
  it('composes the package closure from a local repo into an OSTree commit laid out for OSTree', { timeout: 120_000 }, async () => {
    const { configDir, o } = await setup({
      'add-files': [['motd', '/usr/share/cosa-test/motd']],
      'remove-files': ['usr/lib/cosa-test/app.txt'],
      postprocess: ['set -e\necho "posted" > "$1/usr/share/cosa-test/posted"'],
      'postprocess-script': 'post.sh',
    });
    await writeFile(path.join(configDir, 'motd'), 'welcome\n');
    await writeFile(path.join(configDir, 'post.sh'), 'echo scripted > usr/share/cosa-test/scripted\n');
    const overrides = path.join(o.tmpDir, '..', 'overrides', 'rootfs');
    await mkdir(path.join(overrides, 'usr/share/cosa-test'), { recursive: true });
    await writeFile(path.join(overrides, 'usr/share/cosa-test/override'), 'overridden\n');
    const composer = createDnfComposer();
    const r = await composer.compose({ ...o, overridesRootfs: overrides });
    expect(r).toMatchObject({ ref: 'cosa/x86_64/test', version: '1.0.0', changed: true });
    expect(r.packages.map((p) => `${p.name}-${p.version}-${p.release}.${p.arch}`)).toEqual([
      'cosa-test-app-1.0-1.noarch', 'cosa-test-base-1.0-1.noarch', 'cosa-test-filesystem-1.0-1.noarch',
    ]);
    const meta = await readCommitMeta({ repo: o.repo, rev: r.commit });
    expect(meta).toMatchObject({ version: '1.0.0', 'rpmostree.inputhash': r.inputHash });
    expect(await cat(o.repo, r.commit, '/usr/bin/cosa-hello')).toContain('hello from cosa-test');
    expect(await ls(o.repo, r.commit, '/usr/bin/cosa-hello')).toMatch(/^-00755 0 0/);
    expect(await cat(o.repo, r.commit, '/usr/etc/cosa-test.conf')).toBe('greeting=hello');
    expect(await cat(o.repo, r.commit, '/usr/share/cosa-test/motd')).toBe('welcome');
    expect(await cat(o.repo, r.commit, '/usr/share/cosa-test/posted')).toBe('posted');
    expect(await cat(o.repo, r.commit, '/usr/share/cosa-test/scripted')).toBe('scripted');
    expect(await cat(o.repo, r.commit, '/usr/share/cosa-test/override')).toBe('overridden');
    await expect(ls(o.repo, r.commit, '/usr/lib/cosa-test/app.txt')).rejects.toThrow();
    await expect(ls(o.repo, r.commit, '/etc')).rejects.toThrow();
    expect(await ls(o.repo, r.commit, '/usr/lib/sysimage/rpm')).toMatch(/rpmdb\.sqlite|Packages/);
    expect((await ls(o.repo, r.commit, '/var')).trim().split('\n')).toHaveLength(1);
    expect(await cat(o.repo, r.commit, '/usr/share/factory/var/lib/cosa-test/state')).toBe('state');
    const tmpfiles = await cat(o.repo, r.commit, '/usr/lib/tmpfiles.d/cosa-ostree.conf');
    expect(tmpfiles).toContain('C /var/lib/cosa-test - - - - /usr/share/factory/var/lib/cosa-test');
    expect(tmpfiles).toContain('d /var/home 0755 root root -');
    const top = await ls(o.repo, r.commit, '/');
    expect(top).toMatch(/\/home -> var\/home/);
    expect(top).toMatch(/\/ostree -> sysroot\/ostree/);
    expect(top).not.toMatch(/var\/log|var\/cache\/dnf|var\/lib\/dnf/);
    expect(await scratch(o)).toEqual([]);
  });

  it('computes a stable input hash without composing, which changes with a package version or a manifest line', { timeout: 120_000 }, async () => {
    const { work, o } = await setup();
    const composer = createDnfComposer();
    const a = await composer.inputHash(o);
    const events: ProgressEvent[] = [];
    const b = await composer.inputHash({ ...o, onProgress: (e) => events.push(e) });
    expect(b.inputHash).toBe(a.inputHash);
    // Unchanged repo metadata: the resolution comes from the cache, dnf is not run.
    expect(events.filter((e) => e.type === 'command')).toEqual([]);
    expect(a.inputHash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.packages.map((p) => p.name)).toEqual(['cosa-test-app', 'cosa-test-base', 'cosa-test-filesystem']);
    expect(a.packages[0]!.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await listRefs({ repo: o.repo }).catch(() => [])).toEqual([]);
    const edited = await composer.inputHash({ ...o, manifest: { ...o.manifest, 'remove-files': ['usr/share/doc'] } });
    expect(edited.inputHash).not.toBe(a.inputHash);
    await writeFile(o.files[0]!, 'ref: test\n# edited\n');
    const fileEdited = await composer.inputHash(o);
    expect(fileEdited.inputHash).not.toBe(a.inputHash);
    await buildRpmRepo(work, { 'cosa-test-base': '1.1' });
    const bumped = await composer.inputHash(o);
    expect(bumped.packages.find((p) => p.name === 'cosa-test-base')?.version).toBe('1.1');
    expect(bumped.inputHash).not.toBe(fileEdited.inputHash);
  });

  it('reuses the previous commit when the input hash is unchanged', { timeout: 120_000 }, async () => {
    const { o } = await setup();
    const composer = createDnfComposer();
    const first = await composer.compose(o);
    const again = await composer.compose({ ...o, version: '1.0.1', parentCommit: first.commit });
    expect(again).toMatchObject({ commit: first.commit, changed: false, inputHash: first.inputHash, version: '1.0.0' });
    const next = await composer.compose({ ...o, manifest: { ...o.manifest, packages: ['cosa-test-app', 'cosa-test-extra'] }, version: '1.0.2', parentCommit: first.commit });
    expect(next.changed).toBe(true);
    expect(next.packages.map((p) => p.name)).toContain('cosa-test-extra');
  });

  it('composes offline from what fetch downloaded', { timeout: 120_000 }, async () => {
    const { rpmRepo, o } = await setup();
    const composer = createDnfComposer();
    await composer.fetch(o);
    const online = await composer.inputHash(o);
    await rm(rpmRepo, { recursive: true });
    const r = await composer.compose({ ...o, offline: true });
    expect(r.packages.map((p) => p.name)).toEqual(['cosa-test-app', 'cosa-test-base', 'cosa-test-filesystem']);
    expect(r.inputHash).not.toBe('');
    expect(online.packages.map((p) => p.checksum)).toEqual((await composer.inputHash({ ...o, offline: true })).packages.map((p) => p.checksum));
  });

  it('names an unknown package and the repos searched, and leaves no ref or scratch behind', { timeout: 120_000 }, async () => {
    const { o } = await setup({ packages: ['cosa-test-app', 'no-such-package'] });
    const composer = createDnfComposer();
    const err = await composer.compose(o).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_COMPOSE_PACKAGE_NOT_FOUND' });
    expect((err as Error).message).toContain('no-such-package');
    expect((err as Error).message).toContain('local');
    expect(await listRefs({ repo: o.repo })).toEqual([]);
    expect(await scratch(o)).toEqual([]);
  });

  it('fails with the stderr of a failing postprocess script, and leaves no ref or scratch behind', { timeout: 120_000 }, async () => {
    const { o } = await setup({ postprocess: ['echo "the disk is on fire" >&2; exit 7'] });
    const err = await createDnfComposer().compose(o).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_COMPOSE_FAILED' });
    expect((err as Error).message).toContain('the disk is on fire');
    expect(await listRefs({ repo: o.repo })).toEqual([]);
    expect(await scratch(o)).toEqual([]);
  });

  it('reports its dnf version', async () => {
    expect(await createDnfComposer().version()).toMatch(/^\d+\.\d+/);
  });
});
