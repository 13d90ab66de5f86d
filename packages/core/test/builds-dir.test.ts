import { spawn } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildsDir, Workdir } from '@cosa/core';
import { mergeMetaDocuments, META_STAMP_KEY } from '../src/builds-dir.js';
import { isCosaError, SchemaError, type MetaJson } from '@cosa/schema';
import { fakeMeta, snapshotTree, tempWorkdir, writeFakeBuild } from '@cosa/test-utils';
import { bundleChild } from './_child.js';
import { originalSchemaErrors } from './_ajv.js';

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

describe('BuildsDir', () => {
  it('reads an absent builds.json as an empty 1.0.0 document and writes nothing', async () => {
    await using wd = await tempWorkdir();
    const before = await snapshotTree(wd.dir);
    const b = new BuildsDir(join(wd.dir, 'builds'));
    expect(await b.read()).toEqual({ 'schema-version': '1.0.0', builds: [] });
    expect(await b.latest()).toBeUndefined();
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('inserts builds newest first, appends a second arch, and points latest at the newest with a relative link', async () => {
    await using wd = await tempWorkdir();
    const b = (await Workdir.open(wd.dir)).builds;
    await b.insertBuild('1.0', 'x86_64');
    await b.insertBuild('1.1', 'x86_64');
    const data = await b.insertBuild('1.0', 'aarch64');
    expect(data.builds).toEqual([
      { id: '1.1', arches: ['x86_64'] },
      { id: '1.0', arches: ['x86_64', 'aarch64'] },
    ]);
    expect(data.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(await readlink(join(wd.dir, 'builds', 'latest'))).toBe('1.1');
    expect(await b.latest('aarch64')).toBe('1.0');
    const text = await readFile(join(wd.dir, 'builds', 'builds.json'), 'utf8');
    expect(text).toMatch(/^\{\n {4}"builds"/);
    expect(text.endsWith('}\n')).toBe(true);
    expect(((await lstat(join(wd.dir, 'builds', 'builds.json'))).mode & 0o777).toString(8)).toBe('644');
  });

  it('refuses to insert an arch a build already has, leaving builds.json as it was', async () => {
    await using wd = await tempWorkdir();
    const b = new BuildsDir(join(wd.dir, 'builds'));
    await b.insertBuild('1.0', 'x86_64');
    const before = await snapshotTree(wd.dir);
    const e = await caught(b.insertBuild('1.0', 'x86_64'));
    expect(isCosaError(e, 'COSA_BUILD_EXISTS')).toBe(true);
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it.each(['../x', 'a/b', '/abs', '..', '.', ''])('rejects the build id %j as unsafe without touching disk', async (id) => {
    await using wd = await tempWorkdir();
    const before = await snapshotTree(wd.dir);
    const b = new BuildsDir(join(wd.dir, 'builds'));
    expect(isCosaError(await caught(b.insertBuild(id, 'x86_64')), 'COSA_BUILD_ID_INVALID')).toBe(true);
    expect(isCosaError(await caught(b.getMeta(id, 'x86_64')), 'COSA_BUILD_ID_INVALID')).toBe(true);
    expect(isCosaError(await caught(b.insertBuild('1.0', id)), 'COSA_BUILD_ID_INVALID')).toBe(true);
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('writes meta.json validated, stable, and readable by the original schema', async () => {
    await using wd = await tempWorkdir();
    const b = new BuildsDir(join(wd.dir, 'builds'));
    const meta = fakeMeta('2.0') as MetaJson;
    await b.writeMeta('2.0', 'x86_64', meta);
    const text = await readFile(join(wd.dir, 'builds', '2.0', 'x86_64', 'meta.json'), 'utf8');
    expect(originalSchemaErrors(text)).toEqual([]);
    expect(await b.getMeta('2.0', 'x86_64')).toEqual(meta);
    expect(text).toContain('\n    "buildid": "2.0",\n');
  });

  it('writes nothing when the meta.json is invalid, naming the file and the key', async () => {
    await using wd = await tempWorkdir();
    const b = new BuildsDir(join(wd.dir, 'builds'));
    const before = await snapshotTree(wd.dir);
    const bad = { ...fakeMeta('2.0'), 'no-such-key': true } as unknown as MetaJson;
    expect(originalSchemaErrors(bad).length).toBeGreaterThan(0);
    const e = await caught(b.writeMeta('2.0', 'x86_64', bad));
    expect(e).toBeInstanceOf(SchemaError);
    expect((e as SchemaError).file).toBe(join(wd.dir, 'builds', '2.0', 'x86_64', 'meta.json'));
    expect((e as SchemaError).message).toContain('no-such-key');
    const wrongType = { ...fakeMeta('2.0'), 'coreos-assembler.image-genver': 'one' } as unknown as MetaJson;
    expect(((await caught(b.writeMeta('2.0', 'x86_64', wrongType))) as SchemaError).issues[0]?.path).toBe('coreos-assembler.image-genver');
    const mismatched = fakeMeta('2.1') as MetaJson;
    expect(isCosaError(await caught(b.writeMeta('2.0', 'x86_64', mismatched)), 'COSA_BUILD_ID_INVALID')).toBe(true);
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('refuses a builds.json of another major version without changing it', async () => {
    await using wd = await tempWorkdir();
    await writeFile(join(wd.dir, 'builds', 'builds.json'), JSON.stringify({ 'schema-version': '0.0.1', builds: ['1.0'] }));
    const before = await snapshotTree(wd.dir);
    const b = new BuildsDir(join(wd.dir, 'builds'));
    const e = await caught(b.insertBuild('1.1', 'x86_64'));
    expect(isCosaError(e, 'COSA_SCHEMA_VERSION')).toBe(true);
    expect((e as SchemaError).issues[0]?.path).toBe('schema-version');
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });
});

describe('meta.json merge', () => {
  const base = () => ({ ...fakeMeta('3.0'), [META_STAMP_KEY]: 1000, pkgdiff: ['a'], images: { ...(fakeMeta('3.0').images as { ostree: unknown }) } });

  it('merges objects recursively, unions lists, and stamps the result', async () => {
    await using wd = await tempWorkdir();
    const b = new BuildsDir(join(wd.dir, 'builds'));
    await b.writeMeta('3.0', 'x86_64', base() as MetaJson);
    const t0 = Date.now() * 1e6;
    const qemu = { path: 'tiny-3.0-qemu.x86_64.qcow2', sha256: 'a'.repeat(64), size: 10 };
    const merged = await b.mergeMeta('3.0', 'x86_64', { images: { qemu }, pkgdiff: ['a', 'b'], summary: 'new' });
    expect(merged.images?.qemu).toEqual(qemu);
    expect(merged.images?.ostree).toEqual(base().images.ostree);
    expect(merged.pkgdiff).toEqual(['a', 'b']);
    expect(merged.summary).toBe('new');
    expect(merged[META_STAMP_KEY]).toBeGreaterThanOrEqual(t0);
    expect(originalSchemaErrors(await readFile(b.metaPath('3.0', 'x86_64'), 'utf8'))).toEqual([]);
  });

  it('lets the side with the newer meta-stamp win scalar conflicts', () => {
    const disk = { ...base(), summary: 'disk', [META_STAMP_KEY]: 2000 };
    expect(mergeMetaDocuments(disk, { summary: 'old', [META_STAMP_KEY]: 1500 }).summary).toBe('disk');
    expect(mergeMetaDocuments(disk, { summary: 'newer', [META_STAMP_KEY]: 2500 }).summary).toBe('newer');
    expect(mergeMetaDocuments(disk, { summary: 'unstamped' }).summary).toBe('unstamped');
  });

  it.each(['ostree-commit', 'ostree-content-checksum', 'coreos-assembler.image-config-checksum'])(
    'refuses to merge when %s differs and leaves meta.json unchanged',
    async (key) => {
      await using wd = await tempWorkdir();
      const b = new BuildsDir(join(wd.dir, 'builds'));
      await b.writeMeta('3.0', 'x86_64', { ...base(), 'ostree-content-checksum': 'c'.repeat(64), 'coreos-assembler.image-config-checksum': 'd'.repeat(64) } as MetaJson);
      const before = await snapshotTree(wd.dir);
      const e = await caught(b.mergeMeta('3.0', 'x86_64', { [key]: 'f'.repeat(64), summary: 'x' }));
      expect(isCosaError(e, 'COSA_META_MERGE_CONFLICT')).toBe(true);
      expect((e as Error).message).toContain(key);
      expect(await snapshotTree(wd.dir)).toEqual(before);
    },
  );

  it('refuses to merge a fragment from a different config commit', () => {
    const git = (commit: string) => ({ 'coreos-assembler.container-config-git': { commit, origin: 'o' } });
    expect(() => mergeMetaDocuments({ ...base(), ...git('abcdef1') }, git('1234567'))).toThrow(/container-config-git/);
  });

  it('writes nothing when the merged document would be invalid', async () => {
    await using wd = await tempWorkdir();
    const b = new BuildsDir(join(wd.dir, 'builds'));
    await b.writeMeta('3.0', 'x86_64', base() as MetaJson);
    const before = await snapshotTree(wd.dir);
    const e = await caught(b.mergeMeta('3.0', 'x86_64', { images: { qemu: { path: '../escape.qcow2', sha256: 'a'.repeat(64) } } }));
    expect((e as SchemaError).issues[0]?.path).toBe('images.qemu.path');
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });
});

describe('concurrent writers', () => {
  let child: { file: string; cleanup(): Promise<void> };
  beforeAll(async () => {
    child = await bundleChild('./_insert-child.ts');
  }, 60_000);
  afterAll(async () => {
    await child?.cleanup();
  });

  const runChild = (args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const p = spawn(process.execPath, [child.file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (c: Buffer) => (err += c.toString()));
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child exited ${code}: ${err}`))));
    });

  it('loses no update when several processes insert builds and merge meta.json at once', async () => {
    await using wd = await tempWorkdir();
    const buildsDir = join(wd.dir, 'builds');
    await writeFakeBuild(wd.dir, 'shared');
    const N = 6;
    const per = 8;
    await Promise.all(Array.from({ length: N }, (_, i) => runChild([buildsDir, `p${i}`, String(per), 'shared'])));
    const b = new BuildsDir(buildsDir);
    const ids = (await b.list()).map((e) => e.id);
    expect(ids).toHaveLength(N * per);
    for (let i = 0; i < N; i++) for (let j = 0; j < per; j++) expect(ids).toContain(`p${i}.${j}`);
    // Each process inserted its own builds in order, so its later builds come first.
    for (let i = 0; i < N; i++) expect(ids.indexOf(`p${i}.${per - 1}`)).toBeLessThan(ids.indexOf(`p${i}.0`));
    const meta = await b.getMeta('shared', 'x86_64');
    expect(new Set(meta.pkgdiff)).toEqual(new Set(Array.from({ length: N * per }, (_, k) => `p${Math.floor(k / per)}-${k % per}`)));
    expect(originalSchemaErrors(meta)).toEqual([]);
    expect(await readlink(join(buildsDir, 'latest'))).toBe(ids[0]);
    const leftovers = (await snapshotTree(buildsDir));
    expect(Object.keys(leftovers).filter((p) => p.includes('.tmp-') || p.includes('.lock'))).toEqual([]);
  }, 120_000);
});

describe('Workdir.open', () => {
  it('opens a workdir and exposes its paths', async () => {
    await using wd = await tempWorkdir();
    const w = await Workdir.open(wd.dir);
    expect(w.configDir).toBe(join(wd.dir, 'src', 'config'));
    expect(w.buildsDir).toBe(join(wd.dir, 'builds'));
    expect(w.cacheDir).toBe(join(wd.dir, 'cache'));
    expect(w.tmpDir).toBe(join(wd.dir, 'tmp'));
    expect(w.repo).toBe(join(wd.dir, 'tmp', 'repo'));
    expect(w.builds.file).toBe(join(wd.dir, 'builds', 'builds.json'));
  });

  it('refuses a directory that is not a workdir, naming it and what is missing', async () => {
    await using wd = await tempWorkdir();
    const plain = join(wd.dir, 'tmp', 'plain');
    await mkdir(plain);
    const e = await caught(Workdir.open(plain));
    expect(isCosaError(e, 'COSA_WORKDIR_INVALID')).toBe(true);
    expect((e as Error).message).toContain(plain);
    expect((e as Error).message).toContain('src/config');
  });
});
