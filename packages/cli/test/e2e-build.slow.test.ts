/**
 * The product end to end, as a user runs it: init from examples → build → meta.json valid against
 * the original schema → `cosa run --check` reaches login → a second build is a no-op → edit the
 * manifest → a new build with a pkgdiff → more builds leave 3 (+ tagged) → SIGKILL during a build
 * leaves builds/ as before and the next build succeeds.
 *
 * Real mmdebstrap, ostree, disk writer and qemu (TCG here). Composes are cached under
 * $COSA_TEST_CACHE (the workdir's cache/ is a link there), so a second local run is quicker; CI
 * starts cold.
 */
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, existsSync } from 'node:fs';
import { mkdir, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBuildsJson, parseMetaJson, type MetaJson } from '@cosa/schema';
import { snapshotTree, tempDir, testWorkdirCache, validateWithOriginalSchema } from '@cosa/test-utils';
import { runCli } from './_run.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const cliBin = join(repoRoot, 'packages/cli/bin/cosa.js');
const testCache = testWorkdirCache();

let base: { dir: string; cleanup(): Promise<void> };
let config: string;
let wd: string;

function git(...args: string[]): void {
  execFileSync('git', ['-C', config, '-c', 'user.name=cosa-test', '-c', 'user.email=test@cosa.invalid', ...args], { stdio: 'ignore' });
}

async function readMeta(id: string): Promise<MetaJson> {
  return parseMetaJson(await readFile(join(wd, 'builds', id, 'x86_64', 'meta.json'), 'utf8'));
}

