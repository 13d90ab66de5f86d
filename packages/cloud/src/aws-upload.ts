import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  DescribeImportSnapshotTasksCommand,
  ImportSnapshotCommand,
  RegisterImageCommand,
  type BlockDeviceMapping,
  type RegisterImageCommandInput,
} from '@aws-sdk/client-ec2';
import { DeleteObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { CosaError, hashFile, withPhase, type OnProgress } from '@cosa/schema';
import { awsCall, isAwsError, pollUntil } from './_aws.js';
import {
  addLaunchPermissions, addVolumePermissions, deleteSnapshot, deregisterImage, findImage, findSnapshot, tagResources,
  type Ec2Ctx,
} from './_ec2.js';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { gibRoundedUp, vmdkVirtualSize } from './vmdk.js';

/** One `amis` entry of meta.json, as the original writes it. */
export interface AmiEntry {
  /** The region. */
  name: string;
  /** The AMI id. */
  hvm: string;
  /** The snapshot id. */
  snapshot: string;
}

/** Options of {@link uploadAmi}. */
export interface UploadAmiOptions {
  ec2: EC2Client;
  s3: S3Client;
  region: string;
  /** The stream-optimized VMDK to import. */
  file: string;
  /** The bucket the VMDK is staged in (the vmimport role must be able to read it). */
  bucket: string;
  /** Key prefix in the bucket (default `ami-import/`); the key is prefix + the file's name. */
  prefix?: string;
  /** The AMI name, also the snapshot's Name tag and the import task's Description. */
  name: string;
  description?: string;
  /** `x86_64` or `aarch64` (also `amd64`, `arm64`). */
  arch: string;
  /** EBS volume type of the root device (default gp3). */
  volumeType?: string;
  /** Boot mode on x86_64 (default `uefi-preferred`; aarch64 is always `uefi`). */
  x86BootMode?: string;
  /** Register the AMI as IMDSv2-only (`ImdsSupport: v2.0`). */
  imdsv2Only?: boolean;
  /** Tags for the AMI and its snapshot. */
  tags?: Record<string, string>;
  /** Accounts given launch permission on the AMI. */
  grantUsers?: string[];
  /** Accounts given create-volume permission on the snapshot. */
  grantUsersSnapshot?: string[];
  /** Make the AMI and its snapshot public. */
  public?: boolean;
  /**
   * Start over: deregister the AMI of that name (and `replace.hvm`), delete its snapshot (and
   * `replace.snapshot`) and the staged object before uploading again.
   */
  force?: boolean;
  /** A previous entry to remove when `force` is set. */
  replace?: AmiEntry;
  /** Keep the staged S3 object after the import (default: delete it). */
  keepObject?: boolean;
  /** Deadline of the import task (default 2 h). */
  importTimeoutMs?: number;
  /** First delay between import task checks (default 1 s, doubling up to 15 s). */
  pollIntervalMs?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What {@link uploadAmi} did. */
export interface UploadAmiResult extends AmiEntry {
  /** `s3://bucket/key` the VMDK was staged at. */
  s3Object: string;
  /** True when the VMDK was sent (false when a snapshot, task or object already existed). */
  uploaded: boolean;
  /** The import task that made the snapshot, when this run waited for one. */
  importTaskId?: string;
  /** True when an AMI of that name already existed and was reused. */
  reused: boolean;
}

/** The EC2 architecture and boot mode for a cosa arch. */
export function ec2Architecture(arch: string, x86BootMode = 'uefi-preferred'): { architecture: 'x86_64' | 'arm64'; bootMode: string } {
  if (arch === 'x86_64' || arch === 'amd64') return { architecture: 'x86_64', bootMode: x86BootMode };
  if (arch === 'aarch64' || arch === 'arm64') return { architecture: 'arm64', bootMode: 'uefi' };
  throw new CosaError('COSA_USAGE', `EC2 has no architecture for ${arch}`, { hint: 'AMIs are made for x86_64 and aarch64' });
}

/** The S3 key the VMDK is staged at: prefix (default `ami-import/`) + the file's name. */
export function stagingKey(file: string, prefix = 'ami-import/'): string {
  const p = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  return `${p.replace(/^\/+/, '')}${basename(file)}`;
}

/**
 * Makes an AMI from a VMDK with the original's `ore aws upload` sequence: resume check
 * (snapshot tagged Name=name, or an import task described as name) → HeadObject, multipart
 * upload to S3 → ImportSnapshot → wait for the task (with a deadline) → tag the snapshot →
 * delete the S3 object → RegisterImage (an AMI of that name is reused) → tags, grants, public.
 * Every step finds what an interrupted run left, so a re-run resumes where it stopped.
 */
export async function uploadAmi(o: UploadAmiOptions): Promise<UploadAmiResult> {
  const c: Ec2Ctx = { ec2: o.ec2, region: o.region, ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) };
  const { architecture, bootMode } = ec2Architecture(o.arch, o.x86BootMode);
  const sizeGiB = gibRoundedUp(await vmdkVirtualSize(o.file));
  const key = stagingKey(o.file, o.prefix);
  const s3Object = `s3://${o.bucket}/${key}`;
  if (o.force) await withPhase(o.onProgress, 'remove previous AMI', () => removeAmi(c, o, key));

  let uploaded = false;
  let importTaskId: string | undefined;
  let snapshotId: string | undefined;
  const found = await findSnapshot(c, o.name);
  if (found && 'snapshotId' in found) {
    snapshotId = found.snapshotId;
    o.onProgress?.({ type: 'info', message: `found snapshot ${snapshotId} for ${o.name} in ${o.region}` });
  } else {
    if (found) {
      importTaskId = found.importTaskId;
      o.onProgress?.({ type: 'info', message: `resuming import task ${importTaskId} for ${o.name} in ${o.region}` });
    } else {
      uploaded = await withPhase(o.onProgress, 'upload to S3', () => stageObject(o, key));
      importTaskId = await withPhase(o.onProgress, 'import snapshot', () => startImport(c, o.name, o.bucket, key));
    }
    snapshotId = await withPhase(o.onProgress, 'wait for import', () => waitForImport(c, importTaskId as string, o));
  }
  if (!o.keepObject) await deleteObject(o, key);

  const { imageId, reused } = await withPhase(o.onProgress, 'register AMI', () =>
    registerAmi(c, { name: o.name, description: o.description ?? '', architecture, bootMode, snapshotId: snapshotId as string, sizeGiB, volumeType: o.volumeType ?? 'gp3', imdsv2Only: o.imdsv2Only ?? false }),
  );
  await addLaunchPermissions(c, imageId, (o.grantUsers ?? []).map((UserId) => ({ UserId })));
  await addVolumePermissions(c, snapshotId, (o.grantUsersSnapshot ?? []).map((UserId) => ({ UserId })));
  if (o.public) {
    await addVolumePermissions(c, snapshotId, [{ Group: 'all' }]);
    await addLaunchPermissions(c, imageId, [{ Group: 'all' }]);
  }
  await tagResources(c, [imageId, snapshotId], o.tags ?? {});
  return { name: o.region, hvm: imageId, snapshot: snapshotId, s3Object, uploaded, reused, ...(importTaskId ? { importTaskId } : {}) };
}

/** `--force`: the AMI and snapshot of that name (and of the previous entry), and the staged object. */
async function removeAmi(c: Ec2Ctx, o: UploadAmiOptions, key: string): Promise<void> {
  const image = await findImage(c, o.name);
  if (image?.ImageId) await deregisterImage(c, image.ImageId);
  if (o.replace?.hvm && o.replace.hvm !== image?.ImageId) await deregisterImage(c, o.replace.hvm);
  const found = await findSnapshot(c, o.name);
  if (found && 'snapshotId' in found) await deleteSnapshot(c, found.snapshotId);
  if (o.replace?.snapshot && !(found && 'snapshotId' in found && found.snapshotId === o.replace.snapshot)) await deleteSnapshot(c, o.replace.snapshot);
  await deleteObject(o, key);
}

async function deleteObject(o: UploadAmiOptions, key: string): Promise<void> {
  await awsCall('DeleteObject', o.region, () => o.s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: key }), o.signal ? { abortSignal: o.signal } : {}));
}

