export { run, hasTool, missingTools, type RunOptions, type RunResult } from './_exec.js';
export {
  initRepo, commit, commitTree, commitToArchive, recommit, revParse, showCommit, readCommitMeta, listRefs, setRef, deleteRef, pullLocal, prune,
  commitSize, readRepoMode, isRepo, updateSummary,
  type RepoMode, type RepoCallOptions, type CommitOptions, type CommitResult, type CommitToArchiveOptions, type CommitInfo, type RecommitOptions,
  type PullLocalOptions,
} from './repo.js';
export {
  composerRegistry, registerComposer, INPUTHASH_KEY, selectComposer, manifestKind,
  type PackageInfo, type ComposeOptions, type InputHashResult, type ComposeResult, type Composer, type ComposerName,
  type ComposerFactory, type ComposerRegistry, type SelectComposerOptions,
} from './composer.js';
export {
  postprocessTree, runPostprocess, prepareOstreeTree, resolveInside, applyOverlay, overlayMode, parseStatoverride,
  type PostprocessOptions, type PostprocessStats, type PrepareOstreeTreeOptions, type PrepareOstreeTreeResult,
} from './postprocess.js';
export { createRpmOstreeComposer } from './rpm-ostree.js';
export { createDnfComposer } from './dnf.js';
export { writeRepoTar, importRepoTar, tarDirectory, type TarDirectoryOptions, type WriteRepoTarOptions, type RepoTarResult, type ImportRepoTarOptions } from './repo-tar.js';
export {
  rpmOstreeComposeArgv, overlayCommitArgv, commitOverlay, layeredTreefile, type OverlayCommitOptions, findLockfiles, parseComposeJson, composeJsonStats, pkglistFromCommitMeta, parseRpmOstreeVersion,
  type RpmOstreeArgvOptions, type RpmOstreeComposeJson,
} from './rpm-ostree.js';
export {
  dnfArgv, resolveRpmPackages, rpmInputHash, resolveRpm, prepareOverridesRepo, OVERRIDES_REPO_ID, installedPackages, nevra, privateRpmHome, rpmCacheRepo, repoChecksums,
  RPMDB_PATH, CACHE_REPO_ID, type DnfArgvOptions,
} from './rpm.js';
export { computeInputHash, packageKey, type InputHashOptions, type InputHashPackage } from './input-hash.js';
export {
  describeInputs, describeTree, inputsHash, inputsFor, composerInputHash, overlayLayers, overlayNames, referencedFiles, packageEvr,
  FileHashCache, INPUTS_SCHEMA, RACY_MS,
  type ComposeInputs, type TreeEntry, type TreeDescription, type DescribedPackage, type DescribedOverlay, type ResolvedInputs,
  type DescribeInputsOptions,
} from './inputs.js';
export { createDebianComposer, debianComposer, type DebianComposerOptions } from './debian.js';
export { debianSources, hostDebianMirrors, parseDeb822Sources, parseSourcesList, type HostMirrors } from './debian-sources.js';
export { installedPackages as installedDebianPackages, kernelVersion, parseDpkgStatus, prepareDebianTree, varTmpfiles } from './debian-tree.js';
export { ensureInitramfs, initramfsKey, type InitramfsOptions, type InitramfsResult } from './debian-initramfs.js';
export type { AptSource } from './_apt.js';
export { diffCommits, checkoutSubpath, type CommitFileChange } from './repo.js';
