import { describe, expect, it } from 'vitest';
import { diffPackages, PKGDIFF_ADDED, PKGDIFF_DOWNGRADED, PKGDIFF_REMOVED, PKGDIFF_UPGRADED } from '../src/pkgdiff.js';
import { expandVersionPrefix, nextVersion } from '../src/version.js';

const now = new Date(Date.UTC(2026, 10, 25, 8, 5, 9));

describe('versions', () => {
  it('expands <date:%Y%m%d> in the prefix', () => {
    expect(expandVersionPrefix('12.<date:%Y%m%d>.dev', now)).toBe('12.20261125.dev');
  });
  it('starts at .0 and increments the previous version with the same prefix', () => {
    expect(nextVersion({ prefix: '12.<date:%Y%m%d>', now })).toBe('12.20261125.0');
    expect(nextVersion({ prefix: '12.<date:%Y%m%d>', previous: '12.20261125.0', now })).toBe('12.20261125.1');
    expect(nextVersion({ prefix: '12.<date:%Y%m%d>', previous: '12.20261125.9-2', now })).toBe('12.20261125.10');
  });
  it('restarts at .0 when the date part changed', () => {
    expect(nextVersion({ prefix: '12.<date:%Y%m%d>', previous: '12.20261124.4', now })).toBe('12.20261125.0');
  });
  it('without a prefix: a timestamp, made unique when the previous build has the same one', () => {
    const ts = nextVersion({ now });
    expect(ts).toMatch(/^\d{14}$/);
    expect(nextVersion({ previous: '20200101000000', now })).toBe(ts);
    expect(nextVersion({ previous: ts, now })).toBe(`${ts}.1`);
    expect(nextVersion({ previous: `${ts}.1`, now })).toBe(`${ts}.2`);
  });
});

describe('pkgdiff', () => {
  it('reports added, removed, upgraded and downgraded packages with rpm-ostree type codes', () => {
    const d = diffPackages(
      [{ name: 'a', evr: '1.0-1', arch: 'amd64' }, { name: 'b', evr: '2.0', arch: 'all' }, { name: 'c', evr: '1:1.2', arch: 'amd64' }, { name: 'e', evr: '1', arch: 'all' }],
      [{ name: 'a', evr: '1.0-2', arch: 'amd64' }, { name: 'c', evr: '1:1.10~rc1', arch: 'amd64' }, { name: 'd', evr: '5', arch: 'all' }, { name: 'e', evr: '1', arch: 'all' }],
    );
    expect(d).toEqual([
      ['a', PKGDIFF_UPGRADED, { PreviousPackage: ['a', '1.0-1', 'amd64'], NewPackage: ['a', '1.0-2', 'amd64'] }],
      ['b', PKGDIFF_REMOVED, { PreviousPackage: ['b', '2.0', 'all'] }],
      ['c', PKGDIFF_UPGRADED, { PreviousPackage: ['c', '1:1.2', 'amd64'], NewPackage: ['c', '1:1.10~rc1', 'amd64'] }],
      ['d', PKGDIFF_ADDED, { NewPackage: ['d', '5', 'all'] }],
    ]);
    expect(diffPackages([{ name: 'x', evr: '2', arch: 'all' }], [{ name: 'x', evr: '1', arch: 'all' }])[0]?.[1]).toBe(PKGDIFF_DOWNGRADED);
  });
});
