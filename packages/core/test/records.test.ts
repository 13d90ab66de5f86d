import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BuildsDir,
  cleanWorkdir,
  deleteTags,
  getImagePath,
  getMetaValue,
  hostArch,
  listBuilds,
  listTags,
  prune,
  setMetaValues,
  
  updateTag,
} from '@cosa/core';
import { splitMetaKey } from '../src/meta-keys.js';
import { isCosaError, SchemaError } from '@cosa/schema';
import { snapshotTree, tempWorkdir, writeFakeBuild, type TempWorkdir } from '@cosa/test-utils';
import { originalSchemaErrors } from './_ajv.js';

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** Builds `ids` (oldest first), one minute apart, written directly and inserted into builds.json. */
async function withBuilds(wd: TempWorkdir, ids: string[], arch = 'x86_64'): Promise<BuildsDir> {
  const b = new BuildsDir(join(wd.dir, 'builds'));
  for (const [i, id] of ids.entries()) {
    const meta = await writeFakeBuild(wd.dir, id, { arch, timestamp: `2026-01-01T00:${String(i).padStart(2, '0')}:00Z` });
    expect(originalSchemaErrors(meta)).toEqual([]);
    await b.insertBuild(id, arch);
  }
  return b;
}

describe('host arch', () => {
  it('maps the Node arch to the original names', () => {
    const expected: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
    expect(hostArch()).toBe(expected[process.arch] ?? process.arch);
  });
});

describe('meta keys', () => {
  it('splits dotted keys, keeping the first dot of coreos-assembler.* and fedora-coreos.* keys', () => {
    expect(splitMetaKey('images.qemu.path')).toEqual(['images', 'qemu', 'path']);
    expect(splitMetaKey('coreos-assembler.basearch')).toEqual(['coreos-assembler.basearch']);
    expect(splitMetaKey('coreos-assembler.container-config-git.commit')).toEqual(['coreos-assembler.container-config-git', 'commit']);
    expect(splitMetaKey('fedora-coreos.parent-version')).toEqual(['fedora-coreos.parent-version']);
    expect(() => splitMetaKey('images..path')).toThrow(/invalid key/);
  });

  it('gets values by dotted key from the latest build or a named one', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0', '1.1']);
    expect((await getMetaValue({ workdir: wd.dir, arch: 'x86_64', key: 'buildid' })).value).toBe('1.1');
    expect((await getMetaValue({ workdir: wd.dir, arch: 'x86_64', build: '1.0', key: 'coreos-assembler.basearch' })).value).toBe('x86_64');
    expect((await getMetaValue({ workdir: wd.dir, arch: 'x86_64', key: 'images.ostree.size' })).value).toBe(1024);
    expect(isCosaError(await caught(getMetaValue({ workdir: wd.dir, arch: 'x86_64', key: 'images.qemu.path' })), 'COSA_META_KEY')).toBe(true);
    expect(isCosaError(await caught(getMetaValue({ workdir: wd.dir, arch: 'x86_64', build: '9.9', key: 'name' })), 'COSA_BUILD_NOT_FOUND')).toBe(true);
  });

  it('sets values (strings, or typed where the schema needs it), validated and readable by the original schema', async () => {
    await using wd = await tempWorkdir();
    const b = await withBuilds(wd, ['1.0']);
    await setMetaValues({
      workdir: wd.dir,
      arch: 'x86_64',
      set: ['summary=hello world', 'coreos-assembler.config-dirty=true', 'coreos-assembler.image-genver=2', 'coreos-assembler.container-config-git.commit=abcdef12', 'coreos-assembler.container-config-git.origin=https://example.com/c.git'],
    });
    const meta = await b.getMeta('1.0', 'x86_64');
    expect(meta.summary).toBe('hello world');
    expect(meta['coreos-assembler.config-dirty']).toBe('true');
    expect(meta['coreos-assembler.image-genver']).toBe(2);
    expect(meta['coreos-assembler.container-config-git']).toEqual({ commit: 'abcdef12', origin: 'https://example.com/c.git' });
    expect(originalSchemaErrors(await readFile(b.metaPath('1.0', 'x86_64'), 'utf8'))).toEqual([]);
  });

  it('refuses a meta.json that is a symlink, without showing what it points to', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0']);
    const secret = join(wd.dir, 'secret.txt');
    await writeFile(secret, 'TOP-SECRET-CONTENT');
    const meta = join(wd.dir, 'builds', '1.0', 'x86_64', 'meta.json');
    await rm(meta);
    await symlink(secret, meta);
    const e = await caught(getMetaValue({ workdir: wd.dir, arch: 'x86_64', key: 'buildid' }));
    expect(isCosaError(e, 'COSA_PATH_UNSAFE')).toBe(true);
    expect((e as Error).message).toContain(meta);
    expect(JSON.stringify(e) + (e as Error).message).not.toContain('TOP-SECRET');
  });

  it.each([['__proto__.polluted=1'], ['constructor.prototype.polluted=1'], ['images.__proto__.polluted=1'], ['coreos-assembler.container-config-git.__proto__=x']])(
    'refuses %s and leaves Object.prototype and the workdir alone',
    async (assignment) => {
      await using wd = await tempWorkdir();
      await withBuilds(wd, ['1.0']);
      const before = await snapshotTree(wd.dir);
      const e = await caught(setMetaValues({ workdir: wd.dir, arch: 'x86_64', set: [assignment] }));
      expect(isCosaError(e, 'COSA_META_KEY')).toBe(true);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(await snapshotTree(wd.dir)).toEqual(before);
    },
  );

  it.each([
    ['an unknown top-level key', 'no-such-key=1', 'no-such-key'],
    ['a wrong type', 'coreos-assembler.image-genver=two', 'coreos-assembler.image-genver'],
    ['an artifact path outside the build', 'images.ostree.path=../../etc/passwd', 'images.ostree.path'],
    ['an absolute artifact path', 'images.ostree.path=/etc/passwd', 'images.ostree.path'],
  ])('writes nothing when a --set gives %s', async (_what, assignment, path) => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0']);
    const before = await snapshotTree(wd.dir);
    const e = await caught(setMetaValues({ workdir: wd.dir, arch: 'x86_64', set: ['summary=fine', assignment] }));
    expect(e).toBeInstanceOf(SchemaError);
    expect((e as SchemaError).file).toBe(join(wd.dir, 'builds', '1.0', 'x86_64', 'meta.json'));
    expect((e as SchemaError).issues.map((i) => `${i.path} ${i.message}`).join(' ')).toContain(path);
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('gives the absolute path of an artifact', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0']);
    expect(await getImagePath({ workdir: wd.dir, arch: 'x86_64', name: 'ostree' })).toBe(join(wd.dir, 'builds', '1.0', 'x86_64', 'tiny-1.0-ostree.x86_64.tar'));
    expect(isCosaError(await caught(getImagePath({ workdir: wd.dir, arch: 'x86_64', name: 'qemu' })), 'COSA_META_KEY')).toBe(true);
  });
});

