import { fileURLToPath } from 'node:url';

const pkgs = ['schema', 'ostree', 'image', 'store', 'cloud', 'core', 'cli', 'test-utils'];

/** Test files import workspace packages from source, so tests never need a build first. */
export const alias = Object.fromEntries([
  // `@cosa/x/internal` before `@cosa/x`: an alias also matches `key/…`, so the longer key goes first.
  ...['schema', 'ostree', 'image'].map((p) => [`@cosa/${p}/internal`, fileURLToPath(new URL(`./packages/${p}/src/internal.ts`, import.meta.url))]),
  ...pkgs.map((p) => [`@cosa/${p}`, fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url))]),
]);

/**
 * Slow tests (real composes, disk writes, VM boots) are named `*.slow.test.ts`. They share
 * caches under $COSA_TEST_CACHE and the machine's 2 cores, so they run in one project, one file at
 * a time; `pnpm run test:quick` leaves that project out.
 */
export const SLOW_GLOB = 'test/**/*.slow.test.ts';

/** The vitest project settings every package shares. */
export function sharedProject(name: string) {
  return {
    resolve: { alias },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      exclude: [SLOW_GLOB, '**/node_modules/**'],
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  };
}

/** The project that runs every package's slow tests, sequentially. */
export const slowProject = {
  resolve: { alias },
  test: {
    name: 'slow',
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: [`packages/*/${SLOW_GLOB}`],
    fileParallelism: false,
    testTimeout: 20 * 60_000,
    hookTimeout: 30 * 60_000,
  },
};
