export {
  CosaError,
  SchemaError,
  CommandFailedError,
  HttpStatusError,
  isCosaError,
  type CosaErrorCode,
  type CosaErrorOptions,
  type SchemaIssue,
} from './errors.js';
export { withPhase, type ProgressEvent, type OnProgress } from './progress.js';
export { parseYamlText, stableStringify, validate } from './json.js';
export { emptyBuildsJson, parseBuildsJson, serializeBuildsJson, type BuildEntry, type BuildTag, type BuildsJson } from './builds.js';
export { parseMetaJson, serializeMetaJson, validateMetaJson, type Artifact, type MetaJson } from './meta.js';
export { fsyncDir, writeFileAtomic, withLock, type LockOptions } from './fs.js';
export { manifestSchema, type Manifest } from './manifest.js';
export type { ImageConfig } from './image-config.js';
export { flattenTreefile, serializeManifest, type FlattenTreefileOptions, type FlattenedTreefile, type TreefileVariables } from './treefile.js';
export { hostBasearch, loadConfig, loadWorkdirConfig, type LoadConfigOptions, type LoadedConfig, type LoadWorkdirConfigOptions } from './config.js';
export { hashFile, type HashFileOptions } from './hash-file.js';
