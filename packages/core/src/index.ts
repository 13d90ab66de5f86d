export * from './version.js';
export * from './pkgdiff.js';
export { Workdir, openWorkdir, type WorkdirLike } from './workdir.js';
export { BuildsDir } from './builds-dir.js';
export { buildFetch, buildUpload, type BuildFetchOptions, type BuildFetchResult, type BuildUploadOptions, type BuildUploadResult } from './build-transfer.js';
export { initWorkdir, type InitWorkdirOptions } from './init.js';
export {
  readBuildMeta,
  getMetaValue,
  setMetaValues,
  getImagePath,
  type MetaTarget,
  type BuildMeta,
  type MetaValue,
} from './meta-keys.js';
export { listTags, updateTag, deleteTags, type UpdateTagOptions, type DeleteTagsOptions } from './tag.js';
export { prune, DEFAULT_KEEP_LAST_N, type PruneOptions, type PruneResult, type ScannedBuild } from './prune.js';
export { cleanWorkdir, type CleanOptions } from './clean.js';
export { listBuilds, type BuildSummary } from './list.js';
export { build, type BuildOptions, type BuildResult, type BuildTarget } from './build.js';
export { planBuild, decideKind, type BuildPlan, type BuildKind, type PlanBuildOptions, type KindFacts } from './build-plan.js';
export { diffInputs } from './inputs.js';
export { fetchPackages, type FetchOptions } from './fetch.js';
export { hostArch } from './arch.js';
export { runImage, type RunImageOptions, type RunImageResult } from './run.js';
export * from './compress.js';
export { buildExtend, listPlatforms, type BuildExtendOptions, type BuildExtendResult } from './buildextend.js';
export { publishAws, replicateAws, type AwsTarget, type PublishAwsOptions, type PublishAwsResult, type ReplicateAwsOptions, type ReplicateAwsResult } from './publish-aws.js';
export {
  finalizeMeta,
  mergeArtifactJson,
  type FinalizeMetaOptions,
  type FinalizeMetaResult,
  type MergeArtifactJsonOptions,
} from './delayed-meta.js';
export * from './kola/index.js';
export { buildImage, type BuildImageOptions, type BuildImageResult } from './build-image.js';
export { diffBuilds, formatBuildDiff, type DiffBuildsOptions, type BuildDiff, type PackageChange, type FileChange } from './diff.js';
export { writeBuildSbom, type SbomPackage, type SbomSubject, type WriteBuildSbomOptions } from './sbom.js';
export { sourceDateEpoch, type SourceDateOrigin } from './source-date.js';
export { verifyReproducible, type VerifyReproducibleOptions, type VerifyReproducibleResult, type ArtifactComparison, type DiskRegionDifference } from './verify-reproducible.js';
