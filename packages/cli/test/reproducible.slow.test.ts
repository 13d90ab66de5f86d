/**
 * Reproducible builds, SBOM and diff with the bundled Debian example, as a user runs them:
 * `cosa build --version 1.0.0 qemu metal` in a fresh workdir, then `cosa verify-reproducible`
 * rebuilds it in a second fresh workdir (later, same cache) and the bytes are compared here too;
 * the SBOM is checked against dpkg-query over the commit's own database; a second build with one
 * more package gives `cosa diff` something real to report.
 *
 * Real mmdebstrap, ostree, disk writer. Both workdirs share $COSA_TEST_CACHE (base tree,
 * initramfs, .debs), so this checks everything a build does after those cached steps.
 * The example's image.yaml has an ext4 root (an xfs root is written by the kernel and is not
 * byte-reproducible: docs/reproducible.md); with ext4 the whole qemu and metal disks are.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, cpSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMetaJson, type MetaJson } from '@cosa/schema';
import { checkoutSubpath } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import type { BuildDiff, VerifyReproducibleResult } from '@cosa/core';
import { tempDir, testWorkdirCache } from '@cosa/test-utils';
import { runCli } from './_run.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const testCache = testWorkdirCache();
const ARCH = 'x86_64';

let base: { dir: string; cleanup(): Promise<void> };
let config: string;
let wd: string;

function git(...args: string[]): void {
  execFileSync('git', ['-C', config, '-c', 'user.name=cosa-test', '-c', 'user.email=test@cosa.invalid', ...args], { stdio: 'ignore' });
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

async function readMeta(dir: string, id: string): Promise<MetaJson> {
  return parseMetaJson(await readFile(join(dir, 'builds', id, ARCH, 'meta.json'), 'utf8'));
}

/** The result line of `--json` output (JSON Lines: progress events, then the result). */
function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!) as T;
}

beforeAll(async () => {
  base = await tempDir('cosa-repro-');
  config = join(base.dir, 'config');
  wd = join(base.dir, 'wd');
  cpSync(join(repoRoot, 'examples/debian'), config, { recursive: true });
  // The example as shipped: its ext4 root is what makes the whole disk reproducible.
  expect(await readFile(join(config, 'image.yaml'), 'utf8')).toMatch(/^rootfs: ext4$/m);
  execFileSync('git', ['init', '-q', '-b', 'main', config]);
  git('add', '-A');
  git('commit', '-qm', 'example config');
  await mkdir(wd, { recursive: true });
  const r = await runCli(['init', config], wd);
  expect(r.code, r.stderr).toBe(0);
  await rm(join(wd, 'cache'), { recursive: true });
  await symlink(testCache, join(wd, 'cache'));
});

afterAll(async () => {
  await base?.cleanup();
});

