import { defineConfig } from 'vitest/config';
import { alias } from '../vitest.shared.ts';

/** `pnpm exec vitest run --config bench/image.vitest.config.ts`: runs bench/image.bench.ts once. */
export default defineConfig({
  resolve: { alias },
  test: { include: ['bench/image.bench.ts'], root: new URL('..', import.meta.url).pathname, testTimeout: 60 * 60_000, hookTimeout: 60 * 60_000 },
});
