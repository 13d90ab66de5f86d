import { CosaError } from '@cosa/schema';
import { buildUpload } from '@cosa/core';
import type { RegisterCommand } from '../_context.js';

const collect = (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter(Boolean)];

interface ParentOpts {
  build?: string; artifact?: string[]; arch?: string[]; force?: boolean; dryRun?: boolean; skipBuildsJson?: boolean;
  awsConfigFile?: string; concurrency?: string; json?: boolean;
}

/** `cosa buildupload … s3 BUCKET/PREFIX`: upload a build to S3 (or any S3-compatible store). */
export const registerBuildupload: RegisterCommand = (program, ctx) => {
  const up = program
    .command('buildupload')
    .description('Upload a build: artifacts, then meta.json, then a merged builds.json')
    .option('--build <id>', 'the build to upload (default: latest)')
    .option('--artifact <name>', 'only this artifact (images key; repeatable): only its files are sent and only images.<name> (and what its platform owns, e.g. amis) is merged into the remote meta.json', collect)
    .option('--arch <arch>', 'only this arch (repeatable)', collect)
    .option('--force', 'send objects even when an identical one exists')
    .option('--dry-run', 'only show what would be sent')
    .option('--skip-builds-json', 'leave the remote builds.json alone')
    .option('--aws-config-file <file>', 'AWS config file (credentials, region)')
    .option('--concurrency <n>', 'files sent at the same time', '4')
    .option('--json', 'print the result as JSON (progress as JSON Lines)');
  up.command('s3')
    .description('upload to s3://BUCKET/PREFIX')
    .argument('<bucket-prefix>', 'BUCKET/PREFIX')
    .option('--acl <acl>', 'canned ACL for every object, e.g. public-read (default: none, the bucket decides)')
    .option('--enable-gz-peel', 'store *.gz images (not *.raw.gz) without .gz, with Content-Encoding: gzip (the uploaded meta.json names them so)')
    .option('--endpoint-url <url>', 'S3 endpoint (S3-compatible stores); path-style addressing is used')
    .option('--aws-config-file <file>', 'AWS config file (credentials, region)')
    .option('--json', 'print the result as JSON (progress as JSON Lines)')
    .action(async (bucketPrefix: string, opts: { acl?: string; enableGzPeel?: boolean; endpointUrl?: string; awsConfigFile?: string }, cmd) => {
      const p = (cmd.parent?.opts() ?? {}) as ParentOpts;
      const c = ctx(cmd);
      const concurrency = Number(p.concurrency ?? '4');
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new CosaError('COSA_USAGE', `--concurrency must be a positive integer, not ${p.concurrency}`);
      const awsConfigFile = opts.awsConfigFile ?? p.awsConfigFile;
      const json = c.json || p.json === true;
      const r = await buildUpload({
        workdir: c.cwd,
        bucketPrefix,
        ...(p.build !== undefined ? { build: p.build } : {}),
        ...(p.artifact ? { artifacts: p.artifact } : {}),
        ...(p.arch ? { arch: p.arch } : {}),
        ...(p.force ? { force: true } : {}),
        ...(p.dryRun ? { dryRun: true } : {}),
        ...(p.skipBuildsJson ? { skipBuildsJson: true } : {}),
        ...(opts.acl ? { acl: opts.acl } : {}),
        ...(opts.enableGzPeel ? { enableGzPeel: true } : {}),
        ...(opts.endpointUrl ? { endpointUrl: opts.endpointUrl } : {}),
        ...(awsConfigFile ? { awsConfigFile } : {}),
        concurrency,
        onProgress: c.onProgress,
        signal: c.signal,
      });
      if (json) {
        c.printJson(r);
        return;
      }
      const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
      c.print(`${r.buildId} (${r.arches.join(', ')}): sent ${mib(r.bytesSent)} in ${r.files.filter((f) => !f.skipped).length} files, skipped ${mib(r.bytesSkipped)} in ${r.files.filter((f) => f.skipped).length}${r.retries > 0 ? `; ${r.retries} conditional writes merged again` : ''}`);
    });
};
