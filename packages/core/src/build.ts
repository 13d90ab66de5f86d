/**
 * `cosa build`: one command turns the config into a versioned build. The main flow of
 * architecture.md: resolve inputs and hash them, compose (or reuse) the commit, export the ostree
 * tar, write the qemu image, stage everything in tmp/, rename into builds/<id>/<arch>/, record it
 * in builds.json + builds/latest, prune.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CosaError,
  type ImageConfig,
  type Manifest,
  type MetaJson,
  type OnProgress,
  osName,
  stableStringify,
  validateMetaJson,
  withLock,
  withPhase,
  writeFileAtomic,
} from '@cosa/schema';
import {
  type PackageInfo,
  importRepoTar,
  initRepo,
  INPUTHASH_KEY,
  recommit,
  readCommitMeta,
  revParse,
  run,
  setRef,
  showCommit,
  writeRepoTar,
} from '@cosa/ostree';
import { buildImage, listPlatforms, selectExecutor, type ExecutorChoice } from '@cosa/image';
import { buildExtend } from './buildextend.js';
import { BuildsDir, metaStampNow } from './builds-dir.js';
import { Workdir } from './workdir.js';
import { prune } from './prune.js';
import { nextVersion } from './version.js';
import { diffPackages, type PackageVersion } from './pkgdiff.js';
import { hostArch } from './arch.js';
import { loadComposeInput } from './_compose-input.js';
import { writeBuildSbom } from './sbom.js';
import { sourceDateEpoch } from './source-date.js';

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
}

function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

/** As the original: sha256 of "<commit>\n<image-config-checksum>\n". */
function imageInputChecksum(commit: string, imageConfigChecksum: string): string {
  return sha256(`${commit}\n${imageConfigChecksum}\n`);
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Config provenance as the original records it (git describe, dirty, origin, branch). */
async function configGit(configDir: string): Promise<{ gitrev: string; dirty: boolean; git?: { commit: string; origin: string; branch?: string; dirty: string } }> {
  const git = (args: string[]) => run(['git', '-C', configDir, ...args]).then((r) => r.stdout.trim(), () => undefined);
  const commit = await git(['rev-parse', 'HEAD']);
  if (!commit) return { gitrev: 'unknown', dirty: false };
  const gitrev = (await git(['describe', '--tags', '--always', '--abbrev=42'])) ?? commit;
  const status = (await git(['status', '--porcelain', '--untracked-files=no'])) ?? '';
  const dirty = status !== '';
  const origin = (await git(['config', '--get', 'remote.origin.url'])) ?? configDir;
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

/**
 * Builds the workdir's config: a new build when the inputs changed (or with `force`),
 * else `status: 'unchanged'` without touching anything.
 */
export async function build(options: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const onProgress = options.onProgress;
  const wd = await Workdir.open(options.workdir);
  const arch = options.arch ?? hostArch();
  const targets = options.targets && options.targets.length > 0 ? options.targets : ['qemu'];
  // As the original: `ostree` (alias `container`) is always built; `qemu` is written by the disk
  // writer; every other platform target runs buildextend-<platform> afterwards, derived from the
  // qemu disk (so qemu is written whenever a platform is asked for).
  const known = listPlatforms();
  const extendTargets = [...new Set(targets.filter((t) => t !== 'ostree' && t !== 'container' && t !== 'qemu'))];
  for (const t of extendTargets) {
    if (!known.includes(t)) {
      throw new CosaError('COSA_PLATFORM_UNKNOWN', `unknown build target "${t}"; targets: ostree, ${known.join(', ')}`);
    }
  }
  const imageTargets = targets.includes('qemu') || extendTargets.length > 0 ? ['qemu'] : [];
  const extend = async (buildId: string): Promise<MetaJson | undefined> => {
    if (extendTargets.length === 0) return undefined;
    await buildExtend({
      workdir: wd.dir,
      build: buildId,
      arch,
      platforms: extendTargets,
      ...(options.executor ? { executor: options.executor } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(onProgress ? { onProgress } : {}),
    });
    return new BuildsDir(wd.buildsDir).getMeta(buildId, arch);
  };
  await mkdir(wd.tmpDir, { recursive: true });
  return withLock(
    join(wd.tmpDir, 'build'),
    async () => {
      await recoverInterruptedBuilds(wd);
      const builds = new BuildsDir(wd.buildsDir);

      // 1. Resolve: config, composer, input hash.
      const resolved = await withPhase(onProgress, 'resolve', async () => {
        const { cfg, composer, opts: baseOpts } = await loadComposeInput(wd, { arch, strict: options.strict, signal: options.signal, onProgress });
        const manifest: Manifest = cfg.manifest;
        const ref = baseOpts.ref;
        const { inputHash } = await composer.inputHash(baseOpts);
        const imageConfigRendered: string = cfg.imageConfigRendered;
        return { cfg, manifest, composer, ref, baseOpts, inputHash, imageConfig: cfg.imageConfig as ImageConfig, imageConfigChecksum: sha256(imageConfigRendered), imageConfigRendered };
      });

      // 2. Change detection against the latest build for this arch.
      const index = await builds.read();
      const prevId = index.builds.find((b) => b.arches.includes(arch))?.id;
      const prevMeta = prevId ? await builds.getMeta(prevId, arch).catch(() => undefined) : undefined;
      const parentId = options.parentBuild ?? prevId;
      const parentMeta = options.parentBuild ? await builds.getMeta(options.parentBuild, arch) : prevMeta;
      const sameCommitInputs = !!prevMeta && !options.force && prevMeta['rpm-ostree-inputhash'] === resolved.inputHash && prevMeta.ref === resolved.ref;
      if (sameCommitInputs && prevMeta) {
        const imageInput = imageInputChecksum(prevMeta['ostree-commit'], resolved.imageConfigChecksum);
        const imagesPresent = imageTargets.every((t) => prevMeta.images?.[t as 'qemu'] !== undefined);
        if (!options.forceImage && imageInput === prevMeta['coreos-assembler.image-input-checksum'] && imagesPresent) {
          const msg = `No changes since build ${prevMeta.buildid}`;
          onProgress?.({ type: 'info', message: msg });
          const dir = join(wd.buildsDir, prevMeta.buildid, arch);
          // The follow-up targets still run: buildextend skips images the build already has.
          const meta = (await extend(prevMeta.buildid)) ?? prevMeta;
          return {
            status: 'unchanged' as const,
            buildId: prevMeta.buildid,
            arch,
            buildDir: dir,
            meta,
            artifacts: Object.fromEntries(Object.entries(meta.images ?? {}).map(([k, v]) => [k, join(dir, (v as { path: string }).path)])),
            reason: msg,
            composed: false,
            durationMs: Math.round(performance.now() - t0),
          };
        }
      }

      await initRepo({ path: wd.repo, mode: 'bare-user' });
      const now = new Date();
      let commit: string;
      let version: string;
      let buildId: string;
      let genver = 0;
      let packages: PackageInfo[] | undefined;
      let composeStats: Record<string, number> = {};
      let reason: string;
      let composed = false;

      if (sameCommitInputs && prevMeta) {
        // 3a. Image-only rebuild: reuse the commit, id <version>-<genver>.
        reason = options.forceImage ? 'forced image rebuild' : 'image inputs changed';
        commit = prevMeta['ostree-commit'];
        version = prevMeta['ostree-version'];
        genver = (prevMeta['coreos-assembler.image-genver'] ?? 0) + 1;
        buildId = options.version ?? `${version}-${genver}`;
        if (!(await revParse({ repo: wd.repo, ref: commit }))) {
          const prevTar = prevMeta.images?.ostree?.path;
          if (!prevTar) throw new CosaError('COSA_BUILD_FAILED', `commit ${commit} of build ${prevMeta.buildid} is not in tmp/repo and the build has no ostree artifact`, { hint: 'try rerunning with --force' });
          await withPhase(onProgress, 'import', () => importRepoTar({ tar: join(wd.buildsDir, prevMeta.buildid, arch, prevTar), repo: wd.repo, tmpDir: wd.tmpDir, ...(options.signal ? { signal: options.signal } : {}) }));
        }
      } else {
        // 3b. Compose a new commit.
        reason = options.force ? 'forced' : prevMeta ? 'inputs changed' : 'first build';
        version = options.version ?? nextVersion({ prefix: resolved.manifest['automatic-version-prefix'], previous: prevMeta?.['ostree-version'], now });
        buildId = version;
        // A new commit with this build's version on the tree of `from`.
        const commitOnTree = (from: string) =>
          recommit({
            repo: wd.repo, branch: resolved.ref, from, subject: `${osName(resolved.manifest)} ${version}`,
            metadata: { version, [INPUTHASH_KEY]: resolved.inputHash }, fsync: false, ...(options.signal ? { signal: options.signal } : {}),
          });
        const sameInputs =
          !!prevMeta && prevMeta['rpm-ostree-inputhash'] === resolved.inputHash && prevMeta.ref === resolved.ref && !options.forceNocache &&
          !!(await revParse({ repo: wd.repo, ref: prevMeta['ostree-commit'] }).catch(() => undefined));
        if (sameInputs && prevMeta) {
          // Forced with unchanged inputs: the tree is the previous commit's (cache by input hash).
          reason = 'forced (inputs unchanged: the tree of the previous commit is reused)';
          onProgress?.({ type: 'info', message: `inputs unchanged since build ${prevMeta.buildid}: reusing the tree of commit ${prevMeta['ostree-commit'].slice(0, 12)} (--force-nocache composes it again)` });
          commit = await withPhase(onProgress, 'commit', () => commitOnTree(prevMeta['ostree-commit']));
        } else {
          const r = await withPhase(onProgress, 'compose', async () =>
            resolved.composer.compose({ ...resolved.baseOpts, version, ...(prevMeta ? { parentCommit: prevMeta['ostree-commit'] } : {}), overridesRootfs: join(wd.overridesDir, 'rootfs'), ...(await sourceDateEpoch({ configDir: wd.configDir, files: resolved.baseOpts.files }).then((d) => (d ? { sourceDateEpoch: d.epoch } : {}))) }),
          );
          commit = r.commit;
          packages = r.packages;
          composeStats = r.stats;
          if (resolved.inputHash !== r.inputHash) resolved.inputHash = r.inputHash;
          // The composer found the tree unchanged and kept the old commit (its version is the old
          // one): a new version needs a commit of its own, with the same tree.
          if (!r.changed) {
            const head = await showCommit({ repo: wd.repo, rev: commit });
            if (head.version !== version) {
              commit = await commitOnTree(commit);
            }
          }
          composed = true;
        }
      }
      if (await exists(join(wd.buildsDir, buildId, arch))) {
        throw new CosaError('COSA_BUILD_EXISTS', `build ${buildId} (${arch}) already exists`, { hint: 'pass another --version, or prune that build' });
      }
      await setRef({ repo: wd.repo, ref: buildId, rev: commit });

      // 4. Stage everything in tmp/build-<id>-<rand>/.
      const stage = join(wd.tmpDir, `build-${buildId}-${randomBytes(3).toString('hex')}`);
      await mkdir(stage, { recursive: true });
      let exporting: Promise<{ sha256: string; size: number }> | undefined;
      try {
        const name = osName(resolved.manifest);
        const info = await showCommit({ repo: wd.repo, rev: commit });
        const artifacts: Record<string, { path: string; sha256: string; size: number; 'skip-compression'?: boolean }> = {};
        const tarName = `${name}-${buildId}-ostree.${arch}.tar`;
        const prevTar = prevMeta && prevMeta['ostree-commit'] === commit && prevMeta.ref === resolved.ref ? prevMeta.images?.ostree : undefined;
        const exportTar = async () => {
          // Same commit and ref as the previous build: the repo tar is byte-identical (it is
          // deterministic), so link it instead of writing it again.
          if (prevTar) {
            const src = join(wd.buildsDir, prevMeta!.buildid, arch, prevTar.path);
            const ok = await link(src, join(stage, tarName)).then(() => true, () => copyFile(src, join(stage, tarName)).then(() => true, () => false));
            if (ok && prevTar.size !== undefined) return { sha256: prevTar.sha256, size: prevTar.size };
          }
          const archiveCache = join(wd.tmpDir, 'repo-archive');
          const r = await writeRepoTar({ repo: wd.repo, rev: commit, ref: resolved.ref, output: join(stage, tarName), tmpDir: wd.tmpDir, archiveCache, ...(options.signal ? { signal: options.signal } : {}) });
          await setRef({ repo: archiveCache, ref: buildId, rev: commit });
          return r;
        };

        const imageConfigChecksum = resolved.imageConfigChecksum;
        const imageInputChecksumValue = imageInputChecksum(commit, imageConfigChecksum);
        // The repo tar and the disk images both only read tmp/repo: write them at the same time.
        exporting = withPhase(onProgress, 'export', exportTar);
        exporting.catch(() => undefined);
        const executor = imageTargets.length > 0 ? await selectExecutor({ choice: options.executor ?? 'auto', cacheDir: wd.cacheDir }) : undefined;
        for (const platform of imageTargets) {
          const ext = 'qcow2';
          const file = `${name}-${buildId}-${platform}.${arch}.${ext}`;
          const img = await withPhase(onProgress, 'image', () =>
            buildImage({
              repo: wd.repo,
              commit,
              ref: resolved.ref,
              osname: name,
              platform: 'qemu',
              imageConfig: resolved.imageConfig,
              executor: executor!,
              output: join(stage, file),
              buildId,
              imgid: file,
              tmpDir: wd.tmpDir,
              cacheDir: wd.cacheDir,
              ...(options.signal ? { signal: options.signal } : {}),
              ...(onProgress ? { onProgress } : {}),
            }),
          );
          artifacts[platform] = { path: file, sha256: img.sha256, size: img.size };
        }

        const tar = await exporting;
        artifacts.ostree = { path: tarName, sha256: tar.sha256, size: tar.size, 'skip-compression': true };

        artifacts.sbom = await withPhase(onProgress, 'sbom', () => writeBuildSbom({ repo: wd.repo, commit, name, buildId, arch, dir: stage, tmpDir: wd.tmpDir, packages, signal: options.signal }));
        const meta = await withPhase(onProgress, 'finalize', async () => {
          const git = await configGit(wd.configDir);
          // Package set: from the compose, else the parent build's lockfile (same commit).
          let pkgs: PackageVersion[] | undefined;
          let lockJson: unknown;
          if (packages) {
            lockJson = generatedLock(packages, now);
            pkgs = toPackageVersions(packages);
          } else if (prevMeta) {
            lockJson = await readFile(join(wd.buildsDir, prevMeta.buildid, arch, `manifest-lock.generated.${arch}.json`), 'utf8').then((t) => JSON.parse(t) as unknown, () => undefined);
            pkgs = lockJson ? lockToPackages(lockJson) : undefined;
          }
          if (lockJson) await writeFile(join(stage, `manifest-lock.generated.${arch}.json`), stableStringify(lockJson));
          let pkgdiff: unknown[] | undefined;
          if (pkgs && parentMeta && parentId) {
            const parentLock = await readFile(join(wd.buildsDir, parentId, arch, `manifest-lock.generated.${arch}.json`), 'utf8').then((t) => JSON.parse(t) as unknown, () => undefined);
            if (parentLock) pkgdiff = diffPackages(lockToPackages(parentLock), pkgs);
          }
          const commitMeta = await readCommitMeta({ repo: wd.repo, rev: commit });
          await writeFile(join(stage, 'commitmeta.json'), stableStringify(commitMeta));

          const m: Record<string, unknown> = {
            buildid: buildId,
            name,
            'ostree-commit': commit,
            'ostree-version': version,
            'ostree-timestamp': rfc3339(info.timestamp),
            ref: resolved.ref,
            summary: resolved.manifest.rojig?.summary ?? name,
            'rpm-ostree-inputhash': resolved.inputHash,
            'coreos-assembler.basearch': arch,
            'coreos-assembler.build-timestamp': rfc3339(now),
            'coreos-assembler.code-source': 'cosa-ts',
            'coreos-assembler.config-gitrev': git.gitrev,
            'coreos-assembler.config-dirty': String(git.dirty),
            'coreos-assembler.image-config-checksum': imageConfigChecksum,
            'coreos-assembler.image-input-checksum': imageInputChecksumValue,
            'coreos-assembler.image-genver': genver,
            'coreos-assembler.meta-stamp': metaStampNow(),
            images: artifacts,
          };
          const variant = await wd.configVariant();
          if (variant) m['coreos-assembler.config-variant'] = variant;
          if (git.git) m['coreos-assembler.container-config-git'] = git.git;
          if (pkgdiff) m.pkgdiff = pkgdiff;
          if (parentMeta && options.parentBuild) {
            m['parent-pkgdiff'] = pkgdiff ?? [];
          }
          if (parentMeta) {
            m['fedora-coreos.parent-version'] = parentMeta['ostree-version'];
            m['fedora-coreos.parent-commit'] = parentMeta['ostree-commit'];
          }
          for (const [k, v] of Object.entries(composeStats)) {
            if (k.startsWith('ostree-n-') || k === 'ostree-content-bytes-written') m[k] = v;
          }
          const meta = validateMetaJson(m, join(stage, 'meta.json'));
          await writeFileAtomic(join(stage, 'meta.json'), stableStringify(meta));
          return meta;
        });

        // 5. Publish: rename into builds/<id>/<arch>, record, repoint latest.
        const finalDir = join(wd.buildsDir, buildId, arch);
        await withPhase(onProgress, 'publish', async () => {
          await writeFile(join(stage, '.cosa-staged'), `${buildId}\n`);
          await mkdir(join(wd.buildsDir, buildId), { recursive: true });
          await rename(stage, finalDir);
          await builds.insertBuild(buildId, arch);
          await rm(join(finalDir, '.cosa-staged'), { force: true });
        });
        const extended = await extend(buildId);
        if (!options.skipPrune) {
          await withPhase(onProgress, 'prune', () => prune({ workdir: wd.dir, keepLastN: 3 }));
        }
        const finalMeta = extended ?? meta;
        return {
          status: 'built' as const,
          buildId,
          arch,
          buildDir: finalDir,
          meta: finalMeta,
          artifacts: Object.fromEntries(Object.entries(finalMeta.images ?? {}).map(([k, v]) => [k, join(finalDir, (v as { path: string }).path)])),
          reason,
          composed,
          durationMs: Math.round(performance.now() - t0),
        };
      } finally {
        // A failed image must not leave the export writing into a removed stage.
        await exporting?.catch(() => undefined);
        await rm(stage, { recursive: true, force: true });
      }
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
