import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseYamlText } from '@cosa/schema';
import { fixturePath } from '@cosa/test-utils';
import { runCli } from './_run.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A workdir whose src/config is a symlink to `config` (as `cosa init /abs/path` makes it). */
async function workdir(config: string, variant?: string): Promise<string> {
  const wd = await mkdtemp(join(tmpdir(), 'cosa-wd-'));
  dirs.push(wd);
  await mkdir(join(wd, 'src'));
  await symlink(config, join(wd, 'src', 'config'));
  if (variant) await writeFile(join(wd, 'src', 'config.json'), JSON.stringify({ 'coreos-assembler.config-variant': variant }));
  return wd;
}

async function smallConfig(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cosa-config-'));
  dirs.push(dir);
  await writeFile(join(dir, 'manifest.yaml'), 'ref: os/${basearch}/main\npackages: [a b]\n');
  await writeFile(join(dir, 'manifest-mini.yaml'), 'include: manifest.yaml\nref: os/${basearch}/mini\nfancy-new-key: 1\n');
  await writeFile(join(dir, 'image.yaml'), 'size: 5\n');
  await writeFile(join(dir, 'image-mini.yaml'), 'include: image.yaml\n');
  return dir;
}

describe('cosa manifest flatten', () => {
  it('prints the flattened Fedora CoreOS manifest as JSON for the given arch', async () => {
    const wd = await workdir(fixturePath('fcos-config'));
    const r = await runCli(['manifest', 'flatten', '--arch', 'aarch64', '--json'], wd);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { manifest: m } = JSON.parse(r.stdout) as { manifest: { ref: string; packages: string[] } };
    expect(m.ref).toBe('fedora/aarch64/coreos/testing-devel');
    expect(m.packages).toContain('grub2-efi-aa64');
  });

  it('prints YAML by default and follows the variant recorded in src/config.json', async () => {
    const wd = await workdir(await smallConfig(), 'mini');
    const r = await runCli(['manifest', 'flatten', '--arch', 'x86_64'], wd);
    expect(r.code).toBe(0);
    expect(parseYamlText(r.stdout, 'stdout')).toEqual({ ref: 'os/x86_64/mini', packages: ['a', 'b'], 'fancy-new-key': 1, variables: { basearch: 'x86_64' } });
    expect(r.stderr).toContain('fancy-new-key');
  });

  it('fails with --strict on an unknown key, naming it', async () => {
    const wd = await workdir(await smallConfig(), 'mini');
    const r = await runCli(['manifest', 'flatten', '--arch', 'x86_64', '--strict'], wd);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('fancy-new-key');
  });

  it('fails on a recorded variant the config does not have, listing the known ones', async () => {
    const wd = await workdir(await smallConfig(), 'maxi');
    const r = await runCli(['manifest', 'flatten', '--json'], wd);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown variant "maxi"');
    expect(r.stderr).toContain('mini');
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toMatchObject({ event: 'error', code: 'COSA_CONFIG_VARIANT' });
  });

  it('fails outside a workdir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cosa-empty-'));
    dirs.push(dir);
    const r = await runCli(['manifest', 'flatten'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('has no src/config');
  });
});
