/**
 * `cosa imageupload-aws` / `cosa aws-replicate`: publish a build's aws image as an AMI and copy
 * it into other regions, recording `amis` in meta.json. The AWS work is @cosa/cloud's; it is
 * loaded with a dynamic import, so importing @cosa/core never loads the EC2 SDK.
 */
import { join } from 'node:path';
import { CosaError, loadConfig, type MetaJson, type OnProgress } from '@cosa/schema';
import type { AmiEntry, AwsClients, UploadAmiResult } from '@cosa/cloud';
import { hostArch } from './arch.js';
import { META_STAMP_KEY, metaStampNow } from './builds-dir.js';
import { buildExtend } from './buildextend.js';
import { Workdir } from './workdir.js';

/**
 * @cosa/cloud (and with it the AWS SDK) is an optional peer of @cosa/core: installed with the CLI,
 * loaded only when an AMI is published, so importing core stays light.
 */
async function loadCloud(): Promise<typeof import('@cosa/cloud')> {
  try {
    return await import('@cosa/cloud');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes('@cosa/cloud')) {
      throw new CosaError('COSA_TOOLS_MISSING', 'publishing to AWS needs the package @cosa/cloud, which is not installed', { hint: 'npm install @cosa/cloud (the cosa CLI ships with it)', cause: e });
    }
    throw e;
  }
}

