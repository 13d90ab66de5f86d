import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { defineConfig, type Options } from 'tsup';

/** The SDK entry (`import { main } from '@cosa/cli'`): this package only, its dependencies external. */
const sdk: Options = {
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  // dist/cli/ is the other build's.
  clean: ['!cli/**'],
  target: 'node20',
  sourcemap: true,
};

/**
 * Loaded and resolved only by the S3/EC2 commands, from the CLI's own dependencies (they are
 * those of @cosa/store and @cosa/cloud, same versions): not bundled.
 */
const external = ['@aws-sdk/client-s3', '@aws-sdk/lib-storage', '@aws-sdk/client-ec2', 'undici'];

/**
 * Prepended to every file of the bundle: `require` for the CommonJS dependencies bundled into
 * ESM (proper-lockfile, cross-spawn…), and where a bundled workspace package really is, for its
 * `new URL('../assets/…', import.meta.url)` (resolved as the CLI resolves it: its own
 * dependencies, then those of @cosa/core).
 */
const banner = [
  "import { createRequire as __cosaCreateRequire } from 'node:module';",
  "import { pathToFileURL as __cosaPathToFileURL } from 'node:url';",
  'const require = __cosaCreateRequire(import.meta.url);',
  'function __cosaPackageUrl(name) {',
  '  let p;',
  "  try { p = require.resolve(name); } catch { p = __cosaCreateRequire(require.resolve('@cosa/core')).resolve(name); }",
  '  return __cosaPathToFileURL(p).href;',
  '}',
].join('\n');

type Plugin = NonNullable<Options['esbuildPlugins']>[number];

/** The package.json name of the workspace package a file belongs to (`…/packages/NAME/{src,dist}/…`). */
async function packageNameOf(file: string): Promise<string> {
  const root = /^(.*[\\/]packages[\\/][^\\/]+)[\\/](?:src|dist)[\\/]/.exec(file)![1]!;
  return (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { name: string }).name;
}

/**
 * The bundle lives in dist/cli/, not where each workspace package's dist/ file was: a file's
 * `import.meta.url` becomes that of its package's dist/index.js (every dist/ here is flat), so
 * `../assets/x` and `../package.json` resolve as they do unbundled.
 */
const importMetaUrl: Plugin = {
  name: 'cosa-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/](src|dist)[\\/].*\.[jt]s$/ }, async (a) => {
      const text = await readFile(a.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const name = await packageNameOf(a.path);
      const url = name === '@cosa/cli' ? 'new URL("../index.js", import.meta.url).href' : `__cosaPackageUrl(${JSON.stringify(name)})`;
      return { contents: text.replaceAll('import.meta.url', url), loader: a.path.endsWith('.ts') ? 'ts' : 'js' };
    });
  },
};

/** zod's 40 locales (360 kB the CLI would parse on every start) reduced to the one in use, English. */
const zodEnglishOnly: Plugin = {
  name: 'cosa-zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (a) =>
      /[\\/]zod[\\/]v4[\\/](core|classic)[\\/]/.test(a.importer) ? { path: 'zod-locales', namespace: 'cosa-zod', pluginData: join(dirname(a.importer), '..', 'locales') } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'cosa-zod' }, (a) => ({ contents: 'export { default as en } from "./en.js";', resolveDir: a.pluginData as string }));
  },
};

/**
 * What bin/cosa.js runs: the CLI with every workspace package and third-party dependency in one
 * ESM bundle (a few files instead of ~370 modules to resolve and load at each start; see
 * docs/benchmarks.md). Code only some commands need (the S3/EC2 clients, execa's process
 * handling, the RPM composers) stays in chunks loaded on first use.
 */
const cli: Options = {
  entry: { cosa: 'src/index.ts' },
  outDir: 'dist/cli',
  format: ['esm'],
  dts: false,
  clean: true,
  target: 'node20',
  sourcemap: true,
  splitting: true,
  noExternal: [new RegExp(`^(?!(${external.join('|')})(/|$))`)],
  external,
  banner: { js: banner },
  esbuildPlugins: [importMetaUrl, zodEnglishOnly],
  esbuildOptions(o) {
    // tsup's chunks of sideEffects-free packages import each other bare; dropping those imports is right.
    o.logOverride = { ...o.logOverride, 'ignored-bare-import': 'silent' };
  },
};

export default defineConfig([sdk, cli]);
