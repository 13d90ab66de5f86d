/**
 * An SPDX 2.3 SBOM per build (`<name>-<id>-sbom.<arch>.spdx.json`): every package installed in the
 * commit (read from the commit's own package database: dpkg status for Debian trees, the rpmdb for
 * RPM trees) with version, arch, checksum and license where known, and the commit itself. The
 * document depends on the commit and the package checksums only (no clock, no random ids), so
 * the same commit always gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, writeFileAtomic } from '@cosa/schema';
import { checkoutSubpath, parseDpkgStatus, showCommit, type PackageInfo } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import { spdxLicenseFromDep5 } from './_spdx-license.js';

/** One installed package as the SBOM lists it. */
export interface SbomPackage {
  /** `deb` or `rpm`. */
  type: 'deb' | 'rpm';
  name: string;
  /** Full version: `[epoch:]version[-release]`. */
  version: string;
  arch: string;
  /** Source package, when known. */
  source?: string;
  /** SPDX license expression, when the package states one in a machine-readable form. */
  license?: string;
  /** Checksum of the package file, from the repository metadata it was installed from. */
  checksum?: { algorithm: 'SHA256' | 'SHA1' | 'MD5'; value: string };
}

/** Where package databases live in a committed tree, first match wins. */
const DPKG_DIRS = ['/usr/share/factory/var/lib/dpkg', '/var/lib/dpkg', '/usr/lib/sysimage/dpkg'];
const RPMDB_DIRS = ['/usr/lib/sysimage/rpm', '/usr/share/rpm', '/var/lib/rpm'];

/** `SHA256:<hex>`, `MD5Sum:<hex>`, `sha256=<hex>` or a bare sha256 → an SPDX checksum. */
function parseChecksum(v: string | undefined): SbomPackage['checksum'] {
  const m = /^(?:(sha256|sha1|md5|md5sum)[:=])?([0-9a-f]+)$/i.exec(v ?? '');
  if (!m) return undefined;
  const hex = m[2]!.toLowerCase();
  const algo = (m[1] ?? '').toLowerCase();
  if ((algo === 'sha256' || algo === '') && hex.length === 64) return { algorithm: 'SHA256', value: hex };
  if (algo === 'sha1' && hex.length === 40) return { algorithm: 'SHA1', value: hex };
  if (algo.startsWith('md5') && hex.length === 32) return { algorithm: 'MD5', value: hex };
  return undefined;
}

function fullVersion(p: { epoch?: string | undefined; version: string; release?: string | undefined }): string {
  return `${p.epoch && p.epoch !== '0' ? `${p.epoch}:` : ''}${p.version}${p.release ? `-${p.release}` : ''}`;
}

async function debianPackages(o: { repo: string; commit: string; work: string; signal?: AbortSignal | undefined }): Promise<SbomPackage[] | undefined> {
  const dpkg = join(o.work, 'dpkg');
  let found = false;
  for (const d of DPKG_DIRS) {
    if (await checkoutSubpath({ repo: o.repo, rev: o.commit, subpath: d, dest: dpkg, signal: o.signal })) {
      found = true;
      break;
    }
  }
  if (!found) return undefined;
  const status = await readFile(join(dpkg, 'status'), 'utf8').catch(() => undefined);
  if (status === undefined) return undefined;
  const docs = join(o.work, 'doc');
  const haveDocs = await checkoutSubpath({ repo: o.repo, rev: o.commit, subpath: '/usr/share/doc', dest: docs, signal: o.signal });
  const docNames = new Set(haveDocs ? await readdir(docs) : []);
  const out: SbomPackage[] = [];
  for (const p of parseDpkgStatus(status)) {
    let license: string | undefined;
    if (docNames.has(p.name)) {
      const text = await readFile(join(docs, p.name, 'copyright'), 'utf8').catch(() => undefined);
      if (text !== undefined) license = spdxLicenseFromDep5(text);
    }
    out.push({ type: 'deb', name: p.name, version: fullVersion(p), arch: p.arch, ...(p.source ? { source: p.source } : {}), ...(license ? { license } : {}) });
  }
  return out;
}

