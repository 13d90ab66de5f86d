/**
 * The first half of `cosa build`: describe the inputs, compare them with the previous build's, and
 * decide what kind of build to make ({@link BuildPlan}). Writes nothing: `cosa build --dry-run`
 * prints this plan.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CosaError, type MetaJson, type OnProgress, withPhase } from '@cosa/schema';
import { describeInputs, FileHashCache, inputsHash, revParse } from '@cosa/ostree';
import { listPlatforms, type ExecutorChoice } from '@cosa/image';
import { BuildsDir } from './builds-dir.js';
import { Workdir } from './workdir.js';
import { nextVersion } from './version.js';
import { hostArch } from './arch.js';
import { loadComposeInput, type ComposeInput } from './_compose-input.js';
import { diffInputs, readInputsRecord, type InputsRecord } from './inputs.js';

/**
 * The kind of build the inputs call for: `unchanged` (nothing to do), `image-only` (new images on
 * the previous commit), `recommit` (forced: a new commit on the previous commit's tree), `compose`.
 */
export type BuildKind = 'unchanged' | 'image-only' | 'recommit' | 'compose';

/** Options of {@link planBuild} (a subset of `BuildOptions`). */
export interface PlanBuildOptions {
  workdir: string;
  targets?: string[];
  force?: boolean;
  forceNocache?: boolean;
  forceImage?: boolean;
  version?: string;
  parentBuild?: string;
  strict?: boolean;
  arch?: string;
  executor?: ExecutorChoice;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What a build will do, and why. */
export interface BuildPlan {
  kind: BuildKind;
  /** Why, in a few words (`first build`, `inputs changed`, `forced`, …). */
  reason: string;
  /** What changed since the previous build, one line per category (empty when nothing did). */
  changes: string[];
  arch: string;
  ref: string;
  /** sha256 of the compose inputs description (meta.json `rpm-ostree-inputhash`). */
  inputHash: string;
  /** The record saved as `inputs.json`. */
  inputs: InputsRecord;
  /** The latest build of this arch. */
  previous?: MetaJson;
  /** The build pkgdiff compares with (`--parent-build`, else the previous build). */
  parent?: MetaJson;
  /** The build id: the new one, or the previous build's when `unchanged`. */
  buildId: string;
  /** The OSTree version of the commit. */
  version: string;
  /** `coreos-assembler.image-genver` of the new build. */
  genver: number;
  /** Images written by the disk writer (`qemu` or none). */
  imageTargets: string[];
  /** Platforms made afterwards by buildextend. */
  extendTargets: string[];
}

/** The facts {@link decideKind} needs. */
export interface KindFacts {
  inputHash: string;
  ref: string;
  previous?: { inputHash?: string | undefined; ref?: string | undefined; imageInputMatches: boolean; imagesPresent: boolean } | undefined;
  force?: boolean | undefined;
  forceNocache?: boolean | undefined;
  forceImage?: boolean | undefined;
  /** Whether the previous build's commit is in tmp/repo (only asked for when forced with unchanged inputs). */
  previousCommitInRepo?: () => Promise<boolean>;
}

/** Decides the kind of build (the one place that does). */
export async function decideKind(f: KindFacts): Promise<{ kind: BuildKind; reason: string }> {
  const p = f.previous;
  if (!p) return { kind: 'compose', reason: f.force ? 'forced' : 'first build' };
  const sameCompose = p.inputHash === f.inputHash && p.ref === f.ref;
  if (sameCompose && !f.force) {
    if (p.imageInputMatches && p.imagesPresent && !f.forceImage) return { kind: 'unchanged', reason: 'no changes' };
    return { kind: 'image-only', reason: f.forceImage ? 'forced image rebuild' : 'image inputs changed' };
  }
  if (sameCompose && !f.forceNocache && (await f.previousCommitInRepo?.())) {
    return { kind: 'recommit', reason: 'forced (inputs unchanged: the tree of the previous commit is reused)' };
  }
  return { kind: 'compose', reason: f.force ? 'forced' : 'inputs changed' };
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** As the original: sha256 of "<commit>\n<image-config-checksum>\n". */
export function imageInputChecksum(commit: string, imageConfigChecksum: string): string {
  return sha256(`${commit}\n${imageConfigChecksum}\n`);
}

/** Splits build targets into disk-writer images and buildextend platforms (unknown → COSA_PLATFORM_UNKNOWN). */
export function splitTargets(targets: string[] | undefined): { imageTargets: string[]; extendTargets: string[] } {
  const t = targets && targets.length > 0 ? targets : ['qemu'];
  // As the original: `ostree` (alias `container`) is always built; `qemu` is written by the disk
  // writer; every other platform is derived from the qemu disk afterwards.
  const known = listPlatforms();
  const extendTargets = [...new Set(t.filter((x) => x !== 'ostree' && x !== 'container' && x !== 'qemu'))];
  for (const x of extendTargets) {
    if (!known.includes(x)) throw new CosaError('COSA_PLATFORM_UNKNOWN', `unknown build target "${x}"; targets: ostree, ${known.join(', ')}`);
  }
  return { imageTargets: t.includes('qemu') || extendTargets.length > 0 ? ['qemu'] : [], extendTargets };
}

/** Where the file-hash cache of the no-op check lives. */
export function fileHashCachePath(wd: Workdir): string {
  return join(wd.cacheDir, 'inputs-file-hashes.json');
}

/** A plan and what executing it needs (the loaded config and compose options). */
export interface ResolvedPlan {
  plan: BuildPlan;
  compose: ComposeInput;
  fileCache: FileHashCache;
}

/** Describes the inputs and decides; used by `build()` (under its lock) and {@link planBuild}. */
export async function resolvePlan(wd: Workdir, options: PlanBuildOptions): Promise<ResolvedPlan> {
  const arch = options.arch ?? hostArch();
  const { imageTargets, extendTargets } = splitTargets(options.targets);
  const fileCache = await new FileHashCache(fileHashCachePath(wd)).load();
  const { compose, inputs } = await withPhase(options.onProgress, 'resolve', async () => {
    const c = await loadComposeInput(wd, { arch, strict: options.strict, signal: options.signal, onProgress: options.onProgress, fileCache });
    const d = await describeInputs(c.opts, c.composer, { variant: c.opts.variant, fileCache });
    c.opts.inputs = d;
    const record: InputsRecord = { inputhash: inputsHash(d), compose: d, image: { checksum: sha256(c.cfg.imageConfigRendered), config: JSON.parse(c.cfg.imageConfigRendered) as unknown } };
    return { compose: c, inputs: record };
  });
  const builds = new BuildsDir(wd.buildsDir);
  const prevId = (await builds.read()).builds.find((b) => b.arches.includes(arch))?.id;
  const previous = prevId ? await builds.getMeta(prevId, arch).catch(() => undefined) : undefined;
  const parent = options.parentBuild ? await builds.getMeta(options.parentBuild, arch) : previous;
  const ref = compose.opts.ref;
  const { kind, reason } = await decideKind({
    inputHash: inputs.inputhash,
    ref,
    previous: previous && {
      inputHash: previous['rpm-ostree-inputhash'],
      ref: previous.ref,
      imageInputMatches: imageInputChecksum(previous['ostree-commit'], inputs.image.checksum) === previous['coreos-assembler.image-input-checksum'],
      imagesPresent: imageTargets.every((t) => previous.images?.[t as 'qemu'] !== undefined),
    },
    force: options.force,
    forceNocache: options.forceNocache,
    forceImage: options.forceImage,
    previousCommitInRepo: async () => !!(previous && (await revParse({ repo: wd.repo, ref: previous['ostree-commit'] }).catch(() => undefined))),
  });
  const changes = previous ? await changesSince(wd, previous, arch, inputs) : [];
  const ids = buildIds(kind, previous, options, compose);
  const plan: BuildPlan = {
    kind, reason, changes, arch, ref, inputHash: inputs.inputhash, inputs,
    ...(previous ? { previous } : {}), ...(parent ? { parent } : {}),
    ...ids, imageTargets, extendTargets,
  };
  return { plan, compose, fileCache };
}

/** The build id, version and genver of each kind. */
function buildIds(kind: BuildKind, previous: MetaJson | undefined, options: PlanBuildOptions, compose: ComposeInput): { buildId: string; version: string; genver: number } {
  if (previous && kind === 'unchanged') return { buildId: previous.buildid, version: previous['ostree-version'], genver: previous['coreos-assembler.image-genver'] ?? 0 };
  if (previous && kind === 'image-only') {
    const genver = (previous['coreos-assembler.image-genver'] ?? 0) + 1;
    return { buildId: options.version ?? `${previous['ostree-version']}-${genver}`, version: previous['ostree-version'], genver };
  }
  const version = options.version ?? nextVersion({ prefix: compose.cfg.manifest['automatic-version-prefix'], previous: previous?.['ostree-version'], now: new Date() });
  return { buildId: version, version, genver: 0 };
}

/** What changed since `previous`: the diff of the inputs records, or (old builds) what the hashes say. */
async function changesSince(wd: Workdir, previous: MetaJson, arch: string, inputs: InputsRecord): Promise<string[]> {
  const prevRecord = await readInputsRecord(join(wd.buildsDir, previous.buildid, arch));
  if (prevRecord) return diffInputs(prevRecord, inputs);
  const out: string[] = [];
  if (previous['rpm-ostree-inputhash'] !== inputs.inputhash) out.push(`inputs: hash differs (build ${previous.buildid} has no inputs.json to compare with)`);
  if (previous['coreos-assembler.image-config-checksum'] !== undefined && previous['coreos-assembler.image-config-checksum'] !== inputs.image.checksum) out.push('image.yaml: changed');
  return out;
}

/**
 * `cosa build --dry-run`: the plan of the next build (its kind, why, what changed, its id)
 * without building or writing anything in builds/ or tmp/.
 */
export async function planBuild(options: PlanBuildOptions): Promise<BuildPlan> {
  const wd = await Workdir.open(options.workdir);
  return (await resolvePlan(wd, options)).plan;
}