/** Settings shared by {@link publishAws} and {@link replicateAws}. */
export interface AwsTarget {
  workdir: string;
  /** Build id (default latest). */
  build?: string;
  /** Default: the host's arch. */
  arch?: string;
  /** Clients to use (default: created from the SDK's standard chain and closed at the end). */
  clients?: AwsClients;
  /** An AWS config file (like `AWS_CONFIG_FILE`). */
  awsConfigFile?: string;
  /** A profile in it. */
  profile?: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** Options of {@link publishAws}. */
export interface PublishAwsOptions extends AwsTarget {
  /** Default: the standard chain's region (`AWS_REGION`, the profile). */
  region?: string;
  /** The bucket the VMDK is staged in. */
  bucket: string;
  /** Key prefix (default `ami-import/`). */
  prefix?: string;
  /** AMI name (default `<name>-<build id>-<arch>`, as the original). */
  name?: string;
  /** AMI description (default `<summary> <build id> <arch>`). */
  description?: string;
  public?: boolean;
  grantUsers?: string[];
  grantUsersSnapshot?: string[];
  tags?: Record<string, string>;
  /** Replace the region's AMI: the old AMI is deregistered and its snapshot deleted first. */
  force?: boolean;
  /** Deadline of the import (default 2 h). */
  timeoutMs?: number;
  /** First delay between import checks (default 1 s). */
  pollIntervalMs?: number;
}

/** What {@link publishAws} did. */
export interface PublishAwsResult {
  buildId: string;
  arch: string;
  /** The region's `amis` entry (new, or the one already recorded). */
  entry: AmiEntry;
  /** True when meta.json already had this region and nothing was done. */
  skipped: boolean;
  /** True when the aws image was made first (`buildextend-aws`). */
  builtImage: boolean;
  /** Details of the upload (absent when skipped). */
  upload?: UploadAmiResult;
}

interface Opened {
  wd: Workdir;
  buildId: string;
  arch: string;
  meta: MetaJson;
}

async function openBuild(o: AwsTarget): Promise<Opened> {
  const wd = await Workdir.open(o.workdir);
  const arch = o.arch ?? hostArch();
  const buildId = await wd.builds.resolve(o.build ?? 'latest', arch);
  return { wd, buildId, arch, meta: await wd.builds.getMeta(buildId, arch) };
}

async function withClients<T>(o: AwsTarget, fn: (clients: AwsClients) => Promise<T>): Promise<T> {
  if (o.clients) return fn(o.clients);
  const { createAwsClients } = await loadCloud();
  const clients = createAwsClients({ ...(o.awsConfigFile ? { awsConfigFile: o.awsConfigFile } : {}), ...(o.profile ? { profile: o.profile } : {}) });
  try {
    return await fn(clients);
  } finally {
    clients.destroy();
  }
}

/** Writes `amis` under the meta.json lock: `put` replaces the entry of its region. */
async function recordAmi(b: Opened, put: AmiEntry): Promise<void> {
  await b.wd.builds.updateMeta(b.buildId, b.arch, (m) => {
    const amis = (m.amis ?? []).filter((a) => a.name !== put.name);
    return { ...m, amis: [...amis, { name: put.name, hvm: put.hvm, snapshot: put.snapshot }], [META_STAMP_KEY]: metaStampNow() };
  });
}

/** The build's aws VMDK, made first by buildextend when the build has none. */
async function awsImage(b: Opened, o: PublishAwsOptions): Promise<{ file: string; built: boolean }> {
  let built = false;
  if (!b.meta.images?.aws) {
    o.onProgress?.({ type: 'info', message: `build ${b.buildId} has no aws image; making it (buildextend-aws)` });
    await buildExtend({ workdir: o.workdir, build: b.buildId, arch: b.arch, platforms: ['aws'], ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
    b.meta = await b.wd.builds.getMeta(b.buildId, b.arch);
    built = true;
  }
  const path = b.meta.images?.aws?.path;
  if (!path) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${b.buildId} has no aws image`);
  if (/\.(xz|gz|zst)$/.test(path)) throw new CosaError('COSA_BUILD_COMPRESSED', `the aws image of build ${b.buildId} is compressed`, { hint: 'cosa decompress --artifact aws first' });
  return { file: join(b.wd.buildsDir, b.buildId, b.arch, path), built };
}

/**
 * Makes an AMI of a build's aws image in one region and records it in meta.json `amis`
 * (`{name: region, hvm, snapshot}`). A region already recorded is left alone unless `force`.
 * The AMI settings `aws-imdsv2-only`, `aws-volume-type` and `aws-x86-boot-mode` come from
 * image.yaml. An interrupted run resumes: see `uploadAmi` in @cosa/cloud.
 */
export async function publishAws(o: PublishAwsOptions): Promise<PublishAwsResult> {
  const b = await openBuild(o);
  return withClients(o, async (clients) => {
    const region = o.region ?? (await clients.defaultRegion());
    const existing = b.meta.amis?.find((a) => a.name === region);
    if (existing && !o.force) {
      o.onProgress?.({ type: 'info', message: `build ${b.buildId} already has ${existing.hvm} in ${region}` });
      return { buildId: b.buildId, arch: b.arch, entry: existing, skipped: true, builtImage: false };
    }
    const { file, built } = await awsImage(b, o);
    const variant = await b.wd.configVariant();
    const cfg = await loadConfig({ configDir: b.wd.configDir, arch: b.arch, ...(variant ? { variant } : {}) }).catch(() => undefined);
    const ic = cfg?.imageConfig;
    const { uploadAmi } = await loadCloud();
    const name = o.name ?? `${b.meta.name}-${b.buildId}-${b.arch}`;
    const upload = await uploadAmi({
      ec2: clients.ec2(region), s3: clients.s3(region), region, file, bucket: o.bucket, name, arch: b.arch,
      description: o.description ?? `${b.meta.summary ?? b.meta.name} ${b.buildId} ${b.arch}`,
      imdsv2Only: ic?.['aws-imdsv2-only'] ?? true,
      volumeType: ic?.['aws-volume-type'] ?? 'gp3',
      x86BootMode: ic?.['aws-x86-boot-mode'] ?? 'uefi-preferred',
      ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
      ...(o.tags ? { tags: o.tags } : {}),
      ...(o.grantUsers ? { grantUsers: o.grantUsers } : {}),
      ...(o.grantUsersSnapshot ? { grantUsersSnapshot: o.grantUsersSnapshot } : {}),
      ...(o.public ? { public: true } : {}),
      ...(o.force ? { force: true } : {}),
      ...(existing ? { replace: existing } : {}),
      ...(o.timeoutMs ? { importTimeoutMs: o.timeoutMs } : {}),
      ...(o.pollIntervalMs ? { pollIntervalMs: o.pollIntervalMs } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    const entry: AmiEntry = { name: upload.name, hvm: upload.hvm, snapshot: upload.snapshot };
    await recordAmi(b, entry);
    return { buildId: b.buildId, arch: b.arch, entry, skipped: false, builtImage: built, upload };
  });
}

/** Options of {@link replicateAws}. */
export interface ReplicateAwsOptions extends AwsTarget {
  /** Regions to copy the AMI into. */
  regions: string[];
  /** The region to copy from (default: the first `amis` entry). */
  sourceRegion?: string;
  /** Copies under way at once (default 4). */
  concurrency?: number;
  /** Deadline of each copy (default 30 min). */
  timeoutMs?: number;
  pollIntervalMs?: number;
}

/** What {@link replicateAws} did. */
export interface ReplicateAwsResult {
  buildId: string;
  arch: string;
  source: AmiEntry;
  /** New entries, in the order they completed (each was written to meta.json as it did). */
  copied: AmiEntry[];
  /** Regions meta.json already had. */
  skipped: string[];
}

/**
 * Copies the build's AMI into other regions (the original's `cosa aws-replicate`), appending
 * each region to meta.json `amis` as it completes; regions already there are skipped. When some
 * regions fail, the others are still recorded and `COSA_AWS_FAILED` names the failed ones.
 */
export async function replicateAws(o: ReplicateAwsOptions): Promise<ReplicateAwsResult> {
  const b = await openBuild(o);
  const amis = b.meta.amis ?? [];
  const source = o.sourceRegion ? amis.find((a) => a.name === o.sourceRegion) : amis[0];
  if (!source) {
    throw new CosaError('COSA_AWS_NO_AMI', `build ${b.buildId} has no AMI${o.sourceRegion ? ` in ${o.sourceRegion}` : ''} to copy (meta.json amis)`, {
      hint: 'run cosa imageupload-aws first',
    });
  }
  const skipped = o.regions.filter((r) => amis.some((a) => a.name === r));
  if (skipped.length > 0) o.onProgress?.({ type: 'info', message: `AMIs already exist in ${skipped.join(', ')}; skipping` });
  const todo = [...new Set(o.regions)].filter((r) => !skipped.includes(r));
  if (todo.length === 0) return { buildId: b.buildId, arch: b.arch, source, copied: [], skipped };
  const { replicateAmi } = await loadCloud();
  const r = await withClients(o, (clients) =>
    replicateAmi({
      ec2: (region) => clients.ec2(region),
      source,
      regions: todo,
      onRegion: (entry) => recordAmi(b, entry),
      ...(o.concurrency ? { concurrency: o.concurrency } : {}),
      ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
      ...(o.pollIntervalMs ? { pollIntervalMs: o.pollIntervalMs } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    }),
  );
  if (r.failed.length > 0) {
    const what = r.failed.map((f) => `${f.region}: ${f.error.message}`).join('; ');
    throw new CosaError('COSA_AWS_FAILED', `copying ${source.hvm} failed in ${r.failed.length} region(s) (${what}); ${r.copied.length} recorded`, {
      hint: 'a re-run copies only the regions still missing',
      cause: r.failed[0]?.error,
    });
  }
  return { buildId: b.buildId, arch: b.arch, source, copied: r.copied, skipped };
}
