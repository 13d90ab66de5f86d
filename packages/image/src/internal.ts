/**
 * `@cosa/image/internal`: what the other cosa packages share with this one but users do not
 * call. Not covered by semver.
 * @internal
 */
export { readGpt, type GptTable, type GptPartition } from './_gpt.js';
export { getPlatform, platformArtifactName, type PlatformsConfig } from './platforms.js';
export { convertDisk } from './convert.js';
export { diskKernelArgs } from './disk.js';
export { createBlankDisk, imageSectorSize } from './boot.js';
