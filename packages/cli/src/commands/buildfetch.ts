import { buildFetch } from '@cosa/core';
import type { RegisterCommand } from '../_context.js';

const collect = (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter(Boolean)];

/** `cosa buildfetch`: fetch a build's metadata (and artifacts on request) from a build store. */
export const registerBuildfetch: RegisterCommand = (program, ctx) => {
  program
    .command('buildfetch')
    .description('Fetch builds.json, meta.json and (on request) artifacts of a build from s3://, https://, http://, file:// or a path')
    .option('--url <url>', 'where builds live (default: the stream on builds.coreos.fedoraproject.org)')
    .option('--stream <stream>', 'stream for the default URL', 'testing-devel')
    .option('-b, --build <id>', 'the build to fetch (default: the remote latest)')
    .option('--arch <arch>', 'an arch to fetch (repeatable), or "all" (default: this machine)', collect)
    .option('--find-build-for-arch', 'fetch the newest build that has the (single) --arch')
    .option('--artifact <name>', 'an artifact (images key) to download (repeatable), or "all"', collect)
    .option('--file <name>', 'an extra file of the build dir to fetch (repeatable)', collect)
    .option('--force', 'replace a local builds.json that has changes of its own')
    .option('--aws-config-file <file>', 'AWS config file for s3:// (credentials, region)')
    .option('--endpoint-url <url>', 'S3 endpoint for s3:// (S3-compatible stores)')
    .option('--json', 'print the result as JSON (progress as JSON Lines)')
    .action(async (opts: {
      url?: string; stream: string; build?: string; arch?: string[]; findBuildForArch?: boolean; artifact?: string[]; file?: string[];
      force?: boolean; awsConfigFile?: string; endpointUrl?: string;
    }, cmd) => {
      const c = ctx(cmd);
      const url = opts.url ?? `https://builds.coreos.fedoraproject.org/prod/streams/${opts.stream}/builds`;
      const r = await buildFetch({
        workdir: c.cwd,
        url,
        ...(opts.build !== undefined ? { build: opts.build } : {}),
        ...(opts.arch ? { arch: opts.arch.includes('all') ? 'all' : opts.arch } : {}),
        ...(opts.findBuildForArch ? { findBuildForArch: true } : {}),
        ...(opts.artifact ? { artifacts: opts.artifact.includes('all') ? 'all' : opts.artifact } : {}),
        ...(opts.file ? { files: opts.file } : {}),
        ...(opts.force ? { force: true } : {}),
        ...(opts.awsConfigFile ? { awsConfigFile: opts.awsConfigFile } : {}),
        ...(opts.endpointUrl ? { endpointUrl: opts.endpointUrl } : {}),
        onProgress: c.onProgress,
        signal: c.signal,
      });
      if (c.json) {
        c.printJson({ ...r, metas: undefined });
        return;
      }
      if (!r.found) return;
      const got = r.files.filter((f) => !f.skipped).length;
      c.print(r.buildId ? `${r.buildId}: ${r.arches.join(', ') || 'no matching arch'}; ${got} files, ${(r.bytes / 1048576).toFixed(1)} MiB${r.latestUpdated ? '; builds/latest updated' : ''}` : 'builds.json fetched (no builds)');
    });
};
