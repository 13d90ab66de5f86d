/**
 * `@cosa/schema/internal`: what the other cosa packages share with this one but users do not
 * call — the one retry loop, file plumbing, sub-schemas. Not covered by semver.
 * @internal
 */
export { retry, nextRetryDelay, backoffDelay, retryMessage, retryWarning, type RetryOptions, type RetryInfo } from './retry.js';
export { noProgress } from './progress.js';
export { formatPath, parseJsonText } from './json.js';
export { readRegularFile, removeStaleTemps, symlinkAtomic } from './fs.js';
export { makeTempDir, pidAlive, sweepStaleTempDirs, TEMP_DIR_PREFIXES } from './fs.js';
export { safeSegment, buildsJsonSchema } from './builds.js';
export { osName, type DebianSource } from './manifest.js';
export { loadImageConfig, type LoadImageConfigOptions, type LoadedImageConfig } from './image-yaml.js';
