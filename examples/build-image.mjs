#!/usr/bin/env node
// Get the image of one platform for a build of a workdir, and print its path, sha256 and size.
// usage: node examples/build-image.mjs WORKDIR [PLATFORM] [BUILD]   (after `pnpm -r run build`)
//   PLATFORM: qemu, metal (default), metal4k, aws, azure, gcp, vmware, …; BUILD: an id or latest
import { buildImage } from '@cosa/core';

const [workdir = process.cwd(), platform = 'metal', build = 'latest'] = process.argv.slice(2);
const ac = new AbortController();
process.once('SIGINT', () => ac.abort());

const img = await buildImage({
  workdir,
  build,
  platform,
  signal: ac.signal,
  onProgress: (e) => {
    if (e.type === 'phase' && e.status === 'end') console.error(`${e.phase}: ${(e.elapsedMs / 1000).toFixed(1)}s`);
    if (e.type === 'info' || e.type === 'warning') console.error(e.message);
  },
});
// { platform, path, sha256, size, buildId, arch, written }: written is false when the build had it.
console.log(JSON.stringify(img, null, 2));