describe('reproducible builds, SBOM and diff (bundled Debian example)', () => {
  let meta: MetaJson;
  let verify: VerifyReproducibleResult;

  it('builds 1.0.0 (ostree, qemu, metal, sbom) in a fresh workdir', async () => {
    const r = await runCli(['build', '--version', '1.0.0', 'qemu', 'metal'], wd);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    meta = await readMeta(wd, '1.0.0');
    expect(Object.keys(meta.images ?? {}).sort()).toEqual(['metal', 'ostree', 'qemu', 'sbom']);
    const sbom = meta.images!.sbom!;
    expect(sbom.path).toBe('cosa-debian-1.0.0-sbom.x86_64.spdx.json');
    expect(await sha256(join(wd, 'builds/1.0.0', ARCH, sbom.path))).toBe(sbom.sha256);
    // The commit's timestamp is the config's last git commit (SOURCE_DATE_EPOCH), not the build time.
    const ct = Number(execFileSync('git', ['-C', config, 'log', '-1', '--format=%ct']).toString().trim());
    expect(Date.parse(meta['ostree-timestamp'])).toBe(ct * 1000);
  });

  it('lists in the SBOM exactly the packages dpkg-query reports for the commit', async () => {
    const doc = JSON.parse(await readFile(join(wd, 'builds/1.0.0', ARCH, meta.images!.sbom!.path), 'utf8')) as { packages: Array<{ name: string; versionInfo: string; checksums?: unknown[]; licenseDeclared: string }> };
    const [os, ...pkgs] = doc.packages;
    expect(os).toMatchObject({ name: 'cosa-debian', versionInfo: '1.0.0' });
    const admin = join(base.dir, 'dpkg');
    expect(await checkoutSubpath({ repo: join(wd, 'tmp/repo'), rev: meta['ostree-commit'], subpath: '/usr/share/factory/var/lib/dpkg', dest: admin })).toBe(true);
    const q = await run(['dpkg-query', `--admindir=${admin}`, '-W', '-f', '${db:Status-Status} ${Package} ${Version}\\n']);
    const installed = q.stdout.trim().split('\n').filter((l) => l.startsWith('installed ')).map((l) => l.slice(10)).sort();
    expect(installed.length).toBeGreaterThan(100);
    expect(pkgs.map((p) => `${p.name} ${p.versionInfo}`).sort()).toEqual(installed);
    expect(pkgs.find((p) => p.name === 'bash')?.licenseDeclared).toMatch(/GPL-3\.0-or-later/);
  });

  it('rebuilds 1.0.0 in a second fresh workdir with the same commit, ostree tar, SBOM and qemu and metal disk bytes', async () => {
    const r = await runCli(['verify-reproducible', '--keep', '--json'], wd);
    verify = lastJson<VerifyReproducibleResult>(r.stdout);
    console.log(`verify-reproducible: rebuild ${verify.rebuildMs} ms, total ${verify.durationMs} ms`);
    for (const a of verify.artifacts) console.log(`  ${a.key}: ${a.identical ? 'identical' : `differs in ${a.where ?? '?'}`}${(a.regions ?? []).map((g) => `\n    ${g.region}: ${g.bytes} of ${g.size} bytes differ`).join('')}`);
    expect(verify.commit.identical, JSON.stringify(verify.commit)).toBe(true);
    // Judged here too, not only by verify-reproducible itself.
    const again = join(verify.scratch, 'builds', '1.0.0', ARCH);
    for (const key of ['ostree', 'sbom', 'qemu', 'metal'] as const) {
      const p = meta.images![key]!.path;
      expect(await sha256(join(again, p)), `${key} (${p})`).toBe(await sha256(join(wd, 'builds/1.0.0', ARCH, p)));
    }
    // meta.json records the same checksums in both workdirs (metal is raw: its sha256 is the disk's).
    const metaAgain = await readMeta(verify.scratch, '1.0.0');
    for (const key of ['qemu', 'metal'] as const) expect(metaAgain.images![key]!.sha256, key).toBe(meta.images![key]!.sha256);
    for (const key of ['ostree', 'sbom', 'qemu', 'metal']) expect(verify.artifacts.find((a) => a.key === key)?.identical, key).toBe(true);
    expect(verify.reproducible).toBe(true);
    expect(r.code).toBe(0);
    await rm(verify.scratch, { recursive: true, force: true });
  });

  it('reports the packages and files that changed between two real builds', async () => {
    const man = join(config, 'manifest.yaml');
    await writeFile(man, (await readFile(man, 'utf8')).replace(/^packages:\n/m, 'packages:\n  - jq\n'));
    git('commit', '-qam', 'add jq');
    const b = await runCli(['build', '--version', '1.0.1', 'ostree'], wd);
    expect(b.code, b.stderr.slice(-3000)).toBe(0);

    const r = await runCli(['diff', '--json'], wd);
    expect(r.code, r.stderr).toBe(0);
    const d = lastJson<BuildDiff>(r.stdout);
    expect(d.from.build).toBe('1.0.0');
    expect(d.to.build).toBe('1.0.1');
    expect(d.packages?.find((p) => p.name === 'jq')).toMatchObject({ change: 'added', arch: 'amd64' });
    expect(d.packages?.every((p) => p.change === 'added')).toBe(true);
    expect(d.files).toContainEqual({ change: 'added', path: '/usr/bin/jq' });
    // The config changed, so /usr/etc changed too; every change is a real one of the commit pair.
    const ostreeDiff = (await run(['ostree', `--repo=${join(wd, 'tmp/repo')}`, 'diff', d.from.commit, d.to.commit])).stdout.trim().split('\n').length;
    expect(d.files).toHaveLength(ostreeDiff);

    const pkgOnly = await runCli(['diff', '--pkg', '--from', '1.0.0', '--to', '1.0.1'], wd);
    expect(pkgOnly.stdout).toMatch(/added\s+jq /);
    expect(pkgOnly.stdout).not.toMatch(/^Files:/m);
    const filesOnly = lastJson<BuildDiff>((await runCli(['diff', '--files', '--json'], wd)).stdout);
    expect(filesOnly.packages).toBeUndefined();
    expect(filesOnly.files?.length).toBe(d.files?.length);
    expect((await runCli(['diff', '--pkg', '--files'], wd)).code).toBe(2);
    expect((await runCli(['diff', '--from', 'nope'], wd)).code).toBe(1);
  });
});