describe('tags', () => {
  it('creates, moves, lists and deletes tags in builds.json', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0', '1.1']);
    const t = await updateTag({ workdir: wd.dir, tag: 'stable', description: 'first' });
    expect(t).toMatchObject({ name: 'stable', target: '1.1', description: 'first' });
    expect(t.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    await updateTag({ workdir: wd.dir, tag: 'stable', build: '1.0' });
    await updateTag({ workdir: wd.dir, tag: 'beta', build: '1.1' });
    expect((await listTags({ workdir: wd.dir })).map((x) => [x.name, x.target])).toEqual([['stable', '1.0'], ['beta', '1.1']]);
    expect((await deleteTags({ workdir: wd.dir, tag: 'stable' })).map((x) => x.name)).toEqual(['stable']);
    expect((await listTags({ workdir: wd.dir })).map((x) => x.name)).toEqual(['beta']);
    await deleteTags({ workdir: wd.dir, all: true });
    expect(await listTags({ workdir: wd.dir })).toEqual([]);
  });

  it('refuses an unknown build unless forced, and an unknown tag on delete, changing nothing', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1.0']);
    const before = await snapshotTree(wd.dir);
    expect(isCosaError(await caught(updateTag({ workdir: wd.dir, tag: 'x', build: '7.7' })), 'COSA_BUILD_NOT_FOUND')).toBe(true);
    expect(isCosaError(await caught(updateTag({ workdir: wd.dir, tag: 'x', build: '../7.7', force: true })), 'COSA_BUILD_ID_INVALID')).toBe(true);
    expect(isCosaError(await caught(deleteTags({ workdir: wd.dir, tag: 'nope' })), 'COSA_TAG_NOT_FOUND')).toBe(true);
    expect(await snapshotTree(wd.dir)).toEqual(before);
    expect((await updateTag({ workdir: wd.dir, tag: 'x', build: '7.7', force: true })).target).toBe('7.7');
  });
});

