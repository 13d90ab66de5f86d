import { chmod, lstat, mkdir, readFile, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '@cosa/schema';
import {
  describeInputs, FileHashCache, initRepo, inputsHash, 
  type ComposeOptions, type Composer,
} from '@cosa/ostree';
import { applyOverlay, overlayMode, parseStatoverride } from '../src/postprocess.js';
import { commitOverlay, layeredTreefile } from '../src/rpm-ostree.js';
import { run } from '@cosa/ostree/internal';
import { tempDir, writeTree } from './_tmp.js';

const fakeComposer: Pick<Composer, 'name' | 'version' | 'resolve'> = {
  name: 'dnf',
  version: async () => '4.14.0',
  resolve: async (o) => ({ packages: (o.manifest.packages ?? []).map((name) => ({ name, version: '1.0', release: '1', arch: 'noarch', checksum: `sha256:${name}` })) }),
};

async function config(manifest: Partial<Manifest> = {}) {
  const work = await tempDir('cosa-inputs-');
  const configDir = path.join(work, 'config');
  await writeTree(configDir, {
    'manifest.yaml': 'ref: x\n',
    'post.sh': 'echo hi\n',
    'motd/a': 'hello\n',
    'local.repo': '[local]\nbaseurl=file:///nowhere\n',
    'README.md': 'not an input\n',
    'tests/kola/basic': 'not an input\n',
    'overlay.d/10base/usr/lib/x': 'x\n',
    'overlay.d/20extra/etc/y': 'y\n',
    'overlay.d/NOTES': 'a file, not a layer\n',
  });
  const o: ComposeOptions = {
    manifest: { ref: 'x', packages: ['a', 'b'], 'postprocess-script': 'post.sh', 'add-files': [['motd', '/usr/share/motd']], ...manifest } as Manifest,
    configDir,
    files: ['manifest.yaml'],
    cacheDir: path.join(work, 'cache'),
    tmpDir: path.join(work, 'tmp'),
    repo: path.join(work, 'repo'),
    arch: 'x86_64',
    version: '',
    ref: 'x',
    overridesRootfs: path.join(work, 'overrides/rootfs'),
    overridesRpm: path.join(work, 'overrides/rpm'),
  };
  await writeTree(work, { 'overrides/rootfs/usr/share/o': 'o\n', 'overrides/rpm/x.rpm': 'rpm', 'overrides/rpm/repodata/repomd.xml': 'generated' });
  return { work, configDir, o };
}

describe('the inputs description', () => {
  it('lists every referenced file, overlay layer, override and package, and nothing else', async () => {
    const { o } = await config();
    const d = await describeInputs(o, fakeComposer, { variant: 'v1' });
    expect(Object.keys(d.files)).toEqual(['local.repo', 'manifest.yaml', 'motd', 'motd/a', 'post.sh']);
    expect(d.files['post.sh']).toMatchObject({ type: 'file', mode: '0644', size: 8 });
    expect(d.overlays.map((l) => l.name)).toEqual(['10base', '20extra']);
    expect(Object.keys(d.overlays[1]!.tree)).toEqual(['etc', 'etc/y']);
    expect(Object.keys(d.overrides.rootfs)).toEqual(['usr', 'usr/share', 'usr/share/o']);
    expect(Object.keys(d.overrides.rpm)).toEqual(['x.rpm']);
    expect(d.packages.map((p) => `${p.name} ${p.evr}`)).toEqual(['a 1.0-1', 'b 1.0-1']);
    expect(d).toMatchObject({ composer: { name: 'dnf', version: '4.14.0' }, arch: 'x86_64', variant: 'v1' });
  });

  it('hashes the same whatever the manifest key order, and ignores files nothing references', async () => {
    const { o, configDir } = await config();
    const a = inputsHash(await describeInputs(o, fakeComposer));
    const reordered = Object.fromEntries(Object.entries(o.manifest).reverse()) as Manifest;
    await writeFile(path.join(configDir, 'README.md'), 'edited\n');
    await writeFile(path.join(configDir, 'tests/kola/basic'), 'edited\n');
    expect(inputsHash(await describeInputs({ ...o, manifest: reordered }, fakeComposer))).toBe(a);
    await writeFile(path.join(configDir, 'post.sh'), 'echo ho\n');
    expect(inputsHash(await describeInputs(o, fakeComposer))).not.toBe(a);
  });

  it('takes the layers the manifest lists in ostree-layers, and names a missing one', async () => {
    const { o } = await config({ 'ostree-layers': ['overlay/20extra'] });
    expect((await describeInputs(o, fakeComposer)).overlays.map((l) => l.name)).toEqual(['20extra']);
    await expect(describeInputs({ ...o, manifest: { ...o.manifest, 'ostree-layers': ['overlay/99nope'] } }, fakeComposer)).rejects.toMatchObject({
      code: 'COSA_CONFIG_MISSING',
      message: expect.stringContaining('ostree-layers[0]'),
    });
  });

  it('names a referenced file that does not exist', async () => {
    const { o } = await config({ 'postprocess-script': 'missing.sh' });
    await expect(describeInputs(o, fakeComposer)).rejects.toMatchObject({ code: 'COSA_CONFIG_MISSING', message: expect.stringContaining('missing.sh') });
  });
});

describe('the file-hash cache', () => {
  it('reuses a hash only while device, inode, size, mtime and ctime are unchanged', async () => {
    const dir = await tempDir('cosa-fhc-');
    const f = path.join(dir, 'f');
    await writeFile(f, 'one\n');
    const old = new Date(Date.now() - 60_000);
    await utimes(f, old, old);
    // racyMs 0: cache even a file written just now (ctime cannot be put back to test it otherwise).
    const cache = new FileHashCache(path.join(dir, 'cache.json'), 0);
    const h1 = await cache.hash(f, await lstat(f, { bigint: true }));
    await cache.save();
    expect(JSON.parse(await readFile(path.join(dir, 'cache.json'), 'utf8')).entries[f].h).toBe(h1);
    // Same size, mtime put back: ctime still moves, so the cache must not answer.
    await writeFile(f, 'two\n');
    await utimes(f, old, old);
    const reloaded = await new FileHashCache(path.join(dir, 'cache.json'), 0).load();
    const h2 = await reloaded.hash(f, await lstat(f, { bigint: true }));
    expect(h2).not.toBe(h1);
  });

  it('does not keep a file written within the racy window', async () => {
    const dir = await tempDir('cosa-fhc-');
    const f = path.join(dir, 'f');
    await writeFile(f, 'one\n');
    const cache = new FileHashCache(path.join(dir, 'cache.json'));
    await cache.hash(f, await lstat(f, { bigint: true }));
    await cache.save();
    await expect(readFile(path.join(dir, 'cache.json'))).rejects.toThrow();
  });

  it('serves an unchanged file from the cache (a stale entry would show)', async () => {
    const dir = await tempDir('cosa-fhc-');
    const f = path.join(dir, 'f');
    await writeFile(f, 'one\n');
    const st = await lstat(f, { bigint: true });
    const cache = new FileHashCache(path.join(dir, 'cache.json'));
    // Pretend it was hashed long ago: the entry is kept, and a planted hash is what comes back.
    (cache as unknown as { entries: Map<string, { k: string; h: string }> }).entries.set(f, { k: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`, h: 'planted' });
    expect(await cache.hash(f, st)).toBe('planted');
  });
});

describe('overlay layers', () => {
  it('applies a layer with the original rules: umask 022, no setuid, read-only executables, statoverride, usr/etc into etc', async () => {
    const root = await tempDir('cosa-overlay-');
    const layer = path.join(root, 'layer');
    const tree = path.join(root, 'tree');
    await writeTree(layer, { 'usr/bin/tool': '#!/bin/sh\n', 'usr/etc/conf': 'c\n', 'etc/secret': 's\n', 'usr/lib/l': { link: 'tool' } });
    await writeFile(path.join(layer, 'statoverride'), '# comment\n=384 /etc/secret\n');
    await chmod(path.join(layer, 'usr/bin/tool'), 0o6777);
    await chmod(path.join(layer, 'usr/etc/conf'), 0o666);
    await mkdir(path.join(tree, 'etc'), { recursive: true });
    await writeFile(path.join(tree, 'etc/conf'), 'old\n');
    // Merged /usr: the layer's lib/ goes through the tree's lib -> usr/lib link.
    await mkdir(path.join(tree, 'usr/lib'), { recursive: true });
    await symlink('usr/lib', path.join(tree, 'lib'));
    await writeTree(layer, { 'lib/mod': 'm\n' });
    await applyOverlay(tree, layer);
    expect(await readlink(path.join(tree, 'lib'))).toBe('usr/lib');
    expect(await readFile(path.join(tree, 'usr/lib/mod'), 'utf8')).toBe('m\n');
    const mode = async (p: string) => ((await stat(path.join(tree, p))).mode & 0o7777).toString(8);
    expect(await mode('usr/bin/tool')).toBe('555');
    expect(await mode('etc/conf')).toBe('644');
    expect(await readFile(path.join(tree, 'etc/conf'), 'utf8')).toBe('c\n');
    expect(await mode('etc/secret')).toBe('600');
    expect(await readlink(path.join(tree, 'usr/lib/l'))).toBe('tool');
    await expect(lstat(path.join(tree, 'statoverride'))).rejects.toThrow();
    await expect(lstat(path.join(tree, 'usr/etc'))).rejects.toThrow();
  });

  it('parses statoverride lines and computes modes', () => {
    expect([...parseStatoverride('# x\n=420 /a\n73 b\nbad\n')]).toEqual([['a', { set: 420 }], ['b', { add: 73 }]]);
    expect(overlayMode(0o100775, false).toString(8)).toBe('555');
    expect(overlayMode(0o40777, true).toString(8)).toBe('755');
  });

  it('commits a layer as overlay/NAME owned by root, as rpm-ostree expects it', async () => {
    const root = await tempDir('cosa-overlay-');
    const repo = path.join(root, 'repo');
    await initRepo({ path: repo, mode: 'bare-user' });
    const layer = path.join(root, '05core');
    await writeTree(layer, { 'usr/lib/x': 'x\n', 'usr/bin/y': 'y\n' });
    await chmod(path.join(layer, 'usr/bin/y'), 0o775);
    await symlink('x', path.join(layer, 'usr/lib/z'));
    const a = await commitOverlay({ repo, name: '05core', layer, tmpDir: root });
    const ls = (await run(['ostree', `--repo=${repo}`, 'ls', '-R', 'overlay/05core'])).stdout;
    expect(ls).toMatch(/-00555 0 0 +\d+ \/usr\/bin\/y/);
    expect(ls).toMatch(/-00644 0 0 +\d+ \/usr\/lib\/x/);
    // The same content gives the same commit (fixed timestamp, no parent).
    expect(await commitOverlay({ repo, name: '05core', layer, tmpDir: root })).toBe(a);
  });
});

describe('rpm-ostree layers', () => {
  it('commits every overlay.d layer and overrides/rootfs, and writes a treefile listing them as the original does', async () => {
    const { o, work, configDir } = await config({ 'ostree-layers': ['overlay/10base'] });
    await initRepo({ path: o.repo, mode: 'bare-user' });
    const inputs = await describeInputs(o, fakeComposer);
    const scratch = path.join(work, 'scratch');
    await mkdir(scratch);
    const file = await layeredTreefile({ ...o, files: [path.join(configDir, 'manifest.yaml')] }, inputs, scratch);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      include: path.join(configDir, 'manifest.yaml'),
      // 10base is listed by the manifest already; overrides/rootfs overrides package files.
      'ostree-override-layers': ['overlay/cosa-overrides-rootfs'],
    });
    expect(await readFile(path.join(path.dirname(file), 'local.repo'), 'utf8')).toContain('[local]');
    const refs = (await run(['ostree', `--repo=${o.repo}`, 'refs'])).stdout.split('\n').sort();
    expect(refs).toEqual(expect.arrayContaining(['overlay/10base', 'overlay/cosa-overrides-rootfs']));
    expect((await run(['ostree', `--repo=${o.repo}`, 'cat', 'overlay/cosa-overrides-rootfs', '/usr/share/o'])).stdout).toBe('o');
  });

  it('lists the overlay.d layers in ostree-layers when the manifest does not', async () => {
    const { o, work, configDir } = await config();
    await rm(path.join(work, 'overrides/rootfs'), { recursive: true });
    await initRepo({ path: o.repo, mode: 'bare-user' });
    const inputs = await describeInputs(o, fakeComposer);
    const file = await layeredTreefile({ ...o, files: [path.join(configDir, 'manifest.yaml')] }, inputs, await tempDir());
    expect(JSON.parse(await readFile(file, 'utf8'))['ostree-layers']).toEqual(['overlay/10base', 'overlay/20extra']);
  });
});
