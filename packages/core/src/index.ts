export { Workdir, type WorkdirLike } from './workdir.js';
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
export { prune, type PruneOptions, type PruneResult } from './prune.js';
export { cleanWorkdir, type CleanOptions } from './clean.js';
export { listBuilds, type BuildSummary } from './list.js';
export { build, type BuildOptions, type BuildResult, type BuildTarget } from './build.js';
export { planBuild, type BuildPlan, type BuildKind, type PlanBuildOptions } from './build-plan.js';
export { diffInputs } from './inputs.js';
export { fetchPackages, type FetchOptions } from './fetch.js';
export { hostArch } from './arch.js';
export { runImage, type RunImageOptions, type RunImageResult } from './run.js';
export {
  compressBuild,
  decompressBuild,
  type Compressor,
  type CompressedArtifact,
  type CompressResult,
  type BuildArtifactsOptions,
  type CompressBuildOptions,
} from './compress.js';
export { buildExtend, listPlatforms, type BuildExtendOptions, type BuildExtendResult } from './buildextend.js';
export { publishAws, replicateAws, type AwsTarget, type PublishAwsOptions, type PublishAwsResult, type ReplicateAwsOptions, type ReplicateAwsResult } from './publish-aws.js';
export {
  finalizeMeta,
  mergeArtifactJson,
  type FinalizeMetaOptions,
  type FinalizeMetaResult,
  type MergeArtifactJsonOptions,
} from './delayed-meta.js';
export { kolaRun, type KolaRunOptions, type KolaRunResult } from './kola/run.js';
export { kolaRunUpgrade, type KolaRunUpgradeOptions, type KolaRunUpgradeResult } from './kola/upgrade.js';
export type { KolaReport, KolaTestReport, KolaResult } from './kola/report.js';
export { buildImage, type BuildImageOptions, type BuildImageResult } from './build-image.js';
export { diffBuilds, formatBuildDiff, type DiffBuildsOptions, type BuildDiff, type PackageChange, type FileChange } from './diff.js';
export { verifyReproducible, type VerifyReproducibleOptions, type VerifyReproducibleResult, type ArtifactComparison, type DiskRegionDifference } from './verify-reproducible.js';
