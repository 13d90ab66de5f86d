import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Bundles a TypeScript child script (workspace packages resolved from source through the root
 * tsconfig paths) into a standalone ESM file that plain `node` runs. Returns its path and a
 * cleanup function.
 */
export async function bundleChild(entry: string): Promise<{ file: string; cleanup(): Promise<void> }> {
  const { build } = await import('tsup');
  const outDir = await mkdtemp(join(tmpdir(), 'cosa-child-'));
  await build({
    entry: { child: fileURLToPath(new URL(entry, import.meta.url)) },
    outDir,
    format: ['esm'],
    outExtension: () => ({ js: '.mjs' }),
    bundle: true,
    noExternal: [/.*/],
    platform: 'node',
    target: 'node20',
    tsconfig: fileURLToPath(new URL('../../../tsconfig.json', import.meta.url)),
    silent: true,
    config: false,
    dts: false,
    sourcemap: false,
    splitting: false,
    // Bundled CommonJS dependencies call require() for node builtins.
    banner: { js: "import { createRequire as __cosaCreateRequire } from 'node:module'; const require = __cosaCreateRequire(import.meta.url);" },
  });
  return { file: join(outDir, 'child.mjs'), cleanup: () => rm(outDir, { recursive: true, force: true }) };
}
