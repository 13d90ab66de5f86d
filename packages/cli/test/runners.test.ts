/**
 * The CLI side of one build, many runners: options that repeat (`--arch A --artifact N s3 …`, as
 * the original's argparse `append`) instead of swallowing the subcommand, `--enable-gz-peel`, and
 * the original's delayed meta merge (`cosa meta --artifact-json`, `cosa meta --finalize`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stableStringify } from '@cosa/schema';
import { startS3Server, tempDir, tempWorkdir, writeFakeBuild, type S3Server } from '@cosa/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from './_run.js';

let s3: S3Server;
const cleanups: Array<() => Promise<void>> = [];
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['cosa-builds'] });
});
afterAll(async () => {
  await s3?.stop();
  for (const c of cleanups) await c();
});
afterEach(() => vi.unstubAllEnvs());

const ID = '9.20261127.0';

/** A workdir with one build that has real files for `ostree` and each of `platforms`. */
async function workdir(platforms: string[] = [], extra: Record<string, unknown> = {}): Promise<string> {
  const wd = await tempWorkdir();
  cleanups.push(wd.cleanup);
  const meta = (await writeFakeBuild(wd.dir, ID, { extra })) as { images: Record<string, { path: string; sha256: string; size: number }> };
  const dir = join(wd.dir, 'builds', ID, 'x86_64');
  for (const p of ['ostree', ...platforms]) {
    const data = randomBytes(2000);
    const path = meta.images[p]?.path ?? `tiny-${ID}-${p}.x86_64.${p === 'gcp' ? 'tar.gz' : 'img'}`;
    await writeFile(join(dir, path), data);
    meta.images[p] = { path, sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
  }
  await writeFile(join(dir, 'meta.json'), stableStringify(meta));
  await writeFile(join(wd.dir, 'builds', 'builds.json'), stableStringify({ 'schema-version': '1.0.0', builds: [{ id: ID, arches: ['x86_64'] }] }));
  return wd.dir;
}

const remoteMeta = async (prefix: string) => {
  const res = await fetch(`${s3.endpoint}/cosa-builds/${prefix}/${ID}/x86_64/meta.json`);
  return (await res.json()) as { images: Record<string, { path: string }> };
};

describe('repeatable --arch / --artifact before the s3 subcommand', () => {
  it('accepts --build ID --arch A --artifact N s3 --endpoint-url URL BUCKET/PREFIX, as the original takes them', async () => {
    for (const [k, v] of Object.entries(s3.env)) vi.stubEnv(k, v);
    const wd = await workdir(['aws', 'gcp']);
    const r = await runCli(['buildupload', '--build', ID, '--arch', 'x86_64', '--artifact', 'ostree', '--artifact', 'aws', 's3', '--endpoint-url', s3.endpoint, 'cosa-builds/repeat'], wd);
    expect(r.stderr).not.toMatch(/unknown option|error/i);
    expect(r.code).toBe(0);
    expect(Object.keys((await remoteMeta('repeat')).images).sort()).toEqual(['aws', 'ostree']);
    // buildfetch takes the same repeatable options.
    const dst = await tempDir();
    cleanups.push(dst.cleanup);
    const f = await runCli(['buildfetch', '--url', 's3://cosa-builds/repeat', '--arch', 'x86_64', '--artifact', 'ostree', '--artifact', 'aws', '--json'], dst.dir);
    expect(f.code, f.stderr).toBe(0);
    expect((await readdir(join(dst.dir, 'builds', ID, 'x86_64'))).filter((n) => n.includes('-aws.') || n.includes('-ostree.'))).toHaveLength(2);
  });

  it('peels the gcp .tar.gz with --enable-gz-peel', async () => {
    for (const [k, v] of Object.entries(s3.env)) vi.stubEnv(k, v);
    const wd = await workdir(['gcp']);
    const r = await runCli(['buildupload', '--artifact', 'ostree', '--artifact', 'gcp', 's3', '--enable-gz-peel', '--endpoint-url', s3.endpoint, 'cosa-builds/peel'], wd);
    expect(r.code, r.stderr).toBe(0);
    const gcp = (await remoteMeta('peel')).images.gcp!;
    expect(gcp.path).toMatch(/gcp\.x86_64\.tar$/);
    const head = await fetch(`${s3.endpoint}/cosa-builds/peel/${ID}/x86_64/${gcp.path}`, { method: 'HEAD' });
    expect(head.headers.get('content-encoding')).toBe('gzip');
  });
});

describe('cosa meta: the delayed merge', () => {
  it('--artifact-json merges a fragment into meta.json by the merge rules, and refuses another ostree-commit', async () => {
    const wd = await workdir();
    const frag = join(wd, 'aws.json');
    await writeFile(frag, JSON.stringify({ images: { aws: { path: 'a.vmdk', sha256: 'b'.repeat(64), size: 1 } }, amis: [{ name: 'r', hvm: 'ami-1', snapshot: 'snap-1' }] }));
    const r = await runCli(['meta', '--build', ID, '--arch', 'x86_64', '--artifact-json', frag], wd);
    expect(r.code, r.stderr).toBe(0);
    const meta = JSON.parse(await readFile(join(wd, 'builds', ID, 'x86_64', 'meta.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(meta.images as object).sort()).toEqual(['aws', 'ostree']);
    expect(meta.amis).toHaveLength(1);
    const before = await readFile(join(wd, 'builds', ID, 'x86_64', 'meta.json'), 'utf8');
    await writeFile(frag, JSON.stringify({ 'ostree-commit': 'c'.repeat(64) }));
    const bad = await runCli(['meta', '--build', ID, '--arch', 'x86_64', '--artifact-json', frag], wd);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/ostree-commit differs/);
    expect(await readFile(join(wd, 'builds', ID, 'x86_64', 'meta.json'), 'utf8')).toBe(before);
  });

  it('writes meta.<artifact>.json while the build has delayed-meta-merge, and --finalize folds them in', async () => {
    const wd = await workdir([], { 'coreos-assembler.delayed-meta-merge': true });
    const dir = join(wd, 'builds', ID, 'x86_64');
    const metaBefore = await readFile(join(dir, 'meta.json'), 'utf8');
    for (const p of ['aws', 'azure']) {
      const frag = join(wd, `${p}.json`);
      await writeFile(frag, JSON.stringify({ images: { [p]: { path: `${p}.img`, sha256: 'd'.repeat(64), size: 2 } } }));
      const r = await runCli(['meta', '--build', ID, '--arch', 'x86_64', '--artifact-json', frag, '--artifact', p], wd);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`meta.${p}.json`);
    }
    expect(await readFile(join(dir, 'meta.json'), 'utf8')).toBe(metaBefore);
    const keep = await runCli(['meta', '--build', ID, '--arch', 'x86_64', '--finalize', '--no-clean'], wd);
    expect(keep.code, keep.stderr).toBe(0);
    expect((await readdir(dir)).filter((n) => /^meta\..+\.json$/.test(n)).sort()).toEqual(['meta.aws.json', 'meta.azure.json']);
    const fin = await runCli(['meta', '--build', ID, '--arch', 'x86_64', '--finalize'], wd);
    expect(fin.code, fin.stderr).toBe(0);
    const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(meta.images as object).sort()).toEqual(['aws', 'azure', 'ostree']);
    expect((await readdir(dir)).filter((n) => /^meta\..+\.json$/.test(n))).toEqual([]);
  });

  it('--finalize leaves a build without the delayed merge alone', async () => {
    const wd = await workdir();
    const dir = join(wd, 'builds', ID, 'x86_64');
    await mkdir(dir, { recursive: true });
    const stray = join(dir, 'meta.aws.json');
    await cp(join(dir, 'meta.json'), stray);
    const r = await runCli(['meta', '--build', ID, '--arch', 'x86_64', '--finalize'], wd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/not set, skipping merge/);
    await rm(stray);
  });
});