/**
 * Sends the VMDK unless the object is already there with the same size and sha256 (kept in
 * `x-amz-meta-sha256`, as the build store does); true when sent.
 */
async function stageObject(o: UploadAmiOptions, key: string): Promise<boolean> {
  const size = (await stat(o.file)).size;
  const { sha256 } = await hashFile(o.file, { signal: o.signal });
  const sig = o.signal ? { abortSignal: o.signal } : {};
  try {
    const head = await o.s3.send(new HeadObjectCommand({ Bucket: o.bucket, Key: key }), sig);
    if (head.ContentLength === size && head.Metadata?.sha256 === sha256) {
      o.onProgress?.({ type: 'info', message: `s3://${o.bucket}/${key} is already there; not sending it again` });
      return false;
    }
  } catch (e) {
    if (!isAwsError(e, 'NotFound', 'NoSuchKey')) await awsCall('HeadObject', o.region, () => Promise.reject(e));
  }
  const name = basename(o.file);
  const upload = new Upload({
    client: o.s3,
    params: { Bucket: o.bucket, Key: key, Body: createReadStream(o.file), ContentLength: size, Metadata: { sha256 } },
    partSize: 16 * 1024 * 1024,
    queueSize: 4,
    leavePartsOnError: false,
  });
  upload.on('httpUploadProgress', (p) => o.onProgress?.({ type: 'transfer', name, bytes: p.loaded ?? 0, total: size }));
  const onAbort = () => void upload.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await awsCall('upload to S3', o.region, () => upload.done());
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
  o.onProgress?.({ type: 'transfer', name, bytes: size, total: size, done: true });
  return true;
}

