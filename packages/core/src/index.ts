export * from './version.js';
export * from './pkgdiff.js';