async function buildIds(): Promise<string[]> {
  return parseBuildsJson(await readFile(join(wd, 'builds', 'builds.json'), 'utf8')).builds.map((b) => b.id);
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

beforeAll(async () => {
  if (!existsSync(join(repoRoot, 'packages/cli/dist/index.js'))) {
    throw new Error('the CLI is not built: run `pnpm -r run build` (scripts/setup.sh does) before the slow tests');
  }
  base = await tempDir('cosa-e2e-');
  config = join(base.dir, 'config');
  wd = join(base.dir, 'wd');
  cpSync(join(repoRoot, 'examples/debian'), config, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', config]);
  git('add', '-A');
  git('commit', '-qm', 'example config');
});

afterAll(async () => {
  await base?.cleanup();
});

describe('cosa build end to end (bundled Debian example)', () => {
  let first = '';
  let second = '';

  it('initialises a workdir from the example config', async () => {
    await mkdir(wd, { recursive: true });
    const r = await runCli(['init', config], wd);
    expect(r.code, r.stderr).toBe(0);
    // Share composes with earlier local runs (CI starts with an empty cache anyway).
    await mkdir(testCache, { recursive: true });
    await rm(join(wd, 'cache'), { recursive: true });
    await symlink(testCache, join(wd, 'cache'));
  });

  it('builds a commit and a qemu image whose meta.json the original schema accepts', async () => {
    const r = await runCli(['build', '--json'], wd);
    expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);
    const res = lastJson(r.stdout);
    expect(res.status).toBe('built');
    first = String(res.buildId);
    const meta = await readMeta(first);
    validateWithOriginalSchema(meta);
    expect(meta.images?.ostree?.path).toBe(`cosa-debian-${first}-ostree.x86_64.tar`);
    expect(meta.images?.qemu?.path).toBe(`cosa-debian-${first}-qemu.x86_64.qcow2`);
    expect(meta['coreos-assembler.config-dirty']).toBe('false');
    expect(await readlink(join(wd, 'builds', 'latest'))).toBe(first);
    // The example's overlay.d layer is in the commit (etc/ lands in /usr/etc), inputs.json beside meta.json.
    const issue = execFileSync('ostree', [`--repo=${join(wd, 'tmp', 'repo')}`, 'cat', meta['ostree-commit'], '/usr/etc/issue'], { encoding: 'utf8' });
    expect(issue).toContain('overlay.d/10cosa-example');
    const inputs = JSON.parse(await readFile(join(wd, 'builds', first, 'x86_64', 'inputs.json'), 'utf8')) as { inputhash: string; compose: { overlays: { name: string }[] } };
    expect(inputs.inputhash).toBe(meta['rpm-ostree-inputhash']);
    expect(inputs.compose.overlays.map((l) => l.name)).toEqual(['10cosa-example']);
    // The progress went out as JSON Lines, one per event.
    expect(r.stdout.split('\n').filter((l) => l.includes('"event":"phase"')).length).toBeGreaterThan(4);
  });

  it('boots the image to the login prompt with cosa run --check, the overlay.d layer in place', async () => {
    // overlay.d/10cosa-example/etc/issue is what getty prints above the prompt.
    const r = await runCli(['run', '--check', '--timeout', '600', '--pattern', 'overlay\\.d/10cosa-example[\\s\\S]*login:'], wd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Reached the login prompt/);
  });

  it('builds nothing when the inputs did not change', async () => {
    const before = await snapshotTree(join(wd, 'builds'));
    const r = await runCli(['build'], wd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`No changes since build ${first}`);
    expect(await snapshotTree(join(wd, 'builds'))).toEqual(before);
  });

  it('makes a new build with a pkgdiff when a package is added to the manifest', async () => {
    const man = join(config, 'manifest.yaml');
    await writeFile(man, (await readFile(man, 'utf8')).replace(/^packages:\n/m, 'packages:\n  - jq\n'));
    git('commit', '-qam', 'add jq');
    const r = await runCli(['build', '--json'], wd);
    expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);
    const res = lastJson(r.stdout);
    second = String(res.buildId);
    expect(second).not.toBe(first);
    // What changed, not only that something did.
    expect(res.changes).toEqual(expect.arrayContaining(['manifest: packages +jq', expect.stringMatching(/^packages: .*\+jq \S+/)]));
    const meta = await readMeta(second);
    validateWithOriginalSchema(meta);
    const jq = (meta.pkgdiff as [string, number, unknown][]).find((d) => d[0] === 'jq');
    expect(jq?.[1]).toBe(0); // rpm-ostree's "added"
    expect(meta['fedora-coreos.parent-version']).toBe(first);
    expect(await buildIds()).toEqual([second, first]);
  });

  it('keeps the last 3 builds plus tagged ones as more builds come', async () => {
    expect((await runCli(['tag', 'update', '--tag', 'keep', '--build', first], wd)).code).toBe(0);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await runCli(['build', '--force-image', '--json'], wd);
      expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
      ids.push(String(lastJson(r.stdout).buildId));
    }
    expect(ids).toEqual([`${second}-1`, `${second}-2`, `${second}-3`]);
    expect(await buildIds()).toEqual([`${second}-3`, `${second}-2`, `${second}-1`, first]);
    expect(existsSync(join(wd, 'builds', second))).toBe(false);
    expect(existsSync(join(wd, 'builds', first))).toBe(true);
    expect(await readlink(join(wd, 'builds', 'latest'))).toBe(`${second}-3`);
    const meta = await readMeta(`${second}-3`);
    expect(meta['coreos-assembler.image-genver']).toBe(3);
    validateWithOriginalSchema(meta);
  });

  it('leaves builds/ as it was when a build is killed with SIGKILL, and the next build succeeds', async () => {
    const before = await snapshotTree(join(wd, 'builds'));
    // --force-nocache: a real compose to kill (--force alone would reuse the tree in a second).
    const child = spawn(process.execPath, [cliBin, 'build', '--force-nocache'], { cwd: wd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    // Kill the whole process group a few seconds into the compose.
    for (let i = 0; i < 600 && !/compose…/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toMatch(/compose…/);
    await new Promise((r) => setTimeout(r, 4000));
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
    expect(await snapshotTree(join(wd, 'builds'))).toEqual(before);

    const prev = await readMeta((await buildIds())[0]!);
    const r = await runCli(['build', '--force', '--json'], wd);
    expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(0);
    const id = String(lastJson(r.stdout).buildId);
    expect((await buildIds())[0]).toBe(id);
    const meta = await readMeta(id);
    validateWithOriginalSchema(meta);
    // Inputs unchanged: a new commit (its own version, the previous one as parent) on the same tree.
    expect(r.stdout).toContain('reusing the tree of commit');
    expect(meta['ostree-commit']).not.toBe(prev['ostree-commit']);
    expect(meta['ostree-version']).toBe(id);
    const repo = join(wd, 'tmp', 'repo');
    const show = execFileSync('ostree', [`--repo=${repo}`, 'show', meta['ostree-commit']], { encoding: 'utf8' });
    expect(show).toContain(`Parent:  ${prev['ostree-commit']}`);
    expect(show).toContain(`Version: ${id}`);
    expect(execFileSync('ostree', [`--repo=${repo}`, 'diff', prev['ostree-commit'], meta['ostree-commit']], { encoding: 'utf8' }).trim()).toBe('');
    expect((await readdir(join(wd, 'tmp'))).filter((f) => f.startsWith('build-'))).toEqual([]);
  });

  it('derives platform images from the build and the metal image boots with BIOS and UEFI', async () => {
    // `cosa build metal` with unchanged inputs builds nothing new but runs buildextend-metal.
    const b = await runCli(['build', 'metal', '--json'], wd);
    expect(b.code, b.stderr + b.stdout.slice(-2000)).toBe(0);
    expect(lastJson(b.stdout).status).toBe('unchanged');
    const r = await runCli(['buildextend', '--platforms', 'aws,azure,gcp,vmware,metal4k', '--json'], wd);
    expect(r.code, r.stderr).toBe(0);
    const id = (await buildIds())[0]!;
    const meta = await readMeta(id);
    validateWithOriginalSchema(meta);
    const dir = join(wd, 'builds', id, 'x86_64');
    const info = (file: string, fmt?: string) =>
      JSON.parse(execFileSync('qemu-img', ['info', '--output=json', ...(fmt ? ['-f', fmt] : []), join(dir, file)], { encoding: 'utf8' })) as { format: string; 'virtual-size': number };
    const qemuSize = info(meta.images!.qemu!.path)['virtual-size'];
    expect(info(meta.images!.metal!.path)).toMatchObject({ format: 'raw', 'virtual-size': qemuSize });
    expect(info(meta.images!.aws!.path).format).toBe('vmdk');
    const vhd = info(meta.images!.azure!.path, 'vpc');
    expect(vhd['virtual-size'] % (1024 * 1024)).toBe(0);
    expect(execFileSync('tar', ['-tzf', join(dir, meta.images!.gcp!.path)], { encoding: 'utf8' }).trim()).toBe('disk.raw');
    expect(execFileSync('tar', ['-tf', join(dir, meta.images!.vmware!.path)], { encoding: 'utf8' }).trim().split('\n')[0]).toMatch(/\.ovf$/);
    // metal4k: its own install with 4096-byte sectors (fdisk must be told the sector size).
    expect(info(meta.images!.metal4k!.path).format).toBe('raw');
    expect(execFileSync('fdisk', ['-b', '4096', '-l', join(dir, meta.images!.metal4k!.path)], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })).toMatch(/Sector size \(logical\/physical\): 4096 bytes[\s\S]*EFI System[\s\S]*Linux filesystem/);
    // A second run finds them all and does nothing.
    const again = await runCli(['buildextend-aws'], wd);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already exists');
    for (const fw of [[], ['--uefi']]) {
      const boot = await runCli(['run', '--qemu-image', join(dir, meta.images!.metal!.path), '--check', '--timeout', '600', ...fw], wd);
      expect(boot.code, boot.stderr).toBe(0);
    }
    // A 4Kn image boots with UEFI, the default for it.
    const boot4k = await runCli(['run', '--qemu-image', join(dir, meta.images!.metal4k!.path), '--check', '--timeout', '600'], wd);
    expect(boot4k.code, boot4k.stderr).toBe(0);
  });

  it('runs buildextends at once: the same platform twice fails clearly, different platforms both land in meta.json', async () => {
    const id = (await buildIds())[0]!;
    const dir = join(wd, 'builds', id, 'x86_64');
    const start = (...args: string[]) => {
      const child = spawn(process.execPath, [cliBin, ...args], { cwd: wd, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const done = new Promise<{ code: number | null; out: string }>((res) => child.on('exit', (code) => res({ code, out })));
      return done;
    };
    // Same platform: the second starts while the first holds the .openstack.building semaphore.
    const first = start('buildextend-openstack');
    for (let i = 0; i < 600 && !existsSync(join(dir, '.openstack.building')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(join(dir, '.openstack.building'))).toBe(true);
    const second = await start('buildextend-openstack');
    expect(second.code).not.toBe(0);
    expect(second.out).toMatch(/buildextend-openstack is already running for this build \(pid \d+\)/);
    expect((await first).code).toBe(0);
    expect(existsSync(join(dir, '.openstack.building'))).toBe(false);
    // Different platforms in three processes at once: every entry is merged, none lost.
    const before = await readMeta(id);
    const runs = await Promise.all(['ibmcloud', 'exoscale', 'digitalocean'].map((p) => start(`buildextend-${p}`)));
    for (const r of runs) expect(r.code, r.out).toBe(0);
    const meta = await readMeta(id);
    validateWithOriginalSchema(meta);
    for (const p of ['openstack', 'ibmcloud', 'exoscale', 'digitalocean', ...Object.keys(before.images ?? {})]) {
      expect(meta.images?.[p as 'aws'], p).toBeDefined();
      expect(existsSync(join(dir, meta.images![p as 'aws']!.path)), p).toBe(true);
    }
  });
});
