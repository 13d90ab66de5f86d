/** meta.json of a new build: provenance, package set and pkgdiff, artifacts, input hashes. */
import { redactGitUrl } from './_git-url.js';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type MetaJson, stableStringify, validateMetaJson, writeFileAtomic } from '@cosa/schema';
import { osName } from '@cosa/schema/internal';
import { type PackageInfo, readCommitMeta, showCommit } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import { metaStampNow } from './builds-dir.js';
import { diffPackages, type PackageVersion } from './pkgdiff.js';
import { imageInputChecksum } from './build-plan.js';
import type { BuildContext, CommitMade } from './_build-steps.js';

/** An artifact as meta.json lists it. */
export interface Artifact {
  path: string;
  sha256: string;
  size: number;
  'skip-compression'?: boolean;
}

/** RFC 3339 without milliseconds. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Config provenance as the original records it (git describe, dirty, origin, branch). */
async function configGit(configDir: string): Promise<{ gitrev: string; dirty: boolean; git?: { commit: string; origin: string; branch?: string; dirty: string } }> {
  const git = (args: string[]) => run(['git', '-C', configDir, ...args]).then((r) => r.stdout.trim(), () => undefined);
  const commit = await git(['rev-parse', 'HEAD']);
  if (!commit) return { gitrev: 'unknown', dirty: false };
  const gitrev = (await git(['describe', '--tags', '--always', '--abbrev=42'])) ?? commit;
  const status = (await git(['status', '--porcelain', '--untracked-files=no'])) ?? '';
  const dirty = status !== '';
  const origin = redactGitUrl((await git(['config', '--get', 'remote.origin.url'])) ?? configDir);
  const branch = await git(['rev-parse', '--abbrev-ref', 'HEAD']);
  return { gitrev, dirty, git: { commit, origin, ...(branch && branch.length >= 3 ? { branch } : {}), dirty: String(dirty) } };
}

function toPackageVersions(pkgs: PackageInfo[]): PackageVersion[] {
  return pkgs.map((p) => ({
    name: p.name,
    evr: `${p.epoch && p.epoch !== '0' ? `${p.epoch}:` : ''}${p.version}${p.release ? `-${p.release}` : ''}`,
    arch: p.arch,
  }));
}

/** The generated lockfile of a build (`manifest-lock.generated.<arch>.json`), as the original. */
export function generatedLock(pkgs: PackageInfo[], now: Date): { packages: Record<string, { evra: string }>; metadata: { generated: string } } {
  const packages: Record<string, { evra: string }> = {};
  for (const p of toPackageVersions(pkgs).sort((a, b) => (a.name < b.name ? -1 : 1))) packages[p.name] = { evra: `${p.evr}.${p.arch}` };
  return { packages, metadata: { generated: rfc3339(now) } };
}

function lockToPackages(lock: unknown): PackageVersion[] {
  const pk = (lock as { packages?: Record<string, { evra?: string }> } | undefined)?.packages ?? {};
  return Object.entries(pk).map(([name, v]) => {
    const evra = v.evra ?? '';
    const i = evra.lastIndexOf('.');
    return { name, evr: i > 0 ? evra.slice(0, i) : evra, arch: i > 0 ? evra.slice(i + 1) : '' };
  });
}

const readJson = (file: string): Promise<unknown> => readFile(file, 'utf8').then((t) => JSON.parse(t) as unknown, () => undefined);

/**
 * Writes the build's lockfile (from the compose, else the previous build's: same commit) into the
 * stage and returns the pkgdiff against the parent build.
 */
async function writeLockAndDiff(ctx: BuildContext, made: CommitMade, stage: string): Promise<unknown[] | undefined> {
  const { wd, plan } = ctx;
  const arch = plan.arch;
  const lockName = `manifest-lock.generated.${arch}.json`;
  const lockJson = made.packages ? generatedLock(made.packages, ctx.now) : plan.previous ? await readJson(join(wd.buildsDir, plan.previous.buildid, arch, lockName)) : undefined;
  if (!lockJson) return undefined;
  await writeFile(join(stage, lockName), stableStringify(lockJson));
  if (!plan.parent) return undefined;
  const parentLock = await readJson(join(wd.buildsDir, plan.parent.buildid, arch, lockName));
  return parentLock ? diffPackages(lockToPackages(parentLock), made.packages ? toPackageVersions(made.packages) : lockToPackages(lockJson)) : undefined;
}

/** Writes meta.json (and commitmeta.json, the lockfile) into the stage; returns the validated meta. */
export async function writeMeta(ctx: BuildContext, made: CommitMade, artifacts: Record<string, Artifact>, stage: string): Promise<MetaJson> {
  const { wd, plan } = ctx;
  const manifest = ctx.compose.cfg.manifest;
  const name = osName(manifest);
  const [git, info, commitMeta, pkgdiff, variant] = await Promise.all([
    configGit(wd.configDir),
    showCommit({ repo: wd.repo, rev: made.commit }),
    readCommitMeta({ repo: wd.repo, rev: made.commit }),
    writeLockAndDiff(ctx, made, stage),
    wd.configVariant(),
  ]);
  await writeFile(join(stage, 'commitmeta.json'), stableStringify(commitMeta));
  const m: Record<string, unknown> = {
    buildid: plan.buildId,
    name,
    'ostree-commit': made.commit,
    'ostree-version': plan.version,
    'ostree-timestamp': rfc3339(info.timestamp),
    ref: plan.ref,
    summary: manifest.rojig?.summary ?? name,
    'rpm-ostree-inputhash': plan.inputHash,
    'coreos-assembler.basearch': plan.arch,
    'coreos-assembler.build-timestamp': rfc3339(ctx.now),
    'coreos-assembler.code-source': 'cosa-ts',
    'coreos-assembler.config-gitrev': git.gitrev,
    'coreos-assembler.config-dirty': String(git.dirty),
    'coreos-assembler.image-config-checksum': plan.inputs.image.checksum,
    'coreos-assembler.image-input-checksum': imageInputChecksum(made.commit, plan.inputs.image.checksum),
    'coreos-assembler.image-genver': plan.genver,
    'coreos-assembler.meta-stamp': metaStampNow(),
    images: artifacts,
  };
  if (variant) m['coreos-assembler.config-variant'] = variant;
  const ov = plan.inputs.compose.overrides;
  if (Object.keys(ov.rootfs).length > 0 || Object.keys(ov.rpm).length > 0) m['coreos-assembler.overrides-active'] = true;
  if (git.git) m['coreos-assembler.container-config-git'] = git.git;
  if (ctx.options.delayMetaMerge) m['coreos-assembler.delayed-meta-merge'] = true;
  if (pkgdiff) m.pkgdiff = pkgdiff;
  if (plan.parent && ctx.options.parentBuild) m['parent-pkgdiff'] = pkgdiff ?? [];
  if (plan.parent) {
    m['fedora-coreos.parent-version'] = plan.parent['ostree-version'];
    m['fedora-coreos.parent-commit'] = plan.parent['ostree-commit'];
  }
  for (const [k, v] of Object.entries(made.stats)) {
    if (k.startsWith('ostree-n-') || k === 'ostree-content-bytes-written') m[k] = v;
  }
  const meta = validateMetaJson(m, join(stage, 'meta.json'));
  await writeFileAtomic(join(stage, 'meta.json'), stableStringify(meta));
  return meta;
}
