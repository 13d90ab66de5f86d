import { fileURLToPath } from 'node:url';

const pkgs = ['schema', 'ostree', 'image', 'store', 'core', 'cli', 'test-utils'];

/** Test files import workspace packages from source, so tests never need a build first. */
export const alias = Object.fromEntries(
  pkgs.map((p) => [`@cosa/${p}`, fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url))]),
);

/** The vitest project settings every package shares. */
export function sharedProject(name: string) {
  return {
    resolve: { alias },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      testTimeout: 30_000,
      hookTimeout: 60_000,
    },
  };
}
