import type { Command } from 'commander';
import { publishAws, replicateAws } from '@cosa/core';
import { CosaError } from '@cosa/schema';
import type { CommandContext, RegisterCommand } from '../_context.js';
import { collect } from './_util.js';

/** Flags of `cosa imageupload-aws` (and of `buildextend-aws --upload`, `buildextend-ec2`). */
export interface AwsUploadFlags {
  build?: string;
  arch?: string;
  region?: string;
  bucket?: string;
  prefix?: string;
  name?: string;
  description?: string;
  public?: boolean;
  grantUser?: string[];
  grantUserSnapshot?: string[];
  tags?: string[];
  force?: boolean;
  awsConfigFile?: string;
  profile?: string;
  timeout?: string;
}

const commaList = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];

function minutes(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new CosaError('COSA_USAGE', `${flag} must be a positive number of minutes, not ${JSON.stringify(v)}`);
  return n * 60_000;
}

/** Adds the AMI upload flags (without --build, --force and --json, which the caller may already have). */
export function addAwsUploadOptions(cmd: Command): Command {
  return cmd
    .option('--arch <arch>', 'the build arch (default: this machine\'s)')
    .option('--region <region>', 'the region (default: AWS_REGION or the profile\'s)')
    .option('--bucket <bucket>', 'the S3 bucket to stage the VMDK in (BUCKET or s3://BUCKET/PREFIX)')
    .option('--prefix <prefix>', 'key prefix in the bucket (default ami-import/)')
    .option('--name <name>', 'AMI name (default <name>-<build>-<arch>)')
    .option('--description <text>', 'AMI description (default <summary> <build> <arch>)')
    .option('--public', 'make the AMI and its snapshot public')
    .option('--grant-user <account>', 'give this account launch permission (repeatable)', collect)
    .option('--grant-user-snapshot <account>', 'give this account create-volume permission on the snapshot (repeatable)', collect)
    .option('--tags <key=value>', 'tag the AMI and snapshot (repeatable)', collect)
    .option('--aws-config-file <file>', 'AWS config file (credentials, region)')
    .option('--profile <name>', 'profile in the AWS config')
    .option('--timeout <minutes>', 'give up waiting for the import after this long (default 120)');
}

function parseTags(tags: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags) {
    const i = t.indexOf('=');
    if (i <= 0) throw new CosaError('COSA_USAGE', `--tags takes key=value, not ${JSON.stringify(t)}`);
    out[t.slice(0, i)] = t.slice(i + 1);
  }
  return out;
}

