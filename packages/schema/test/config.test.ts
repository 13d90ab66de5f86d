import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '@cosa/test-utils';
import { CosaError, loadConfig, SchemaError } from '@cosa/schema';
import { listVariants, readVariant, writeVariant } from '../src/config.js';
import { caught, configDir } from './_config-dir.js';

async function variantConfig(): Promise<string> {
  return configDir({
    'manifest.yaml': 'ref: os/${basearch}/default\npackages: [base]\n',
    'manifest-rhel-9.6.yaml': 'include: manifest.yaml\nref: os/${basearch}/rhel\npackages: [rhel]\n',
    'manifest-c9s.yaml': 'include: manifest.yaml\nref: os/${basearch}/c9s\n',
    'image.yaml': 'size: 10\n',
    'image-rhel-9.6.yaml': 'include: image.yaml\nsize: 16\n',
    'manifest-lock.overrides.yaml': 'packages:\n  base: {evr: 1-1}\n',
    'manifest-lock.overrides.x86_64.yaml': 'packages: {}\n',
  });
}

describe('variants and whole-config loading', () => {
  it('lists the variants from manifest-<V>.yaml names, lockfiles excluded', async () => {
    expect(await listVariants(await variantConfig())).toEqual(['c9s', 'rhel-9.6']);
  });

  it('uses manifest-V.yaml and image-V.yaml for a variant', async () => {
    const dir = await variantConfig();
    const c = await loadConfig({ configDir: dir, variant: 'rhel-9.6', arch: 'x86_64' });
    expect(c.variant).toBe('rhel-9.6');
    expect(c.manifestFile).toBe(join(dir, 'manifest-rhel-9.6.yaml'));
    expect(c.manifest.ref).toBe('os/x86_64/rhel');
    expect(c.manifest.packages).toEqual(['base', 'rhel']);
    expect(c.imageConfigFile).toBe(join(dir, 'image-rhel-9.6.yaml'));
    expect(c.imageConfig.size).toBe(16);
    expect(c.lockfile?.packages).toEqual({ base: { evr: '1-1' } });
    expect(c.files.map((f) => f.slice(dir.length + 1))).toEqual([
      'manifest-rhel-9.6.yaml',
      'manifest.yaml',
      'image-rhel-9.6.yaml',
      'image.yaml',
      'manifest-lock.overrides.yaml',
      'manifest-lock.overrides.x86_64.yaml',
    ]);
  });

  it('uses manifest.yaml and image.yaml without a variant', async () => {
    const dir = await variantConfig();
    const plain = await loadConfig({ configDir: dir, arch: 'x86_64' });
    expect(plain.manifest.ref).toBe('os/x86_64/default');
    expect(plain.imageConfig.size).toBe(10);
    expect(plain.variant).toBeUndefined();
    expect(plain.platforms).toBeUndefined();
  });

  it('requires image-V.yaml for a variant, as the original', async () => {
    const dir = await variantConfig();
    const e = await caught(() => loadConfig({ configDir: dir, variant: 'c9s', arch: 'aarch64' }));
    expect(e.code).toBe('COSA_CONFIG_MISSING');
    expect(e.message).toContain('image-c9s.yaml');
  });

  it('refuses an unknown variant, listing the known ones', async () => {
    const dir = await variantConfig();
    const e = await caught(() => loadConfig({ configDir: dir, variant: 'rhel-10', arch: 'x86_64' }));
    expect(e).toBeInstanceOf(CosaError);
    expect(e.code).toBe('COSA_CONFIG_VARIANT');
    expect(e.message).toContain('rhel-10');
    expect(e.message).toContain('c9s, rhel-9.6');
  });

  it('refuses a config dir without manifest.yaml or image.yaml', async () => {
    const noManifest = await configDir({ 'image.yaml': 'size: 1\n' });
    const e1 = await caught(() => loadConfig({ configDir: noManifest, arch: 'x86_64' }));
    expect(e1.code).toBe('COSA_CONFIG_MISSING');
    expect(e1.message).toContain('manifest.yaml');
    const noImage = await configDir({ 'manifest.yaml': 'ref: a\n' });
    const e2 = await caught(() => loadConfig({ configDir: noImage, arch: 'x86_64' }));
    expect(e2.code).toBe('COSA_CONFIG_MISSING');
    expect(e2.message).toContain('image.yaml');
  });

  it('loads the whole Fedora CoreOS config: treefile, image.yaml, platforms.yaml and lockfiles', async () => {
    const dir = fixturePath('fcos-config');
    const c = await loadConfig({ configDir: dir, arch: 'x86_64' });
    expect(c.manifest.ref).toBe('fedora/x86_64/coreos/testing-devel');
    expect(c.imageConfig.size).toBe(10);
    expect(JSON.parse(c.imageConfigRendered)).toEqual(JSON.parse(JSON.stringify(c.imageConfig)));
    expect(c.platforms?.qemu?.kernel_arguments).toEqual(['console=tty0', 'console=ttyS0,115200n8']);
    expect(c.lockfile?.packages.ignition?.evr).toBe('2.20.0-1.fc40');
    const rel = c.files.map((f) => f.slice(dir.length + 1));
    expect(rel[0]).toBe('manifest.yaml');
    expect(rel.slice(-5)).toEqual(['image.yaml', 'image-base.yaml', 'platforms.yaml', 'manifest-lock.x86_64.json', 'manifest-lock.overrides.yaml']);
  });
});

describe('the recorded variant (src/config.json)', () => {
  it('is undefined without src/config.json, and reads back what was written', async () => {
    const wd = await configDir({ 'src/.keep': '' });
    expect(await readVariant(wd)).toBeUndefined();
    await writeVariant(wd, 'rhel-9.6');
    expect(await readVariant(wd)).toBe('rhel-9.6');
    expect(JSON.parse(await readFile(join(wd, 'src', 'config.json'), 'utf8'))).toEqual({ 'coreos-assembler.config-variant': 'rhel-9.6' });
  });

  it('reads a config.json written by the original, and refuses a malformed one', async () => {
    const wd = await configDir({ 'src/config.json': '{"coreos-assembler.config-variant": "c9s"}' });
    expect(await readVariant(wd)).toBe('c9s');
    await writeFile(join(wd, 'src', 'config.json'), '{"coreos-assembler.config-variant": 3}');
    const e = await caught(() => readVariant(wd));
    expect(e).toBeInstanceOf(SchemaError);
    expect((e as unknown as SchemaError).issues[0]?.path).toBe('coreos-assembler.config-variant');
    await writeFile(join(wd, 'src', 'config.json'), '{not json');
    expect((await caught(() => readVariant(wd))).code).toBe('COSA_SCHEMA_PARSE');
    await mkdir(join(wd, 'other'), { recursive: true });
    expect(await readVariant(join(wd, 'other'))).toBeUndefined();
  });
});