async function rpmPackages(o: { repo: string; commit: string; work: string; signal?: AbortSignal | undefined }): Promise<SbomPackage[] | undefined> {
  const db = join(o.work, 'rpmdb');
  let found = false;
  for (const d of RPMDB_DIRS) {
    if (await checkoutSubpath({ repo: o.repo, rev: o.commit, subpath: d, dest: db, signal: o.signal })) {
      found = true;
      break;
    }
  }
  if (!found) return undefined;
  const qf = '%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t%{LICENSE}\\n';
  const r = await run(['rpm', `--dbpath=${db}`, '-qa', '--qf', qf], { signal: o.signal, env: { HOME: o.work } });
  const out: SbomPackage[] = [];
  for (const line of r.stdout.split('\n')) {
    const [name, epoch, version, release, arch, srpm, license] = line.split('\t');
    if (!name || name === 'gpg-pubkey' || version === undefined) continue;
    out.push({
      type: 'rpm', name, version: fullVersion({ epoch, version, release }), arch: arch ?? 'noarch',
      ...(srpm && srpm !== '(none)' ? { source: srpm } : {}),
      ...(license && license !== '(none)' ? { license } : {}),
    });
  }
  return out;
}

/**
 * The packages installed in `commit`, from its dpkg status (licenses from machine-readable
 * `/usr/share/doc/<pkg>/copyright`) or its rpmdb (the `License` tag), sorted by name and arch.
 * `known` (the compose's resolved packages) supplies checksums. COSA_BUILD_FAILED when the commit
 * has neither database.
 */
export async function readCommitPackages(o: { repo: string; commit: string; tmpDir: string; known?: PackageInfo[] | undefined; signal?: AbortSignal | undefined }): Promise<SbomPackage[]> {
  const work = await mkdtemp(join(o.tmpDir, 'sbom-'));
  try {
    const args = { repo: o.repo, commit: o.commit, work, signal: o.signal };
    const pkgs = (await debianPackages(args)) ?? (await rpmPackages(args));
    if (!pkgs) throw new CosaError('COSA_BUILD_FAILED', `commit ${o.commit} has no package database (dpkg status or rpmdb)`);
    const sums = new Map((o.known ?? []).map((p) => [`${p.name}\0${fullVersion(p)}\0${p.arch}`, parseChecksum(p.checksum)]));
    for (const p of pkgs) {
      const s = sums.get(`${p.name}\0${p.version}\0${p.arch}`);
      if (s) p.checksum = s;
    }
    return pkgs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.arch < b.arch ? -1 : a.arch > b.arch ? 1 : 0));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What the SBOM describes. */
export interface SbomSubject {
  /** OS name (`name` of meta.json). */
  name: string;
  buildId: string;
  arch: string;
  commit: string;
  /** The commit's timestamp: the document's creation time. */
  timestamp: Date;
}

function spdxId(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]/g, '-');
}

function purl(p: SbomPackage): string {
  const v = encodeURIComponent(p.version);
  return p.type === 'deb' ? `pkg:deb/debian/${encodeURIComponent(p.name)}@${v}?arch=${p.arch}` : `pkg:rpm/${encodeURIComponent(p.name)}@${v}?arch=${p.arch}`;
}

