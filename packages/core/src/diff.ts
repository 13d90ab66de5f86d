/**
 * `cosa diff`: what changed between two builds: packages added, removed, up- or downgraded (from
 * the builds' generated lockfiles) and the file-level changes between their commits (`ostree diff`).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, type MetaJson, type OnProgress } from '@cosa/schema';
import { parseJsonText } from '@cosa/schema/internal';
import { diffCommits, importRepoTar, initRepo, revParse, type CommitFileChange } from '@cosa/ostree';
import { diffPackages, PKGDIFF_ADDED, PKGDIFF_REMOVED, type PackageVersion } from './pkgdiff.js';
import { openWorkdir, type Workdir, type WorkdirLike } from './workdir.js';
import { hostArch } from './arch.js';

/** Options of {@link diffBuilds}. */
export interface DiffBuildsOptions {
  workdir: WorkdirLike;
  /** The older build (default: the build before `to` in builds.json). */
  from?: string;
  /** The newer build (default: the latest). */
  to?: string;
  arch?: string;
  /** Package changes (default true unless only `files` is asked for). */
  packages?: boolean;
  /** File changes (default true unless only `packages` is asked for). */
  files?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** One package change between two builds. */
export interface PackageChange {
  name: string;
  change: 'added' | 'removed' | 'upgraded' | 'downgraded';
  arch: string;
  /** The version in the older build (absent when added). */
  from?: string;
  /** The version in the newer build (absent when removed). */
  to?: string;
}

/** One file change between two commits. */
export interface FileChange {
  change: 'added' | 'modified' | 'removed';
  path: string;
}

/** The result of {@link diffBuilds}. */
export interface BuildDiff {
  from: { build: string; commit: string };
  to: { build: string; commit: string };
  arch: string;
  /** Sorted by name; absent when not asked for. */
  packages?: PackageChange[];
  /** Sorted by path; absent when not asked for. */
  files?: FileChange[];
}

const CHANGE_NAMES = ['added', 'removed', 'upgraded', 'downgraded'] as const;
const FILE_STATUS: Record<CommitFileChange['status'], FileChange['change']> = { A: 'added', M: 'modified', D: 'removed' };

/** Reads a build's package list from its `manifest-lock.generated.<arch>.json`. */
export async function readBuildPackages(wd: Workdir, build: string, arch: string): Promise<PackageVersion[]> {
  const file = join(wd.builds.buildDir(build, arch), `manifest-lock.generated.${arch}.json`);
  const text = await readFile(file, 'utf8').catch((e: unknown) => {
    throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${build} has no package list (${file})`, { cause: e, hint: 'the build was made without a compose record; use --files' });
  });
  const lock = parseJsonText(text, file) as { packages?: Record<string, { evra?: string }> } | null;
  return Object.entries(lock?.packages ?? {}).map(([name, v]) => {
    const evra = v.evra ?? '';
    const i = evra.lastIndexOf('.');
    return { name, evr: i > 0 ? evra.slice(0, i) : evra, arch: i > 0 ? evra.slice(i + 1) : '' };
  });
}

/** Makes sure a build's commit is in the workdir's repo (imported from its ostree tar when pruned). */
async function ensureCommit(wd: Workdir, build: string, arch: string, meta: MetaJson, o: DiffBuildsOptions): Promise<string> {
  const commit = meta['ostree-commit'];
  const sig = o.signal ? { signal: o.signal } : {};
  await initRepo({ path: wd.repo, mode: 'bare-user', ...sig });
  if (await revParse({ repo: wd.repo, ref: commit, ...sig })) return commit;
  const tar = meta.images?.ostree?.path;
  if (!tar) throw new CosaError('COSA_BUILD_NOT_FOUND', `commit ${commit} of build ${build} is not in ${wd.repo} and the build has no ostree artifact`);
  if (!tar.endsWith('.tar')) {
    throw new CosaError('COSA_BUILD_COMPRESSED', `the ostree artifact of build ${build} is compressed (${tar})`, { hint: 'run `cosa uncompress` first' });
  }
  await importRepoTar({ tar: join(wd.builds.buildDir(build, arch), tar), repo: wd.repo, tmpDir: wd.tmpDir, ...sig });
  return commit;
}

/** The two builds to compare: explicit ids, or the latest and the one before it. */
async function pickBuilds(wd: Workdir, o: DiffBuildsOptions, arch: string): Promise<[string, string]> {
  const to = await wd.builds.resolve(o.to ?? 'latest', arch);
  if (o.from !== undefined) return [await wd.builds.resolve(o.from, arch), to];
  const list = (await wd.builds.list()).filter((b) => b.arches.includes(arch)).map((b) => b.id);
  const from = list[list.indexOf(to) + 1];
  if (from === undefined) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${to} has no earlier build to compare with`, { hint: 'pass --from' });
  return [from, to];
}

/**
 * Compares two builds of a workdir: package changes from their package lists and file changes
 * between their commits. Nothing in the workdir changes, except that a commit missing from
 * `tmp/repo` is imported from the build's ostree tar.
 */
export async function diffBuilds(o: DiffBuildsOptions): Promise<BuildDiff> {
  const wd = await openWorkdir(o.workdir);
  const arch = o.arch ?? hostArch();
  const [fromId, toId] = await pickBuilds(wd, o, arch);
  const [fromMeta, toMeta] = await Promise.all([wd.builds.getMeta(fromId, arch), wd.builds.getMeta(toId, arch)]);
  const wantPkgs = o.packages ?? o.files !== true;
  const wantFiles = o.files ?? o.packages !== true;
  const out: BuildDiff = {
    from: { build: fromId, commit: fromMeta['ostree-commit'] },
    to: { build: toId, commit: toMeta['ostree-commit'] },
    arch,
  };
  if (wantPkgs) {
    const [a, b] = await Promise.all([readBuildPackages(wd, fromId, arch), readBuildPackages(wd, toId, arch)]);
    out.packages = diffPackages(a, b).map(([name, type, d]) => {
      const prev = d.PreviousPackage;
      const next = d.NewPackage;
      return {
        name,
        change: CHANGE_NAMES[type] ?? 'upgraded',
        arch: (next ?? prev)?.[2] ?? '',
        ...(prev && type !== PKGDIFF_ADDED ? { from: prev[1] } : {}),
        ...(next && type !== PKGDIFF_REMOVED ? { to: next[1] } : {}),
      };
    });
  }
  if (wantFiles) {
    const from = await ensureCommit(wd, fromId, arch, fromMeta, o);
    const to = await ensureCommit(wd, toId, arch, toMeta, o);
    const changes = from === to ? [] : await diffCommits({ repo: wd.repo, from, to, ...(o.signal ? { signal: o.signal } : {}) });
    out.files = changes.map((c) => ({ change: FILE_STATUS[c.status], path: c.path }));
  }
  return out;
}

/** Renders a {@link BuildDiff} as text lines for a terminal. */
export function formatBuildDiff(d: BuildDiff): string[] {
  const lines = [`Diff from ${d.from.build} (${d.from.commit.slice(0, 12)}) to ${d.to.build} (${d.to.commit.slice(0, 12)}), ${d.arch}`];
  if (d.packages) {
    lines.push(`Packages: ${d.packages.length} changed`);
    for (const p of d.packages) {
      const v = p.change === 'added' ? p.to : p.change === 'removed' ? p.from : `${p.from ?? ''} -> ${p.to ?? ''}`;
      lines.push(`  ${p.change.padEnd(10)} ${p.name} ${v ?? ''}`.trimEnd());
    }
  }
  if (d.files) {
    lines.push(`Files: ${d.files.length} changed`);
    for (const f of d.files) lines.push(`  ${f.change === 'added' ? 'A' : f.change === 'removed' ? 'D' : 'M'} ${f.path}`);
  }
  return lines;
}
