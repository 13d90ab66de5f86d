/**
 * `@cosa/ostree/internal`: what the other cosa packages share with this one but users do not
 * call — the one module that runs external tools. Not covered by semver.
 * @internal
 */
export { run, hasTool, missingTools, type RunOptions, type RunResult } from './_exec.js';
/** The host apt's Debian mirrors (bench/peers.mjs feeds them to debos). */
export { hostDebianMirrors, type HostMirrors } from './debian-sources.js';
