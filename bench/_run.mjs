#!/usr/bin/env node
// Runs a TypeScript bench script against the workspace sources: bundles it with esbuild (the
// copy tsup already installs), mapping @cosa/* to packages/*/src, then imports the bundle.
// Usage: node bench/_run.mjs bench/compose.ts [args...]
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pnpmDir = join(root, 'node_modules/.pnpm');
const esbuildDir = readdirSync(pnpmDir).find((n) => n.startsWith('esbuild@'));
if (!esbuildDir) throw new Error('esbuild not found under node_modules/.pnpm (run pnpm install)');
const require = createRequire(join(pnpmDir, esbuildDir, 'node_modules/esbuild/package.json'));
const esbuild = require('esbuild');
const [script, ...args] = process.argv.slice(2);
if (!script) throw new Error('usage: node bench/_run.mjs bench/<script>.ts [args...]');
const alias = Object.fromEntries(
  ['schema', 'ostree', 'image', 'store', 'core', 'cli', 'test-utils'].map((p) => [`@cosa/${p}`, join(root, `packages/${p}/src/index.ts`)]),
);
const out = mkdtempSync(join(tmpdir(), 'cosa-bench-'));
try {
  const outfile = join(out, 'bench.mjs');
  await esbuild.build({
    entryPoints: [resolve(script)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    alias,
    // Everything is bundled (pure JS deps), so the bundle runs from a temp dir. Package assets
    // are not next to the bundle: scripts pass their paths explicitly.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'warning',
  });
  process.argv = [process.argv[0], resolve(script), ...args];
  await import(pathToFileURL(outfile).href);
} finally {
  rmSync(out, { recursive: true, force: true });
}
