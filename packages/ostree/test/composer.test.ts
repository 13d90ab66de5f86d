import { describe, expect, it } from 'vitest';
import type { Manifest } from '@cosa/schema';
import { registerComposer, selectComposer, type Composer, type ComposerRegistry } from '@cosa/ostree';
import { manifestKind } from '../src/composer.js';
import { hasTool } from '@cosa/ostree/internal';

const fakeDebian: Composer = {
  name: 'debian',
  version: async () => 'test',
  resolve: async () => ({ packages: [] }),
  inputHash: async () => ({ inputHash: 'x', packages: [] }),
  compose: async () => { throw new Error('unused'); },
  fetch: async () => {},
};

describe('composer selection', () => {
  it('picks the registered Debian composer for a manifest with a debian section', async () => {
    const registry: ComposerRegistry = new Map();
    registerComposer('debian', () => fakeDebian, registry);
    const m = { debian: { suite: 'bookworm' } } as Manifest;
    expect(manifestKind(m)).toBe('debian');
    expect(await selectComposer(m, { registry })).toBe(fakeDebian);
  });

  it('uses the built-in Debian composer when none is registered', async () => {
    expect((await selectComposer({ debian: { suite: 'bookworm' } } as Manifest, { registry: new Map() })).name).toBe('debian');
  });

  it('picks rpm-ostree when it is installed and dnf otherwise for an RPM treefile', async () => {
    const m = { packages: ['bash'] } as Manifest;
    expect((await selectComposer(m, { registry: new Map(), hasRpmOstree: true })).name).toBe('rpm-ostree');
    expect((await selectComposer(m, { registry: new Map(), hasRpmOstree: false })).name).toBe('dnf');
    // Without the override the binary is probed on PATH.
    expect((await selectComposer(m, { registry: new Map() })).name).toBe((await hasTool('rpm-ostree')) ? 'rpm-ostree' : 'dnf');
  });
});