/** Runs `cosa imageupload-aws` with parsed flags and prints the result. */
export async function runAwsUpload(c: CommandContext, o: AwsUploadFlags): Promise<void> {
  if (!o.bucket) throw new CosaError('COSA_USAGE', '--bucket is required to stage the VMDK for import');
  let bucket = o.bucket;
  let prefix = o.prefix;
  if (bucket.startsWith('s3://')) {
    const [b = '', ...rest] = bucket.slice(5).split('/');
    bucket = b;
    if (prefix === undefined && rest.some(Boolean)) prefix = `${rest.filter(Boolean).join('/')}/`;
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new CosaError('COSA_USAGE', `--bucket: not a valid bucket name: ${JSON.stringify(o.bucket)}`);
  const timeoutMs = minutes('--timeout', o.timeout);
  const r = await publishAws({
    workdir: c.cwd,
    bucket,
    tags: parseTags(o.tags),
    ...(prefix !== undefined ? { prefix } : {}),
    ...(o.build ? { build: o.build } : {}),
    ...(o.arch ? { arch: o.arch } : {}),
    ...(o.region ? { region: o.region } : {}),
    ...(o.name ? { name: o.name } : {}),
    ...(o.description ? { description: o.description } : {}),
    ...(o.public ? { public: true } : {}),
    ...(o.grantUser ? { grantUsers: o.grantUser } : {}),
    ...(o.grantUserSnapshot ? { grantUsersSnapshot: o.grantUserSnapshot } : {}),
    ...(o.force ? { force: true } : {}),
    ...(o.awsConfigFile ? { awsConfigFile: o.awsConfigFile } : {}),
    ...(o.profile ? { profile: o.profile } : {}),
    ...(timeoutMs ? { timeoutMs } : {}),
    signal: c.signal,
    onProgress: c.onProgress,
  });
  if (c.json) {
    c.printJson(r);
    return;
  }
  if (r.skipped) c.print(`${r.entry.name}: build ${r.buildId} already has ${r.entry.hvm} (${r.entry.snapshot}); use --force to replace it`);
  else c.print(`${r.entry.name}: ${r.entry.hvm} (${r.entry.snapshot})`);
}

/** `cosa imageupload-aws`, `cosa buildextend-ec2` (the same) and `cosa aws-replicate`. */
export const registerAws: RegisterCommand = (program, ctx) => {
  for (const [name, what] of [
    ['imageupload-aws', 'Make an AMI of a build\'s aws image and record it in meta.json amis'],
    ['buildextend-ec2', 'The same as imageupload-aws (the original\'s older name)'],
  ] as const) {
    const cmd = program
      .command(name)
      .description(what)
      .option('--build <id>', 'the build (default: latest)')
      .option('--force', 'replace the region\'s AMI: deregister it and delete its snapshot first')
      .option('--json', 'print the result as JSON (progress as JSON Lines)');
    addAwsUploadOptions(cmd).action(async (o: AwsUploadFlags, c: Command) => runAwsUpload(ctx(c), o));
  }
  program
    .command('aws-replicate')
    .description('Copy a build\'s AMI into other regions, recording each in meta.json amis')
    .option('--build <id>', 'the build (default: latest)')
    .option('--arch <arch>', 'the build arch (default: this machine\'s)')
    .option('--regions <list>', 'regions to copy into (comma-separated; repeatable)', commaList)
    .option('--region <region>', 'a region to copy into (repeatable, as the original)', commaList)
    .option('--source-region <region>', 'the region to copy from (default: the first amis entry)')
    .option('--concurrency <n>', 'copies under way at once (default 4)')
    .option('--aws-config-file <file>', 'AWS config file (credentials, region)')
    .option('--profile <name>', 'profile in the AWS config')
    .option('--timeout <minutes>', 'give up waiting for a copy after this long (default 30)')
    .option('--json', 'print the result as JSON (progress as JSON Lines)')
    .action(async (o: { build?: string; arch?: string; regions?: string[]; region?: string[]; sourceRegion?: string; concurrency?: string; awsConfigFile?: string; profile?: string; timeout?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const regions = [...(o.regions ?? []), ...(o.region ?? [])];
      if (regions.length === 0) throw new CosaError('COSA_USAGE', 'name the regions to copy into: --regions r1,r2');
      const concurrency = o.concurrency === undefined ? undefined : Number(o.concurrency);
      if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) throw new CosaError('COSA_USAGE', `--concurrency must be a positive integer, not ${o.concurrency}`);
      const timeoutMs = minutes('--timeout', o.timeout);
      const r = await replicateAws({
        workdir: c.cwd,
        regions,
        ...(o.build ? { build: o.build } : {}),
        ...(o.arch ? { arch: o.arch } : {}),
        ...(o.sourceRegion ? { sourceRegion: o.sourceRegion } : {}),
        ...(concurrency ? { concurrency } : {}),
        ...(o.awsConfigFile ? { awsConfigFile: o.awsConfigFile } : {}),
        ...(o.profile ? { profile: o.profile } : {}),
        ...(timeoutMs ? { timeoutMs } : {}),
        signal: c.signal,
        onProgress: c.onProgress,
      });
      if (c.json) {
        c.printJson(r);
        return;
      }
      for (const e of r.copied) c.print(`${e.name}: ${e.hvm} (${e.snapshot})`);
      for (const s of r.skipped) c.print(`${s}: already in meta.json amis`);
    });
};
