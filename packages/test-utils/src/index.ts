import { fileURLToPath } from 'node:url';

/** Absolute path of a file under packages/test-utils/fixtures. */
export function fixturePath(...parts: string[]): string {
  return fileURLToPath(new URL(`../fixtures/${parts.join('/')}`, import.meta.url));
}

export { validateWithOriginalSchema } from './original-schema.js';
export { snapshotTree, type TreeSnapshot } from './tree.js';
export { tempWorkdir, tempDir, fakeMeta, writeFakeBuild, TINY_CONFIG, type TempWorkdir, type FakeMetaOptions } from './workdir.js';
