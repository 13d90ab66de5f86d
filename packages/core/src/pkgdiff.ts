/** Package differences between two builds, in the original's `pkgdiff` shape. */

/** A resolved package: name, full version (epoch:version-release or the Debian version) and arch. */
export interface PackageVersion {
  name: string;
  evr: string;
  arch: string;
}

/** rpm-ostree's RpmOstreePackageDiffTypes. */
export const PKGDIFF_ADDED = 0;
export const PKGDIFF_REMOVED = 1;
export const PKGDIFF_UPGRADED = 2;
export const PKGDIFF_DOWNGRADED = 3;

/** One pkgdiff item: `[name, type, {PreviousPackage?: [n, evr, arch], NewPackage?: [n, evr, arch]}]`. */
export type PkgDiffItem = [string, number, { PreviousPackage?: [string, string, string]; NewPackage?: [string, string, string] }];

function cmpPart(a: string, b: string): number {
  // A simplified dpkg/rpm version comparison: digit runs numerically, the rest lexically, ~ sorts first.
  const re = /(\d+|[^\d]+)/g;
  const pa = a.match(re) ?? [];
  const pb = b.match(re) ?? [];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return y?.startsWith('~') ? 1 : -1;
    if (y === undefined) return x.startsWith('~') ? -1 : 1;
    if (x === y) continue;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) return Number(x) - Number(y) < 0 ? -1 : 1;
    if (x.startsWith('~') !== y.startsWith('~')) return x.startsWith('~') ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** Compares two versions (epoch first, then the rest); negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const ea = /^(\d+):(.*)$/.exec(a);
  const eb = /^(\d+):(.*)$/.exec(b);
  const epa = ea ? Number(ea[1]) : 0;
  const epb = eb ? Number(eb[1]) : 0;
  if (epa !== epb) return epa < epb ? -1 : 1;
  return cmpPart(ea ? ea[2]! : a, eb ? eb[2]! : b);
}

/** Computes the pkgdiff from `previous` to `current`, sorted by name. */
export function diffPackages(previous: PackageVersion[], current: PackageVersion[]): PkgDiffItem[] {
  const key = (p: PackageVersion) => `${p.name}.${p.arch}`;
  const prev = new Map(previous.map((p) => [key(p), p]));
  const cur = new Map(current.map((p) => [key(p), p]));
  const out: PkgDiffItem[] = [];
  for (const [k, p] of cur) {
    const o = prev.get(k);
    if (!o) out.push([p.name, PKGDIFF_ADDED, { NewPackage: [p.name, p.evr, p.arch] }]);
    else if (o.evr !== p.evr) {
      const type = compareVersions(o.evr, p.evr) > 0 ? PKGDIFF_DOWNGRADED : PKGDIFF_UPGRADED;
      out.push([p.name, type, { PreviousPackage: [o.name, o.evr, o.arch], NewPackage: [p.name, p.evr, p.arch] }]);
    }
  }
  for (const [k, o] of prev) if (!cur.has(k)) out.push([o.name, PKGDIFF_REMOVED, { PreviousPackage: [o.name, o.evr, o.arch] }]);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
}
