/**
 * `cosa build`: one command turns the config into a versioned build. A plan decides the kind of
 * build from the inputs description and the previous build ({@link planBuild}, build-plan.ts); a
 * straight list of steps executes it (_build-steps.ts): commit, images, meta, publish, extend, prune.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError, type MetaJson, type OnProgress, withLock, withPhase } from '@cosa/schema';
import { initRepo, setRef } from '@cosa/ostree';
import type { ExecutorChoice } from '@cosa/image';
import { BuildsDir } from './builds-dir.js';
import { Workdir } from './workdir.js';
import { prune } from './prune.js';
import { resolvePlan, splitTargets, type BuildKind, type BuildPlan } from './build-plan.js';
import { writeInputsRecord } from './inputs.js';
import { extendBuild, makeCommit, publish, writeArtifacts, writeSbom, type BuildContext } from './_build-steps.js';
import { writeMeta } from './_build-meta.js';

export { generatedLock } from './_build-meta.js';

/** Image targets `cosa build` knows besides `ostree` (more come from buildextend). */
export type BuildTarget = 'ostree' | 'qemu' | (string & {});

/** Options of {@link build}. */
export interface BuildOptions {
  /** The workdir (created with `cosa init`). */
  workdir: string;
  /** `ostree` (commit only) and/or image platforms; default `['qemu']`. */
  targets?: BuildTarget[];
  /**
   * New commit and build even when the inputs did not change. When the input hash equals the
   * previous build's (and its commit is in `tmp/repo`), the new commit reuses that commit's tree
   * instead of composing it again: the cache by input hash. `forceNocache` composes anyway.
   */
  force?: boolean;
  /** With `force`: compose the tree again even when the input hash says it cannot differ (rpm-ostree's `--force-nocache`). */
  forceNocache?: boolean;
  /** New build (reusing the commit) even when the image inputs did not change. */
  forceImage?: boolean;
  /** Keep every build (default: prune to the last 3 + tagged). */
  skipPrune?: boolean;
  /** Explicit version (= build id). */
  version?: string;
  /** The build to diff against (default: the latest build for this arch). */
  parentBuild?: string;
  /** Fail on unknown manifest keys and unlocked packages. */
  strict?: boolean;
  /** The original's `--delay-meta-merge`: artifacts added later go to `meta.<artifact>.json` until `cosa meta --finalize`. */
  delayMetaMerge?: boolean;
  /** Where the disk image is written: auto (direct when root with loop devices, else the VM). */
  executor?: ExecutorChoice;
  /** Base arch (default: the host's). */
  arch?: string;
  /**
   * How long to wait for another build in the same workdir before failing (ms, default 15 s: long
   * enough for the lock of a killed build to go stale).
   */
  lockWaitMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What {@link build} did. */
export interface BuildResult {
  /** `built`: a new build exists; `unchanged`: nothing to do. */
  status: 'built' | 'unchanged';
  buildId: string;
  arch: string;
  /** builds/<id>/<arch> (absolute). */
  buildDir: string;
  meta: MetaJson;
  /** Absolute paths of the build's artifacts by image key. */
  artifacts: Record<string, string>;
  /** Why a new build was (or was not) made. */
  reason: string;
  /** Whether the commit was composed (false when reused). */
  composed: boolean;
  durationMs: number;
  /** The kind of build the plan chose. */
  kind: BuildKind;
  /** What changed since the previous build, one line per category (see {@link BuildPlan.changes}). */
  changes: string[];
  /** The input hash (meta.json `rpm-ostree-inputhash`). */
  inputHash: string;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

function artifactPaths(meta: MetaJson, dir: string): Record<string, string> {
  return Object.fromEntries(Object.entries(meta.images ?? {}).map(([k, v]) => [k, join(dir, (v as { path: string }).path)]));
}

/** Tells the user what the plan is: "No changes since build X" or the kind and what changed. */
function reportPlan(plan: BuildPlan, onProgress: OnProgress | undefined): void {
  if (plan.kind === 'unchanged') {
    onProgress?.({ type: 'info', message: `No changes since build ${plan.buildId}` });
    return;
  }
  onProgress?.({ type: 'info', message: `${plan.kind} build ${plan.buildId}: ${plan.reason}` });
  if (plan.changes.length > 0) onProgress?.({ type: 'info', message: `Changed: ${plan.changes.join('; ')}` });
}

/** Nothing to build: the previous build, with the follow-up targets still run. */
async function unchangedResult(ctx: BuildContext, t0: number): Promise<BuildResult> {
  const { wd, plan } = ctx;
  const prev = plan.previous!;
  const dir = join(wd.buildsDir, prev.buildid, plan.arch);
  const meta = (await extendBuild(ctx, prev.buildid)) ?? prev;
  return {
    status: 'unchanged', buildId: prev.buildid, arch: plan.arch, buildDir: dir, meta, artifacts: artifactPaths(meta, dir),
    reason: `No changes since build ${prev.buildid}`, composed: false, durationMs: Math.round(performance.now() - t0),
    kind: plan.kind, changes: [], inputHash: plan.inputHash,
  };
}

/** The steps of a new build, in order. */
async function executePlan(ctx: BuildContext, t0: number): Promise<BuildResult> {
  const { wd, plan, options } = ctx;
  await initRepo({ path: wd.repo, mode: 'bare-user' });
  const made = await makeCommit(ctx);
  if (await exists(join(wd.buildsDir, plan.buildId, plan.arch))) {
    throw new CosaError('COSA_BUILD_EXISTS', `build ${plan.buildId} (${plan.arch}) already exists`, { hint: 'pass another --version, or prune that build' });
  }
  await setRef({ repo: wd.repo, ref: plan.buildId, rev: made.commit });
  const stage = join(wd.tmpDir, `build-${plan.buildId}-${randomBytes(3).toString('hex')}`);
  await mkdir(stage, { recursive: true });
  try {
    const artifacts = await writeArtifacts(ctx, made.commit, stage);
    artifacts.sbom = await writeSbom(ctx, made, stage);
    const meta = await withPhase(options.onProgress, 'finalize', async () => {
      await writeInputsRecord(stage, plan.inputs);
      return writeMeta(ctx, made, artifacts, stage);
    });
    const finalDir = await publish(ctx, stage);
    const finalMeta = (await extendBuild(ctx, plan.buildId)) ?? meta;
    if (!options.skipPrune) await withPhase(options.onProgress, 'prune', () => prune({ workdir: wd.dir, keepLastN: 3 }));
    return {
      status: 'built', buildId: plan.buildId, arch: plan.arch, buildDir: finalDir, meta: finalMeta, artifacts: artifactPaths(finalMeta, finalDir),
      reason: plan.reason, composed: made.composed, durationMs: Math.round(performance.now() - t0),
      kind: plan.kind, changes: plan.changes, inputHash: plan.inputHash,
    };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/**
 * Builds the workdir's config: a new build when the inputs changed (or with `force`),
 * else `status: 'unchanged'` without touching anything.
 */
export async function build(options: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const wd = await Workdir.open(options.workdir);
  splitTargets(options.targets);
  await mkdir(wd.tmpDir, { recursive: true });
  return withLock(
    join(wd.tmpDir, 'build'),
    async () => {
      await recoverInterruptedBuilds(wd);
      const { plan, compose, fileCache } = await resolvePlan(wd, options);
      await fileCache.save();
      reportPlan(plan, options.onProgress);
      const ctx: BuildContext = { wd, plan, compose, options, now: new Date() };
      return plan.kind === 'unchanged' ? unchangedResult(ctx, t0) : executePlan(ctx, t0);
    },
    { waitMs: options.lockWaitMs ?? 15_000, what: `the workdir ${wd.dir} (another cosa build is running)` },
  );
}

/**
 * A build killed between the rename into builds/ and the builds.json update leaves a
 * `.cosa-staged` marker: roll it back so builds/ matches builds.json again. Also removes stale
 * staging dirs in tmp/.
 */
export async function recoverInterruptedBuilds(wd: Workdir): Promise<void> {
  const builds = new BuildsDir(wd.buildsDir);
  const index = await builds.read();
  for (const id of await readdir(wd.buildsDir).catch(() => [] as string[])) {
    const dir = join(wd.buildsDir, id);
    if (id === 'builds.json' || id === 'latest' || id.startsWith('.')) continue;
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    for (const a of await readdir(dir)) {
      if (!(await exists(join(dir, a, '.cosa-staged')))) continue;
      const listed = index.builds.some((b) => b.id === id && b.arches.includes(a));
      if (listed) await rm(join(dir, a, '.cosa-staged'), { force: true });
      else await rm(join(dir, a), { recursive: true, force: true });
    }
    if ((await readdir(dir)).length === 0 && !index.builds.some((b) => b.id === id)) await rm(dir, { recursive: true, force: true });
  }
  for (const t of await readdir(wd.tmpDir).catch(() => [] as string[])) {
    if (t.startsWith('build-')) await rm(join(wd.tmpDir, t), { recursive: true, force: true });
  }
}
