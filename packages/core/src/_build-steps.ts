/**
 * The steps that execute a {@link BuildPlan}, in order: {@link makeCommit}, {@link writeArtifacts}
 * (ostree tar and disk images, at the same time), meta (in _build-meta.ts), {@link publish},
 * {@link extendBuild}. Each reads the plan; none decides what kind of build this is.
 */
import { copyFile, link, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, type MetaJson, type OnProgress, withPhase } from '@cosa/schema';
import { osName } from '@cosa/schema/internal';
import { type PackageInfo, importRepoTar, INPUTHASH_KEY, recommit, revParse, showCommit, writeRepoTar, setRef } from '@cosa/ostree';
import { writeImage, selectExecutor } from '@cosa/image';
import { buildExtend } from './buildextend.js';
import { BuildsDir } from './builds-dir.js';
import type { Workdir } from './workdir.js';
import type { BuildPlan } from './build-plan.js';
import type { ComposeInput } from './_compose-input.js';
import type { Artifact } from './_build-meta.js';
import type { BuildOptions } from './build.js';
import { writeBuildSbom } from './sbom.js';
import { sourceDateEpoch } from './source-date.js';

/** What every step reads. */
export interface BuildContext {
  wd: Workdir;
  plan: BuildPlan;
  compose: ComposeInput;
  options: BuildOptions;
  /** The build's timestamp. */
  now: Date;
}

/** The commit of the new build. */
export interface CommitMade {
  commit: string;
  /** The package set when the tree was composed (else the previous build's lockfile applies). */
  packages?: PackageInfo[];
  /** `ostree-n-*` and other compose statistics. */
  stats: Record<string, number>;
  composed: boolean;
}

const sig = (o: { signal?: AbortSignal | undefined }): { signal?: AbortSignal } => (o.signal ? { signal: o.signal } : {});

/** A new commit with the build's version on the tree of `from`. */
function commitOnTree(ctx: BuildContext, from: string): Promise<string> {
  const { wd, plan } = ctx;
  return recommit({
    repo: wd.repo, branch: plan.ref, from, subject: `${osName(ctx.compose.cfg.manifest)} ${plan.version}`,
    metadata: { version: plan.version, [INPUTHASH_KEY]: plan.inputHash }, fsync: false, ...sig(ctx.options),
  });
}

/** image-only: the previous build's commit, imported from its ostree tar when tmp/repo lost it. */
async function reuseCommit(ctx: BuildContext, prev: MetaJson): Promise<CommitMade> {
  const { wd, plan } = ctx;
  const commit = prev['ostree-commit'];
  if (!(await revParse({ repo: wd.repo, ref: commit }))) {
    const tar = prev.images?.ostree?.path;
    if (!tar) throw new CosaError('COSA_BUILD_FAILED', `commit ${commit} of build ${prev.buildid} is not in tmp/repo and the build has no ostree artifact`, { hint: 'try rerunning with --force' });
    await withPhase(ctx.options.onProgress, 'import', () => importRepoTar({ tar: join(wd.buildsDir, prev.buildid, plan.arch, tar), repo: wd.repo, tmpDir: wd.tmpDir, ...sig(ctx.options) }));
  }
  return { commit, stats: {}, composed: false };
}

/** compose: the composer builds the described inputs (`opts.inputs`). */
async function composeCommit(ctx: BuildContext): Promise<CommitMade> {
  const { plan, compose, options } = ctx;
  const sde = await sourceDateEpoch({ configDir: ctx.wd.configDir, files: compose.opts.files });
  const r = await withPhase(options.onProgress, 'compose', () =>
    compose.composer.compose({
      ...compose.opts, version: plan.version, ...(plan.previous ? { parentCommit: plan.previous['ostree-commit'] } : {}), ...(sde ? { sourceDateEpoch: sde.epoch } : {}),
    }),
  );
  // The composer found the tree unchanged and kept the old commit (with the old version): a new
  // version needs a commit of its own, on the same tree.
  const stale = !r.changed && (await showCommit({ repo: ctx.wd.repo, rev: r.commit })).version !== plan.version;
  return { commit: stale ? await commitOnTree(ctx, r.commit) : r.commit, packages: r.packages, stats: r.stats, composed: true };
}

/** Step 1: the commit of the new build, as the plan's kind says. */
export async function makeCommit(ctx: BuildContext): Promise<CommitMade> {
  const { plan, options } = ctx;
  const prev = plan.previous;
  if (plan.kind === 'image-only' && prev) return reuseCommit(ctx, prev);
  if (plan.kind === 'recommit' && prev) {
    options.onProgress?.({ type: 'info', message: `inputs unchanged since build ${prev.buildid}: reusing the tree of commit ${prev['ostree-commit'].slice(0, 12)} (--force-nocache composes it again)` });
    const commit = await withPhase(options.onProgress, 'commit', () => commitOnTree(ctx, prev['ostree-commit']));
    return { commit, stats: {}, composed: false };
  }
  return composeCommit(ctx);
}

