export { run, hasTool, missingTools, type RunOptions, type RunResult } from './_exec.js';
export { computeInputHash, packageKey, type InputHashOptions, type InputHashPackage } from './input-hash.js';
export { createDebianComposer, debianComposer, type DebianComposerOptions } from './debian.js';
export { debianSources, hostDebianMirrors, parseDeb822Sources, parseSourcesList, type HostMirrors } from './debian-sources.js';
export { installedPackages, kernelVersion, parseDpkgStatus, prepareDebianTree, varTmpfiles } from './debian-tree.js';
export { ensureInitramfs, initramfsKey, type InitramfsOptions, type InitramfsResult } from './debian-initramfs.js';
