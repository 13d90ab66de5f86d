import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initWorkdir, Workdir } from '@cosa/core';
import { isCosaError } from '@cosa/schema';
import { snapshotTree, tempDir, TINY_CONFIG } from '@cosa/test-utils';

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

async function writeConfig(dir: string, files: Record<string, string> = TINY_CONFIG): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [n, t] of Object.entries(files)) await writeFile(join(dir, n), t);
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.email=t@example.com', '-c', 'user.name=t', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8' }).trim();

/** A git repo with two commits on main and a branch `other` holding manifest-other.yaml. */
async function gitConfigRepo(dir: string): Promise<{ first: string; second: string }> {
  await writeConfig(dir);
  git(dir, 'init', '-q');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'first');
  const first = git(dir, 'rev-parse', 'HEAD');
  await writeFile(join(dir, 'README'), 'second\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'second');
  const second = git(dir, 'rev-parse', 'HEAD');
  git(dir, 'checkout', '-qb', 'other');
  await writeFile(join(dir, 'manifest-other.yaml'), 'ref: other\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'variant');
  git(dir, 'checkout', '-q', 'main');
  return { first, second };
}

const LAYOUT = ['builds', 'cache', 'tmp', 'overrides', 'overrides/rpm', 'overrides/rootfs'];

describe('initWorkdir', () => {
  it('links an absolute config path as src/config and creates the workdir layout', async () => {
    await using t = await tempDir();
    const config = join(t.dir, 'config');
    await writeConfig(config);
    const wd = await initWorkdir({ dir: join(t.dir, 'wd'), config });
    expect(await readlink(join(t.dir, 'wd', 'src', 'config'))).toBe(config);
    for (const d of LAYOUT) expect((await lstat(join(t.dir, 'wd', d))).isDirectory()).toBe(true);
    expect(wd.configDir).toBe(join(t.dir, 'wd', 'src', 'config'));
    expect(await Workdir.open(join(t.dir, 'wd'))).toBeInstanceOf(Workdir);
    expect(await wd.configVariant()).toBeUndefined();
  });

  it('clones a git URL with depth 1, on the requested branch', async () => {
    await using t = await tempDir();
    const repo = join(t.dir, 'repo');
    const { second } = await gitConfigRepo(repo);
    await initWorkdir({ dir: join(t.dir, 'a'), config: `file://${repo}` });
    const cloned = join(t.dir, 'a', 'src', 'config');
    expect((await lstat(cloned)).isDirectory()).toBe(true);
    expect(git(cloned, 'rev-parse', 'HEAD')).toBe(second);
    expect(git(cloned, 'rev-list', '--count', 'HEAD')).toBe('1');
    await initWorkdir({ dir: join(t.dir, 'b'), config: `file://${repo}`, branch: 'other', variant: 'other' });
    expect(git(join(t.dir, 'b', 'src', 'config'), 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('other');
  });

  it('checks out the requested commit after cloning', async () => {
    await using t = await tempDir();
    const repo = join(t.dir, 'repo');
    const { first } = await gitConfigRepo(repo);
    await initWorkdir({ dir: join(t.dir, 'wd'), config: `file://${repo}`, commit: first });
    expect(git(join(t.dir, 'wd', 'src', 'config'), 'rev-parse', 'HEAD')).toBe(first);
  });

  it('refuses a --commit that is not a hex commit id, so git never takes it as an option', async () => {
    await using t = await tempDir();
    const repo = join(t.dir, 'repo');
    await gitConfigRepo(repo);
    const marker = join(t.dir, 'pwned');
    for (const commit of [`--upload-pack=touch ${marker}`, '-h', 'HEAD~1', '']) {
      const e = await caught(initWorkdir({ dir: join(t.dir, 'wd'), config: `file://${repo}`, commit }));
      expect(isCosaError(e, 'COSA_USAGE')).toBe(true);
    }
    await expect(lstat(marker)).rejects.toThrow();
    await expect(lstat(join(t.dir, 'wd'))).rejects.toThrow();
  });

  it('never shows the credentials of a git URL in an error or a logged command', async () => {
    await using t = await tempDir();
    const lines: string[] = [];
    const url = 'http://alice:s3cr3t-t0ken@127.0.0.1:9/config.git';
    const e = await caught(
      initWorkdir({ dir: join(t.dir, 'wd'), config: url, onProgress: (ev) => lines.push(JSON.stringify(ev)) }),
    );
    expect(isCosaError(e)).toBe(true);
    const shown = `${(e as Error).message}\n${JSON.stringify(e)}\n${lines.join('\n')}`;
    expect(shown).not.toContain('s3cr3t-t0ken');
    expect(shown).not.toContain('alice');
    expect((e as Error).message).toContain('git');
  });

  it('records a variant in src/config.json and requires its manifest', async () => {
    await using t = await tempDir();
    const config = join(t.dir, 'config');
    await writeConfig(config, { ...TINY_CONFIG, 'manifest-rhel.yaml': 'ref: x\n' });
    const wd = await initWorkdir({ dir: join(t.dir, 'wd'), config, variant: 'rhel' });
    expect(JSON.parse(await readFile(join(t.dir, 'wd', 'src', 'config.json'), 'utf8'))).toEqual({ 'coreos-assembler.config-variant': 'rhel' });
    expect(await wd.configVariant()).toBe('rhel');
    const e = await caught(initWorkdir({ dir: join(t.dir, 'wd2'), config, variant: 'nope' }));
    expect(isCosaError(e, 'COSA_CONFIG_VARIANT')).toBe(true);
    expect((e as Error).message).toContain('manifest-nope.yaml');
  });

  it('refuses a non-empty directory unless forced', async () => {
    await using t = await tempDir();
    const config = join(t.dir, 'config');
    await writeConfig(config);
    const dir = join(t.dir, 'wd');
    await mkdir(dir);
    await writeFile(join(dir, 'notes.txt'), 'keep me\n');
    const before = await snapshotTree(dir);
    const e = await caught(initWorkdir({ dir, config }));
    expect(isCosaError(e, 'COSA_WORKDIR_NOT_EMPTY')).toBe(true);
    expect((e as Error).message).toContain(dir);
    expect(await snapshotTree(dir)).toEqual(before);
    await initWorkdir({ dir, config, force: true });
    expect(await readFile(join(dir, 'notes.txt'), 'utf8')).toBe('keep me\n');
    expect((await lstat(join(dir, 'builds'))).isDirectory()).toBe(true);
  });

  it.each([
    ['manifest.yaml', { 'image.yaml': 'size: 2\n' }],
    ['image.yaml', { 'manifest.yaml': 'ref: x\n' }],
  ])('fails without %s and leaves the directory exactly as it was', async (missing, files) => {
    await using t = await tempDir();
    const config = join(t.dir, 'config');
    await writeConfig(config, files);
    const dir = join(t.dir, 'wd');
    await mkdir(dir);
    const before = await snapshotTree(t.dir);
    const e = await caught(initWorkdir({ dir, config }));
    expect(isCosaError(e, 'COSA_CONFIG_MISSING')).toBe(true);
    expect((e as Error).message).toContain(missing);
    expect(await snapshotTree(t.dir)).toEqual(before);
  });

  it('removes a failed clone and everything it created', async () => {
    await using t = await tempDir();
    const repo = join(t.dir, 'repo');
    await writeConfig(repo, { 'manifest.yaml': 'ref: x\n' });
    git(repo, 'init', '-q');
    git(repo, 'add', '.');
    git(repo, 'commit', '-qm', 'no image.yaml');
    const before = await snapshotTree(t.dir);
    const e1 = await caught(initWorkdir({ dir: join(t.dir, 'wd'), config: `file://${repo}` }));
    expect(isCosaError(e1, 'COSA_CONFIG_MISSING')).toBe(true);
    const e2 = await caught(initWorkdir({ dir: join(t.dir, 'wd'), config: `file://${t.dir}/no-such-repo` }));
    expect(isCosaError(e2, 'COSA_EXEC_FAILED')).toBe(true);
    expect(await snapshotTree(t.dir)).toEqual(before);
  });
});
