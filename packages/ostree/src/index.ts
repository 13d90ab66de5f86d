export {
  initRepo, commit, commitTree, commitToArchive, recommit, revParse, showCommit, readCommitMeta, listRefs, setRef, deleteRef, pullLocal, prune,
  commitSize, readRepoMode, isRepo, updateSummary,
  type RepoMode, type RepoCallOptions, type CommitOptions, type CommitResult, type CommitToArchiveOptions, type CommitInfo, type RecommitOptions,
  type PullLocalOptions,
} from './repo.js';
export {
  composerRegistry, registerComposer, INPUTHASH_KEY, selectComposer,
  type PackageInfo, type ComposeOptions, type InputHashResult, type ComposeResult, type Composer, type ComposerName,
  type ComposerFactory, type ComposerRegistry, type SelectComposerOptions,
} from './composer.js';
export { createRpmOstreeComposer } from './rpm-ostree.js';
export { createDnfComposer } from './dnf.js';
export { writeRepoTar, importRepoTar, tarDirectory, type TarDirectoryOptions, type WriteRepoTarOptions, type RepoTarResult, type ImportRepoTarOptions } from './repo-tar.js';
export {
  describeInputs, inputsHash,
  FileHashCache,
  type ComposeInputs, type TreeEntry, type TreeDescription, type DescribedPackage, type DescribedOverlay, type ResolvedInputs,
} from './inputs.js';
export { createDebianComposer, debianComposer, type DebianComposerOptions } from './debian.js';
export { parseDpkgStatus } from './debian-tree.js';
export { diffCommits, checkoutSubpath, listCommitTree, ostreeVersionText, type CommitFileChange } from './repo.js';
