/**
 * The store moves bytes: uploadBuildObjects only reads the build dir it is given, and
 * fetchBuildObjects only writes into its staging dir. The workdir bookkeeping (builds.json,
 * latest, tmp/builds-source.*) is core's and is tested there (packages/core/test/fetch.test.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBuildsJson, serializeMetaJson, type MetaJson } from '@cosa/schema';
import { afterAll, describe, expect, it } from 'vitest';
import { fetchBuildObjects, openBuildStore, readRemoteBuilds, uploadBuildObjects } from '@cosa/store';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cosa-store-objects-'));
  dirs.push(d);
  return d;
}

/** Writes `<root>/<id>/<arch>/` with an ostree artifact and a valid meta.json. */
async function writeBuild(root: string, id: string, arch: string): Promise<{ buildDir: string; file: string; data: Buffer }> {
  const buildDir = join(root, id);
  await mkdir(join(buildDir, arch), { recursive: true });
  const data = randomBytes(3000);
  const file = `testos-${id}-ostree.${arch}.tar`;
  await writeFile(join(buildDir, arch, file), data);
  const meta = {
    buildid: id, name: 'testos', 'ostree-commit': 'a'.repeat(64), 'ostree-timestamp': '2026-11-27T00:00:00Z', 'ostree-version': id,
    'coreos-assembler.basearch': arch, 'coreos-assembler.build-timestamp': '2026-11-27T00:00:00Z',
    images: { ostree: { path: file, sha256: createHash('sha256').update(data).digest('hex'), size: data.length } },
  } as MetaJson;
  await writeFile(join(buildDir, arch, 'meta.json'), serializeMetaJson(meta));
  return { buildDir, file, data };
}

/** Lists every path under `root`, sorted. */
async function tree(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).map(String).sort();
}

describe('store functions move bytes only', () => {
  it('uploads a build dir and fetches it into a staging dir without touching anything else', async () => {
    const id = '42.20261127.0';
    const arch = 'x86_64';
    const { buildDir, file, data } = await writeBuild(await dir(), id, arch);
    const before = await tree(buildDir);

    const storeDir = await dir();
    const store = openBuildStore(storeDir);
    const up = await uploadBuildObjects({ store, buildId: id, buildDir, arches: [arch], local: { 'schema-version': '1.0.0', builds: [{ id, arches: [arch] }] } });
    expect(up.remoteBuilds?.builds.builds.map((b) => b.id)).toEqual([id]);
    expect(parseBuildsJson(await readFile(join(storeDir, 'builds.json'), 'utf8'), 'builds.json').builds[0]?.arches).toEqual([arch]);
    expect(await tree(buildDir)).toEqual(before);

    const remote = await readRemoteBuilds(store);
    expect(remote?.builds.builds[0]?.id).toBe(id);
    const staging = await dir();
    const target = await dir();
    const got = await fetchBuildObjects({ store, remote: remote!, stagingDir: staging, targetDir: (b, a) => join(target, b, a), arch: [arch], artifacts: 'all' });
    expect(got.buildId).toBe(id);
    expect(got.files.find((f) => f.artifact === 'ostree')?.path).toBe(join(target, id, arch, file));
    expect(await readFile(join(staging, arch, file))).toEqual(data);
    expect(await tree(staging)).toEqual([arch, `${arch}/${file}`, `${arch}/meta.json`].sort());
    // Nothing in the target: moving the staged files into place is the caller's business.
    expect(await tree(target)).toEqual([]);
  });

  it('refuses to merge builds.json without the local one', async () => {
    const { buildDir } = await writeBuild(await dir(), '1', 'x86_64');
    const store = openBuildStore(await dir());
    const err = await uploadBuildObjects({ store, buildId: '1', buildDir, arches: ['x86_64'] }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('COSA_USAGE');
    const dry = await uploadBuildObjects({ store, buildId: '1', buildDir, arches: ['x86_64'], dryRun: true });
    expect(dry.remoteBuilds).toBeUndefined();
  });
});