/** The ostree calls' command events (what `--verbose` and bench/build.mjs read), without the tar's transfer events (the image step reports its own). */
function commandEvents(onProgress: OnProgress | undefined): { onProgress?: OnProgress } {
  return onProgress ? { onProgress: (e) => { if (e.type !== 'transfer') onProgress(e); } } : {};
}

/** The ostree tar: linked from the previous build when the commit and ref are the same (the tar is deterministic). */
async function exportTar(ctx: BuildContext, commit: string, stage: string, tarName: string): Promise<{ sha256: string; size: number }> {
  const { wd, plan } = ctx;
  const prev = plan.previous;
  const prevTar = prev && prev['ostree-commit'] === commit && prev.ref === plan.ref ? prev.images?.ostree : undefined;
  if (prev && prevTar) {
    const src = join(wd.buildsDir, prev.buildid, plan.arch, prevTar.path);
    const ok = await link(src, join(stage, tarName)).then(() => true, () => copyFile(src, join(stage, tarName)).then(() => true, () => false));
    if (ok && prevTar.size !== undefined) return { sha256: prevTar.sha256, size: prevTar.size };
  }
  const archiveCache = join(wd.tmpDir, 'repo-archive');
  const r = await writeRepoTar({ repo: wd.repo, rev: commit, ref: plan.ref, output: join(stage, tarName), tmpDir: wd.tmpDir, archiveCache, ...sig(ctx.options), ...commandEvents(ctx.options.onProgress) });
  await setRef({ repo: archiveCache, ref: plan.buildId, rev: commit });
  return r;
}

/** Step 2: the ostree tar and the disk images into the stage (both only read tmp/repo: at the same time). */
export async function writeArtifacts(ctx: BuildContext, commit: string, stage: string): Promise<Record<string, Artifact>> {
  const { wd, plan, options } = ctx;
  const name = osName(ctx.compose.cfg.manifest);
  const artifacts: Record<string, Artifact> = {};
  const tarName = `${name}-${plan.buildId}-ostree.${plan.arch}.tar`;
  const exporting = withPhase(options.onProgress, 'export', () => exportTar(ctx, commit, stage, tarName));
  exporting.catch(() => undefined);
  try {
    const executor = plan.imageTargets.length > 0 ? await selectExecutor({ choice: options.executor ?? 'auto', cacheDir: wd.cacheDir }) : undefined;
    for (const platform of plan.imageTargets) {
      const file = `${name}-${plan.buildId}-${platform}.${plan.arch}.qcow2`;
      const img = await withPhase(options.onProgress, 'image', () =>
        writeImage({
          repo: wd.repo, commit, ref: plan.ref, osname: name, platform: 'qemu', imageConfig: ctx.compose.cfg.imageConfig, executor: executor!,
          output: join(stage, file), buildId: plan.buildId, imgid: file, tmpDir: wd.tmpDir, cacheDir: wd.cacheDir,
          ...sig(options), ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        }),
      );
      artifacts[platform] = { path: file, sha256: img.sha256, size: img.size };
    }
  } finally {
    // A failed image must not leave the export writing into a stage about to be removed.
    await exporting.catch(() => undefined);
  }
  const tar = await exporting;
  artifacts.ostree = { path: tarName, sha256: tar.sha256, size: tar.size, 'skip-compression': true };
  return artifacts;
}

/** Step 3: the SPDX SBOM of the commit into the stage (`images.sbom`). */
export async function writeSbom(ctx: BuildContext, made: CommitMade, stage: string): Promise<Artifact> {
  const { wd, plan, options } = ctx;
  return withPhase(options.onProgress, 'sbom', () =>
    writeBuildSbom({ repo: wd.repo, commit: made.commit, name: osName(ctx.compose.cfg.manifest), buildId: plan.buildId, arch: plan.arch, dir: stage, tmpDir: wd.tmpDir, packages: made.packages, signal: options.signal }),
  );
}

/** Step 4: rename the stage into builds/<id>/<arch>, record it in builds.json, repoint latest. */
export async function publish(ctx: BuildContext, stage: string): Promise<string> {
  const { wd, plan } = ctx;
  const finalDir = join(wd.buildsDir, plan.buildId, plan.arch);
  await withPhase(ctx.options.onProgress, 'publish', async () => {
    await writeFile(join(stage, '.cosa-staged'), `${plan.buildId}\n`);
    await mkdir(join(wd.buildsDir, plan.buildId), { recursive: true });
    await rename(stage, finalDir);
    await new BuildsDir(wd.buildsDir).insertBuild(plan.buildId, plan.arch);
    await rm(join(finalDir, '.cosa-staged'), { force: true });
  });
  return finalDir;
}

/** Step 5: the platform targets besides qemu (buildextend skips images the build already has). */
export async function extendBuild(ctx: BuildContext, buildId: string): Promise<MetaJson | undefined> {
  const { wd, plan, options } = ctx;
  if (plan.extendTargets.length === 0) return undefined;
  await buildExtend({
    workdir: wd.dir, build: buildId, arch: plan.arch, platforms: plan.extendTargets,
    ...(options.executor ? { executor: options.executor } : {}), ...sig(options), ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  return new BuildsDir(wd.buildsDir).getMeta(buildId, plan.arch);
}
