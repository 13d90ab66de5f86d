/**
 * `@cosa/image/internal`: what the other cosa packages share with this one but users do not
 * call. Not covered by semver.
 * @internal
 */
export { readGpt, type GptTable, type GptPartition } from './_gpt.js';