/** Builds the SPDX 2.3 document (a plain object with a fixed key order). */
export function spdxDocument(s: SbomSubject, pkgs: SbomPackage[]): Record<string, unknown> {
  const osId = 'SPDXRef-OperatingSystem';
  const refs = new Set<string>();
  const packages: Record<string, unknown>[] = [
    {
      name: s.name, SPDXID: osId, versionInfo: s.buildId, primaryPackagePurpose: 'OPERATING-SYSTEM',
      downloadLocation: 'NOASSERTION', filesAnalyzed: false,
      checksums: [{ algorithm: 'SHA256', checksumValue: s.commit }],
      licenseConcluded: 'NOASSERTION', licenseDeclared: 'NOASSERTION', copyrightText: 'NOASSERTION',
      comment: `OSTree commit ${s.commit} (${s.arch}); the checksum is the commit's`,
    },
  ];
  const relationships: Record<string, unknown>[] = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: osId }];
  const seen = new Set<string>();
  for (const p of pkgs) {
    let id = spdxId(`SPDXRef-Package-${p.type}-${p.name}-${p.arch}`);
    for (let i = 2; seen.has(id); i++) id = spdxId(`SPDXRef-Package-${p.type}-${p.name}-${p.arch}-${i}`);
    seen.add(id);
    for (const m of (p.license ?? '').matchAll(/LicenseRef-[A-Za-z0-9.-]+/g)) refs.add(m[0]);
    packages.push({
      name: p.name, SPDXID: id, versionInfo: p.version,
      ...(p.source ? { sourceInfo: `built from source package ${p.source}` } : {}),
      downloadLocation: 'NOASSERTION', filesAnalyzed: false,
      ...(p.checksum ? { checksums: [{ algorithm: p.checksum.algorithm, checksumValue: p.checksum.value }] } : {}),
      licenseConcluded: 'NOASSERTION', licenseDeclared: p.license ?? 'NOASSERTION', copyrightText: 'NOASSERTION',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl(p) }],
      primaryPackagePurpose: 'LIBRARY',
    });
    relationships.push({ spdxElementId: osId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  }
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${s.name}-${s.buildId}-${s.arch}`,
    documentNamespace: `https://cosa.invalid/spdx/${encodeURIComponent(s.name)}/${encodeURIComponent(s.buildId)}/${s.arch}/${s.commit}`,
    creationInfo: { created: s.timestamp.toISOString().replace(/\.\d{3}Z$/, 'Z'), creators: ['Tool: cosa'] },
    ...(refs.size > 0
      ? {
          hasExtractedLicensingInfos: [...refs].sort().map((licenseId) => ({
            licenseId,
            name: licenseId.slice('LicenseRef-'.length),
            extractedText: `The license named "${licenseId.slice('LicenseRef-'.length)}" in the package's machine-readable copyright file; it has no SPDX identifier.`,
          })),
        }
      : {}),
    packages,
    relationships,
  };
}

/** Options of {@link writeBuildSbom}. */
export interface WriteBuildSbomOptions {
  repo: string;
  commit: string;
  name: string;
  buildId: string;
  arch: string;
  /** The build (or staging) directory the file is written into. */
  dir: string;
  tmpDir: string;
  /** The compose's resolved packages (their checksums go into the SBOM). */
  packages?: PackageInfo[] | undefined;
  signal?: AbortSignal | undefined;
}

/** The SBOM file name of a build. */
export function sbomFileName(name: string, buildId: string, arch: string): string {
  return `${name}-${buildId}-sbom.${arch}.spdx.json`;
}

/**
 * Writes `<name>-<id>-sbom.<arch>.spdx.json` into `dir` (atomically) and returns its meta.json
 * `images.sbom` entry.
 */
export async function writeBuildSbom(o: WriteBuildSbomOptions): Promise<{ path: string; sha256: string; size: number; 'skip-compression': boolean }> {
  const info = await showCommit({ repo: o.repo, rev: o.commit, ...(o.signal ? { signal: o.signal } : {}) });
  const pkgs = await readCommitPackages({ repo: o.repo, commit: o.commit, tmpDir: o.tmpDir, known: o.packages, signal: o.signal });
  const doc = spdxDocument({ name: o.name, buildId: o.buildId, arch: o.arch, commit: o.commit, timestamp: info.timestamp }, pkgs);
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  const file = sbomFileName(o.name, o.buildId, o.arch);
  await writeFileAtomic(join(o.dir, file), text);
  const bytes = Buffer.from(text);
  return { path: file, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, 'skip-compression': true };
}