async function startImport(c: Ec2Ctx, name: string, bucket: string, key: string): Promise<string> {
  const res = await awsCall('ImportSnapshot', c.region, () =>
    c.ec2.send(
      new ImportSnapshotCommand({
        RoleName: 'vmimport',
        Description: name,
        DiskContainer: { Format: 'VMDK', UserBucket: { S3Bucket: bucket, S3Key: key } },
      }),
      c.signal ? { abortSignal: c.signal } : {},
    ),
  );
  if (!res.ImportTaskId) throw new CosaError('COSA_AWS_FAILED', `ImportSnapshot in ${c.region} returned no task id`);
  c.onProgress?.({ type: 'info', message: `import task ${res.ImportTaskId} started in ${c.region}` });
  return res.ImportTaskId;
}

/** Waits for an import task to complete, then tags its snapshot Name=name; returns the snapshot. */
async function waitForImport(c: Ec2Ctx, taskId: string, o: UploadAmiOptions): Promise<string> {
  const snapshotId = await pollUntil<string>({
    what: `import task ${taskId} in ${c.region}`,
    timeoutMs: o.importTimeoutMs ?? 2 * 3600_000,
    ...(o.pollIntervalMs ? { intervalMs: o.pollIntervalMs } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    check: async () => {
      const res = await awsCall('DescribeImportSnapshotTasks', c.region, () =>
        c.ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [taskId] }), c.signal ? { abortSignal: c.signal } : {}),
      );
      const d = res.ImportSnapshotTasks?.[0]?.SnapshotTaskDetail;
      const status = d?.Status ?? 'unknown';
      if (status === 'completed' && d?.SnapshotId) return { done: true, value: d.SnapshotId };
      if (['deleted', 'deleting', 'cancelled', 'cancelling'].includes(status)) {
        throw new CosaError('COSA_AWS_IMPORT_FAILED', `import task ${taskId} in ${c.region} ended ${status}: ${d?.StatusMessage ?? 'no message'}`, {
          hint: 'check the vmimport role and that the object is the VMDK cosa buildextend-aws wrote',
        });
      }
      return { done: false, status: `${status}${d?.StatusMessage ? ` (${d.StatusMessage})` : ''}`, ...(d?.Progress ? { detail: `${d.Progress}%` } : {}) };
    },
  });
  await tagResources(c, [snapshotId], { Name: o.name });
  return snapshotId;
}

interface RegisterInput {
  name: string;
  description: string;
  architecture: 'x86_64' | 'arm64';
  bootMode: string;
  snapshotId: string;
  sizeGiB: number;
  volumeType: string;
  imdsv2Only: boolean;
}

/** The RegisterImage request of the original. */
export function registerImageInput(r: RegisterInput): RegisterImageCommandInput {
  const mappings: BlockDeviceMapping[] = [
    { DeviceName: '/dev/xvda', Ebs: { SnapshotId: r.snapshotId, DeleteOnTermination: true, VolumeSize: r.sizeGiB, VolumeType: r.volumeType as 'gp3' } },
    { DeviceName: '/dev/xvdb', VirtualName: 'ephemeral0' },
  ];
  return {
    Name: r.name,
    Description: r.description,
    Architecture: r.architecture,
    VirtualizationType: 'hvm',
    RootDeviceName: '/dev/xvda',
    BlockDeviceMappings: mappings,
    EnaSupport: true,
    SriovNetSupport: 'simple',
    BootMode: r.bootMode as 'uefi',
    ...(r.imdsv2Only ? { ImdsSupport: 'v2.0' as const } : {}),
  };
}

/** Registers the AMI, or finds the one of that name a previous run registered; tags it Name. */
async function registerAmi(c: Ec2Ctx, r: RegisterInput): Promise<{ imageId: string; reused: boolean }> {
  const existing = await findImage(c, r.name);
  let imageId = existing?.ImageId;
  let reused = imageId !== undefined;
  if (imageId) c.onProgress?.({ type: 'info', message: `AMI ${imageId} named ${r.name} already exists in ${c.region}; reusing it` });
  else {
    try {
      const res = await c.ec2.send(new RegisterImageCommand(registerImageInput(r)), c.signal ? { abortSignal: c.signal } : {});
      imageId = res.ImageId;
    } catch (e) {
      if (!isAwsError(e, 'InvalidAMIName.Duplicate')) return awsCall('RegisterImage', c.region, () => Promise.reject(e));
      // Lost a race with another run: its AMI shows up in DescribeImages shortly.
      imageId = await pollUntil({
        what: `AMI ${r.name} to be listed in ${c.region}`,
        timeoutMs: 5 * 60_000,
        check: async () => {
          const img = await findImage(c, r.name);
          return img?.ImageId ? { done: true, value: img.ImageId } : { done: false, status: 'not listed yet' };
        },
      });
      reused = true;
    }
    if (!imageId) throw new CosaError('COSA_AWS_FAILED', `RegisterImage in ${c.region} returned no image id`);
    c.onProgress?.({ type: 'info', message: `registered ${imageId} in ${c.region}` });
  }
  await tagResources(c, [imageId], { Name: r.name });
  return { imageId, reused };
}