describe('prune', () => {
  it('keeps the newest 3 untagged builds plus tagged ones, rewrites builds.json, removes the rest', async () => {
    await using wd = await tempWorkdir();
    const b = await withBuilds(wd, ['1', '2', '3', '4', '5', '6']);
    await updateTag({ workdir: wd.dir, tag: 'keep', build: '1' });
    const r = await prune({ workdir: wd.dir });
    expect(r.deleted.sort()).toEqual(['2', '3']);
    expect(r.kept).toEqual(['6', '5', '4', '1']);
    expect(r.tagged).toEqual([{ id: '1', tags: ['keep'] }]);
    const data = await b.read();
    expect(data.builds.map((e) => e.id)).toEqual(['6', '5', '4', '1']);
    expect(data.tags?.map((t) => t.name)).toEqual(['keep']);
    await expect(lstat(join(wd.dir, 'builds', '2'))).rejects.toThrow();
    expect((await lstat(join(wd.dir, 'builds', '1'))).isDirectory()).toBe(true);
    expect(await readlink(join(wd.dir, 'builds', 'latest'))).toBe('6');
  });

  it('changes nothing on a dry run', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1', '2', '3', '4', '5']);
    const before = await snapshotTree(wd.dir);
    const r = await prune({ workdir: wd.dir, keepLastN: 1, dryRun: true });
    expect(r.deleted.sort()).toEqual(['1', '2', '3', '4']);
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('sorts by build timestamp from the directories, not builds.json order, and keeps every arch', async () => {
    await using wd = await tempWorkdir();
    await writeFakeBuild(wd.dir, 'old', { timestamp: '2025-01-01T00:00:00Z' });
    await writeFakeBuild(wd.dir, 'old', { arch: 'aarch64', timestamp: '2025-01-01T00:00:00Z' });
    await writeFakeBuild(wd.dir, 'new', { timestamp: '2026-01-01T00:00:00Z' });
    await writeFakeBuild(wd.dir, 'mid', { timestamp: '2025-06-01T00:00:00Z' });
    await writeFile(join(wd.dir, 'builds', 'stray-file'), 'x');
    await mkdir(join(wd.dir, 'builds', 'no-meta', 'x86_64'), { recursive: true });
    const warnings: string[] = [];
    const r = await prune({ workdir: wd.dir, keepLastN: 2, onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
    expect(r.kept).toEqual(['new', 'mid']);
    expect(r.deleted).toEqual(['old']);
    expect(warnings.join()).toContain('stray-file');
    const r2 = await prune({ workdir: wd.dir, keepLastN: 0 });
    expect(r2.deleted).toEqual([]);
    const b = new BuildsDir(join(wd.dir, 'builds'));
    expect(await b.list()).toEqual([
      { id: 'new', arches: ['x86_64'] },
      { id: 'mid', arches: ['x86_64'] },
    ]);
  });

  it('deletes exactly the --build ids and refuses tagged or unknown ones without changing anything', async () => {
    await using wd = await tempWorkdir();
    const b = await withBuilds(wd, ['1', '2', '3', '4', '5']);
    await updateTag({ workdir: wd.dir, tag: 'gold', build: '2' });
    const before = await snapshotTree(wd.dir);
    const tagged = await caught(prune({ workdir: wd.dir, builds: ['1', '2'] }));
    expect(isCosaError(tagged, 'COSA_PRUNE_TAGGED')).toBe(true);
    expect((tagged as Error).message).toContain('gold');
    expect(isCosaError(await caught(prune({ workdir: wd.dir, builds: ['42'] })), 'COSA_BUILD_NOT_FOUND')).toBe(true);
    expect(isCosaError(await caught(prune({ workdir: wd.dir, builds: ['../1'] })), 'COSA_BUILD_ID_INVALID')).toBe(true);
    expect(isCosaError(await caught(prune({ workdir: wd.dir, builds: ['1'], keepLastN: 2 })), 'COSA_USAGE')).toBe(true);
    expect(await snapshotTree(wd.dir)).toEqual(before);
    const r = await prune({ workdir: wd.dir, builds: ['5', '1'] });
    expect(r.deleted.sort()).toEqual(['1', '5']);
    expect((await b.list()).map((e) => e.id)).toEqual(['4', '3', '2']);
    expect(await readlink(join(wd.dir, 'builds', 'latest'))).toBe('4');
  });

  it('removes latest when no build is left', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1']);
    await prune({ workdir: wd.dir, builds: ['1'] });
    await expect(lstat(join(wd.dir, 'builds', 'latest'))).rejects.toThrow();
    expect((await new BuildsDir(join(wd.dir, 'builds')).read()).builds).toEqual([]);
  });

  it('fails on an invalid meta.json before changing anything, naming the file and key', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1', '2', '3', '4']);
    const file = join(wd.dir, 'builds', '2', 'x86_64', 'meta.json');
    const meta = JSON.parse(await readFile(file, 'utf8'));
    await writeFile(file, JSON.stringify({ ...meta, surprise: 1 }));
    const before = await snapshotTree(wd.dir);
    const e = await caught(prune({ workdir: wd.dir, keepLastN: 1 }));
    expect((e as SchemaError).file).toBe(file);
    expect((e as SchemaError).message).toContain('surprise');
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('deletes the pruned build refs from tmp/repo and keeps the others', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1', '2']);
    const repo = join(wd.dir, 'tmp', 'repo');
    const tree = join(wd.dir, 'tmp', 'tree');
    await mkdir(tree);
    await writeFile(join(tree, 'f'), 'x');
    execFileSync('ostree', ['init', `--repo=${repo}`, '--mode=archive']);
    for (const ref of ['1', '2', '10']) execFileSync('ostree', ['commit', `--repo=${repo}`, '-b', ref, tree]);
    const commands: string[][] = [];
    await prune({ workdir: wd.dir, keepLastN: 1, onProgress: (e) => e.type === 'command' && commands.push(e.argv) });
    // Through repo.ts's deleteRef: one `refs --delete` for the pruned build only (`1` is looked up as a ref, never as a checksum prefix).
    expect(commands.filter((c) => c[1] === 'refs')).toEqual([['ostree', 'refs', `--repo=${repo}`, '--delete', '--', '1']]);
    expect(execFileSync('ostree', ['refs', `--repo=${repo}`], { encoding: 'utf8' }).trim().split('\n').sort()).toEqual(['10', '2']);
  });
  it('still removes the pruned directories when tmp/repo is not an ostree repo, and reports it', async () => {
    await using wd = await tempWorkdir();
    const b = await withBuilds(wd, ['1', '2', '3']);
    await mkdir(join(wd.dir, 'tmp', 'repo'));
    const e = await caught(prune({ workdir: wd.dir, keepLastN: 1 }));
    expect(isCosaError(e, 'COSA_OSTREE_FAILED')).toBe(true);
    expect((e as Error).message).toContain('1: deleting its ref');
    expect((await b.list()).map((x) => x.id)).toEqual(['3']);
    await expect(lstat(join(wd.dir, 'builds', '1'))).rejects.toThrow();
    await expect(lstat(join(wd.dir, 'builds', '2'))).rejects.toThrow();
  });
});

describe('clean', () => {
  it('empties builds/ and tmp/, and cache/ only with all', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1']);
    await writeFile(join(wd.dir, 'tmp', 'junk'), 'x');
    await writeFile(join(wd.dir, 'cache', 'keep'), 'x');
    const removed = await cleanWorkdir({ workdir: wd.dir });
    expect(removed).toEqual(['builds/1', 'builds/builds.json', 'builds/latest', 'tmp/junk']);
    expect(await readFile(join(wd.dir, 'cache', 'keep'), 'utf8')).toBe('x');
    expect((await lstat(join(wd.dir, 'builds'))).isDirectory()).toBe(true);
    expect(await cleanWorkdir({ workdir: wd.dir, all: true })).toEqual(['cache/keep']);
  });
});

describe('list', () => {
  it('summarizes builds newest first with artifacts, config and tags, and marks builds missing locally', async () => {
    await using wd = await tempWorkdir();
    await withBuilds(wd, ['1', '2']);
    await setMetaValues({ workdir: wd.dir, arch: 'x86_64', set: ['coreos-assembler.container-config-git.commit=0123456789abcdef', 'coreos-assembler.container-config-git.origin=o', 'coreos-assembler.container-config-git.branch=main', 'coreos-assembler.container-config-git.dirty=true'] });
    await updateTag({ workdir: wd.dir, tag: 't', build: '1' });
    await new BuildsDir(join(wd.dir, 'builds')).insertBuild('3-remote', 'x86_64');
    const list = await listBuilds({ workdir: wd.dir, arch: 'x86_64' });
    expect(list.map((b) => [b.id, b.local])).toEqual([['3-remote', false], ['2', true], ['1', true]]);
    expect(list[1]).toMatchObject({ timestamp: '2026-01-01T00:01:00Z', artifacts: ['ostree'], config: { commit: '0123456789abcdef', branch: 'main', dirty: true }, tags: [] });
    expect(list[2]?.tags).toEqual(['t']);
  });
});
