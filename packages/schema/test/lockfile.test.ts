import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '@cosa/test-utils';
import { SchemaError, stableStringify } from '@cosa/schema';
import { generatedLockfile, loadLockfiles, parseLockfile } from '../src/lockfile.js';
import { caught, configDir } from './_config-dir.js';

describe('lockfiles', () => {
  it('merges the Fedora CoreOS base lockfile with its overrides (overrides win)', async () => {
    const dir = fixturePath('fcos-config');
    const r = await loadLockfiles({ configDir: dir, arch: 'x86_64' });
    expect(r.files).toEqual([join(dir, 'manifest-lock.x86_64.json'), join(dir, 'manifest-lock.overrides.yaml')]);
    expect(r.packages.NetworkManager).toEqual({ evra: '1:1.46.2-1.fc40.x86_64', metadata: { sourcerpm: 'NetworkManager' } });
    expect(r.packages.podman?.evr).toBe('5:5.2.5-1.fc40');
    expect(r.packages.podman?.evra).toBeUndefined();
    expect(r.packages['kdump-utils']?.metadata?.type).toBe('fast-track');
    expect(Object.keys(r.packages).length).toBeGreaterThan(400);
  });

  it('applies base, generic overrides, then arch overrides', async () => {
    const dir = await configDir({
      'manifest-lock.x86_64.json': JSON.stringify({ packages: { a: { evra: '1-1.x86_64' }, b: { evra: '1-1.x86_64', digest: 'sha256:00' }, c: { evra: '1-1.x86_64' } } }),
      'manifest-lock.overrides.yaml': 'packages:\n  b: {evr: 2-1}\n  c: {evr: 2-1}\n',
      'manifest-lock.overrides.x86_64.yaml': 'packages:\n  c: {evra: 3-1.x86_64, metadata: {type: pin}}\n',
      'manifest-lock.overrides.aarch64.yaml': 'packages:\n  c: {evr: 9-9}\n',
    });
    const x = await loadLockfiles({ configDir: dir, arch: 'x86_64' });
    expect(x.packages).toEqual({
      a: { evra: '1-1.x86_64' },
      b: { evr: '2-1' },
      c: { evra: '3-1.x86_64', metadata: { type: 'pin' } },
    });
    expect(x.files.map((f) => f.slice(dir.length + 1))).toEqual(['manifest-lock.x86_64.json', 'manifest-lock.overrides.yaml', 'manifest-lock.overrides.x86_64.yaml']);
    const a = await loadLockfiles({ configDir: dir, arch: 'aarch64' });
    expect(a.packages).toEqual({ b: { evr: '2-1' }, c: { evr: '9-9' } });
    const none = await loadLockfiles({ configDir: await configDir({}), arch: 'x86_64' });
    expect(none).toEqual({ packages: {}, files: [] });
  });

  it('accepts either spelling of each lockfile, and refuses both at once', async () => {
    const dir = await configDir({
      'manifest-lock.x86_64.yaml': 'packages:\n  a: {evra: 1-1.x86_64}\n',
      'manifest-lock.overrides.json': JSON.stringify({ packages: { a: { evr: '2-1' } } }),
    });
    const r = await loadLockfiles({ configDir: dir, arch: 'x86_64' });
    expect(r.packages).toEqual({ a: { evr: '2-1' } });
    expect(r.files).toEqual([join(dir, 'manifest-lock.x86_64.yaml'), join(dir, 'manifest-lock.overrides.json')]);
    const both = await configDir({ 'manifest-lock.overrides.yaml': 'packages: {}\n', 'manifest-lock.overrides.json': '{}' });
    const e = await caught(() => loadLockfiles({ configDir: both, arch: 'x86_64' }));
    expect(e).toBeInstanceOf(SchemaError);
    expect(e.message).toContain('found both manifest-lock.overrides.json and manifest-lock.overrides.yaml');
  });

  it('accepts an overrides file with no packages', async () => {
    const dir = await configDir({ 'manifest-lock.overrides.yaml': '# nothing pinned\npackages:\n' });
    expect((await loadLockfiles({ configDir: dir, arch: 'x86_64' })).packages).toEqual({});
  });

  it('names the file and the package of an entry without a version', async () => {
    const dir = await configDir({ 'manifest-lock.overrides.yaml': 'packages:\n  foo: {metadata: {type: pin}}\n' });
    const e = await caught(() => loadLockfiles({ configDir: dir, arch: 'x86_64' }));
    expect(e).toBeInstanceOf(SchemaError);
    expect(e.file).toBe(join(dir, 'manifest-lock.overrides.yaml'));
    expect((e as unknown as SchemaError).issues[0]?.path).toBe('packages.foo');
  });

  it('generates the manifest-lock.generated shape: sorted packages, exact evra, no digests', () => {
    const g = generatedLockfile(
      [
        { name: 'zlib', version: '1.3', release: '2.fc40', arch: 'x86_64', epoch: 0 },
        { name: 'NetworkManager', version: '1.46.2', release: '1.fc40', arch: 'x86_64', epoch: '1' },
        { name: 'bash', evra: '5.2-1.fc40.x86_64' },
      ],
      { generated: new Date('2024-10-23T12:34:56.789Z') },
    );
    expect(g).toEqual({
      packages: {
        NetworkManager: { evra: '1:1.46.2-1.fc40.x86_64' },
        bash: { evra: '5.2-1.fc40.x86_64' },
        zlib: { evra: '1.3-2.fc40.x86_64' },
      },
      metadata: { generated: '2024-10-23T12:34:56Z' },
    });
    expect(Object.keys(g.packages)).toEqual(['NetworkManager', 'bash', 'zlib']);
    // What we write reads back as a lockfile.
    expect(parseLockfile(JSON.parse(stableStringify(g)), 'manifest-lock.generated.x86_64.json').packages.bash?.evra).toBe('5.2-1.fc40.x86_64');
  });
});
