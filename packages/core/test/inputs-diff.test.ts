import { describe, expect, it } from 'vitest';
import type { ComposeInputs } from '@cosa/ostree';
import { diffInputs } from '../src/index.js';
import { decideKind, type KindFacts } from '../src/build-plan.js';
import { diffJson, type InputsRecord } from '../src/inputs.js';

function compose(): ComposeInputs {
  return {
    schema: 1,
    composer: { name: 'dnf', version: '4.14.0' },
    arch: 'x86_64',
    variant: null,
    manifest: { ref: 'x', packages: ['bash', 'jq'], postprocess: ['echo a', 'echo b', 'echo c'] },
    files: { 'manifest.yaml': { type: 'file', mode: '0644', size: 10, sha256: 'a'.repeat(64) } },
    overlays: [{ name: '10x', tree: { 'etc/x': { type: 'file', mode: '0644', size: 2, sha256: 'b'.repeat(64) } } }],
    overrides: { rootfs: {}, rpm: {} },
    packages: [
      { name: 'bash', evr: '5.2-1', arch: 'x86_64', checksum: 'sha256:1' },
      { name: 'jq', evr: '1.6-2.1', arch: 'x86_64', checksum: 'sha256:2' },
    ],
    extra: {},
  };
}

function record(c: ComposeInputs = compose(), image: unknown = { size: 8 }): InputsRecord {
  return { inputhash: JSON.stringify(c).length.toString(), compose: c, image: { checksum: JSON.stringify(image), config: image } };
}

describe('what changed between two inputs records', () => {
  it('says nothing for equal records', () => {
    expect(diffInputs(record(), record())).toEqual([]);
  });

  it('names packages added, removed, changed and rebuilt', () => {
    const c = compose();
    c.packages = [
      { name: 'bash', evr: '5.2-2', arch: 'x86_64', checksum: 'sha256:3' },
      { name: 'less', evr: '590-2', arch: 'x86_64' },
    ];
    expect(diffInputs(record(), record(c))).toEqual(['packages: bash 5.2-1 → 5.2-2, -jq 1.6-2.1, +less 590-2']);
    const d = compose();
    d.packages[0] = { ...d.packages[0]!, checksum: 'sha256:9' };
    expect(diffInputs(record(), record(d))).toEqual(['packages: bash 5.2-1 rebuilt']);
  });

  it('names the manifest key that changed, by path', () => {
    const c = compose();
    c.manifest = { ref: 'x', packages: ['bash', 'jq', 'vim'], postprocess: ['echo a', 'echo B', 'echo c'] };
    expect(diffInputs(record(), record(c))).toEqual(['manifest: packages +vim, postprocess[1] changed']);
  });

  it('names files added, removed, edited, re-moded and re-linked in overrides, overlays and config', () => {
    const c = compose();
    c.overrides.rootfs = {
      'usr/share/x': { type: 'file', mode: '0644', size: 1, sha256: 'c'.repeat(64) },
      'usr/bin/l': { type: 'symlink', target: 'x' },
    };
    c.overlays[0]!.tree['etc/x'] = { type: 'file', mode: '0755', size: 2, sha256: 'b'.repeat(64) };
    c.files['manifest.yaml'] = { type: 'file', mode: '0644', size: 11, sha256: 'd'.repeat(64) };
    const before = compose();
    before.overrides.rootfs = { 'usr/bin/l': { type: 'symlink', target: 'y' }, 'usr/old': { type: 'dir', mode: '0755' } };
    expect(diffInputs(record(before), record(c))).toEqual([
      'config: manifest.yaml changed',
      'overlay.d/10x: etc/x mode 0644 → 0755',
      'overrides/rootfs: usr/bin/l link → x, usr/old removed, usr/share/x added',
    ]);
  });

  it('names the image config key when only the image inputs changed', () => {
    expect(diffInputs(record(), record(compose(), { size: 9 }))).toEqual(['image.yaml: size changed']);
  });

  it('reports a composer upgrade and a new overlay layer', () => {
    const c = compose();
    c.composer.version = '4.15.0';
    c.overlays.push({ name: '20y', tree: {} });
    expect(diffInputs(record(), record(c))).toEqual(['composer: dnf 4.14.0 → dnf 4.15.0', 'overlay.d: layers 10x → 10x 20y']);
  });

  it('caps a long list of changes', () => {
    const c = compose();
    for (let i = 0; i < 20; i++) c.overrides.rootfs[`f${String(i).padStart(2, '0')}`] = { type: 'dir', mode: '0755' };
    const [line] = diffInputs(record(), record(c));
    expect(line).toMatch(/^overrides\/rootfs: f00 added, .*f07 added, … \(12 more\)$/);
  });

  it('diffs JSON values by path, ignoring key order', () => {
    expect(diffJson({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 })).toEqual([]);
    expect(diffJson({ a: [{ x: 1 }] }, { a: [{ x: 2 }, { x: 3 }] })).toEqual(['a changed (1 → 2 items)']);
    expect(diffJson({ a: 1 }, { b: 1 })).toEqual(['a removed', 'b added']);
  });
});

describe('the kind of build', () => {
  const prev = { inputHash: 'h', ref: 'r', imageInputMatches: true, imagesPresent: true };
  const facts = (f: Partial<KindFacts>): KindFacts => ({ inputHash: 'h', ref: 'r', previous: prev, ...f });

  it.each([
    ['first build', facts({ previous: undefined }), 'compose'],
    ['nothing changed', facts({}), 'unchanged'],
    ['image config changed', facts({ previous: { ...prev, imageInputMatches: false } }), 'image-only'],
    ['an image is missing', facts({ previous: { ...prev, imagesPresent: false } }), 'image-only'],
    ['--force-image', facts({ forceImage: true }), 'image-only'],
    ['inputs changed', facts({ inputHash: 'h2' }), 'compose'],
    ['ref changed', facts({ ref: 'r2' }), 'compose'],
    ['--force, commit in the repo', facts({ force: true, previousCommitInRepo: async () => true }), 'recommit'],
    ['--force, commit gone', facts({ force: true, previousCommitInRepo: async () => false }), 'compose'],
    ['--force-nocache', facts({ force: true, forceNocache: true, previousCommitInRepo: async () => true }), 'compose'],
  ] as const)('%s → %s', async (_name, f, kind) => {
    expect((await decideKind(f)).kind).toBe(kind);
  });
});
