#!/usr/bin/env node
// Build a workdir from TypeScript/JavaScript with the SDK and print the result.
// usage: node examples/sdk-build.mjs WORKDIR   (after `pnpm -r run build`)
import { build } from '@cosa/core';

const workdir = process.argv[2] ?? process.cwd();
const result = await build({
  workdir,
  onProgress: (e) => {
    if (e.type === 'phase' && e.status === 'end') console.error(`${e.phase}: ${(e.elapsedMs / 1000).toFixed(1)}s`);
    if (e.type === 'info') console.error(e.message);
  },
});
console.log(JSON.stringify({ status: result.status, buildId: result.buildId, artifacts: result.artifacts }, null, 2));
