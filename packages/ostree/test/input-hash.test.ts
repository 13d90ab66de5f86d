import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeInputHash, packageKey, type InputHashOptions } from '../src/input-hash.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cosa-inputhash-'));
  await writeFile(join(dir, 'motd'), 'hello\n');
  await writeFile(join(dir, 'post.sh'), 'echo hi\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function base(): InputHashOptions {
  return {
    manifest: { ref: 'x/${basearch}/stable', packages: ['bash', 'systemd'], debian: { suite: 'bookworm' } },
    files: ['motd', 'post.sh'],
    baseDir: dir,
    packages: [
      { name: 'systemd', version: '252.38-1~deb12u1', arch: 'amd64' },
      { name: 'bash', version: '5.2.15-2+b8', arch: 'amd64', checksum: 'MD5Sum:abc' },
    ],
    composer: 'debian',
    composerVersion: 'cosa-debian/1 mmdebstrap 1.3.5',
  };
}

describe('computeInputHash', () => {
  it('gives the same hash for the same inputs, whatever the key and package order', () => {
    const a = computeInputHash(base());
    const o = base();
    o.manifest = { debian: { suite: 'bookworm' }, packages: ['bash', 'systemd'], ref: 'x/${basearch}/stable' };
    o.packages = [...o.packages].reverse();
    o.files = ['post.sh', 'motd'];
    expect(computeInputHash(o)).toBe(a);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes when a manifest line changes', () => {
    const o = base();
    o.manifest = { ...(o.manifest as object), packages: ['bash', 'systemd', 'less'] };
    expect(computeInputHash(o)).not.toBe(computeInputHash(base()));
  });

  it('changes when a package version changes', () => {
    const o = base();
    o.packages = [{ name: 'systemd', version: '252.39-1~deb12u1', arch: 'amd64' }, o.packages[1]!];
    expect(computeInputHash(o)).not.toBe(computeInputHash(base()));
  });

  it('changes when a referenced file changes', async () => {
    const before = computeInputHash(base());
    await writeFile(join(dir, 'motd'), 'hello again\n');
    expect(computeInputHash(base())).not.toBe(before);
  });

  it('changes with the composer version and the extra inputs', () => {
    expect(computeInputHash({ ...base(), composerVersion: 'cosa-debian/2' })).not.toBe(computeInputHash(base()));
    expect(computeInputHash({ ...base(), extra: { sources: ['deb x'] } })).not.toBe(computeInputHash(base()));
  });

  it('formats packages as name=epoch:version-release.arch', () => {
    expect(packageKey({ name: 'libattr1', epoch: '1', version: '2.5.1', release: '4', arch: 'amd64' })).toBe('libattr1=1:2.5.1-4.amd64');
  });
});
