import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeImportSnapshotTasksCommand,
  DescribeSnapshotsCommand,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
  type EC2Client,
  type Image,
  type LaunchPermission,
  type CreateVolumePermission,
  type Tag,
} from '@aws-sdk/client-ec2';
import { CosaError, type OnProgress } from '@cosa/schema';
import { retry } from '@cosa/schema/internal';
import { awsCall, isAwsError } from './_aws.js';

/** One EC2 client in one region, and where progress goes. */
export interface Ec2Ctx {
  ec2: EC2Client;
  region: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

const send = <T>(c: Ec2Ctx, what: string, fn: () => Promise<T>) => awsCall(what, c.region, fn);
const abortOpt = (c: Ec2Ctx) => (c.signal ? { abortSignal: c.signal } : {});

/** The AMI owned by this account named `name`, or undefined; `COSA_AWS_AMBIGUOUS` when several. */
export async function findImage(c: Ec2Ctx, name: string): Promise<Image | undefined> {
  const res = await send(c, 'DescribeImages', () =>
    c.ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }), abortOpt(c)),
  );
  const images = (res.Images ?? []).filter((i) => i.State !== 'deregistered');
  if (images.length > 1) {
    throw new CosaError('COSA_AWS_AMBIGUOUS', `${images.length} AMIs named ${name} in ${c.region}: ${images.map((i) => i.ImageId).join(', ')}`, {
      hint: 'deregister the extra ones (aws ec2 deregister-image)',
    });
  }
  return images[0];
}

/** The image `id` (undefined when it does not exist). */
export async function describeImage(c: Ec2Ctx, id: string): Promise<Image | undefined> {
  try {
    const res = await c.ec2.send(new DescribeImagesCommand({ ImageIds: [id] }), abortOpt(c));
    return res.Images?.[0];
  } catch (e) {
    if (isAwsError(e, 'InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable')) return undefined;
    return send(c, 'DescribeImages', () => Promise.reject(e));
  }
}

/** What {@link findSnapshot} found: a completed snapshot, or an import task still under way. */
export type FoundSnapshot = { snapshotId: string } | { importTaskId: string };

/**
 * The original's resume check: a completed snapshot of ours tagged `Name=<name>`, else an
 * import task whose Description is `<name>` that is neither cancelled nor deleted (a completed
 * task counts only while its snapshot still exists).
 */
export async function findSnapshot(c: Ec2Ctx, name: string): Promise<FoundSnapshot | undefined> {
  const res = await send(c, 'DescribeSnapshots', () =>
    c.ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [
          { Name: 'status', Values: ['completed'] },
          { Name: 'tag:Name', Values: [name] },
        ],
      }),
      abortOpt(c),
    ),
  );
  const snaps = res.Snapshots ?? [];
  if (snaps.length > 1) {
    throw new CosaError('COSA_AWS_AMBIGUOUS', `${snaps.length} snapshots tagged Name=${name} in ${c.region}: ${snaps.map((s) => s.SnapshotId).join(', ')}`);
  }
  if (snaps[0]?.SnapshotId) return { snapshotId: snaps[0].SnapshotId };
  const tasks = await send(c, 'DescribeImportSnapshotTasks', () => c.ec2.send(new DescribeImportSnapshotTasksCommand({}), abortOpt(c)));
  const found: string[] = [];
  for (const t of tasks.ImportSnapshotTasks ?? []) {
    if (t.Description !== name || !t.ImportTaskId) continue;
    const status = t.SnapshotTaskDetail?.Status ?? '';
    if (['cancelled', 'cancelling', 'deleted', 'deleting'].includes(status)) continue;
    if (status === 'completed') {
      const id = t.SnapshotTaskDetail?.SnapshotId;
      if (!id || !(await snapshotExists(c, id))) continue;
    }
    found.push(t.ImportTaskId);
  }
  if (found.length > 1) throw new CosaError('COSA_AWS_AMBIGUOUS', `${found.length} import tasks for ${name} in ${c.region}: ${found.join(', ')}`);
  return found[0] ? { importTaskId: found[0] } : undefined;
}

async function snapshotExists(c: Ec2Ctx, id: string): Promise<boolean> {
  try {
    await c.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }), abortOpt(c));
    return true;
  } catch (e) {
    if (isAwsError(e, 'InvalidSnapshot.NotFound')) return false;
    return send(c, 'DescribeSnapshots', () => Promise.reject(e));
  }
}

/** Tags resources; retried while EC2 does not see a fresh resource yet (eventual consistency). */
export async function tagResources(c: Ec2Ctx, ids: string[], tags: Record<string, string>): Promise<void> {
  const Tags: Tag[] = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  if (Tags.length === 0 || ids.length === 0) return;
  try {
    await retry(() => c.ec2.send(new CreateTagsCommand({ Resources: ids, Tags }), abortOpt(c)), {
      attempts: 6,
      retryIf: (e) => isAwsError(e, 'InvalidAMIID.NotFound', 'InvalidSnapshot.NotFound'),
      delayMs: (n) => 1000 * n,
      ...(c.signal ? { signal: c.signal } : {}),
    });
  } catch (e) {
    return send(c, 'CreateTags', () => Promise.reject(e));
  }
}

/** Deregisters an AMI; a missing one is fine. */
export async function deregisterImage(c: Ec2Ctx, id: string): Promise<void> {
  try {
    await c.ec2.send(new DeregisterImageCommand({ ImageId: id }), abortOpt(c));
    c.onProgress?.({ type: 'info', message: `deregistered ${id} in ${c.region}` });
  } catch (e) {
    if (isAwsError(e, 'InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable')) return;
    await send(c, 'DeregisterImage', () => Promise.reject(e));
  }
}

/** Deletes a snapshot; a missing one is fine. */
export async function deleteSnapshot(c: Ec2Ctx, id: string): Promise<void> {
  try {
    await c.ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }), abortOpt(c));
    c.onProgress?.({ type: 'info', message: `deleted ${id} in ${c.region}` });
  } catch (e) {
    if (isAwsError(e, 'InvalidSnapshot.NotFound', 'InvalidSnapshot.Unavailable')) return;
    await send(c, 'DeleteSnapshot', () => Promise.reject(e));
  }
}

/** Adds launch permissions to an AMI. */
export async function addLaunchPermissions(c: Ec2Ctx, imageId: string, add: LaunchPermission[]): Promise<void> {
  if (add.length === 0) return;
  await send(c, 'ModifyImageAttribute', () =>
    c.ec2.send(new ModifyImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission', LaunchPermission: { Add: add } }), abortOpt(c)),
  );
}

/** Adds create-volume permissions to a snapshot. */
export async function addVolumePermissions(c: Ec2Ctx, snapshotId: string, add: CreateVolumePermission[]): Promise<void> {
  if (add.length === 0) return;
  await send(c, 'ModifySnapshotAttribute', () =>
    c.ec2.send(
      new ModifySnapshotAttributeCommand({ SnapshotId: snapshotId, Attribute: 'createVolumePermission', CreateVolumePermission: { Add: add } }),
      abortOpt(c),
    ),
  );
}

/** The snapshot behind an AMI's EBS root volume. */
export function imageSnapshotId(image: Image): string | undefined {
  return image.BlockDeviceMappings?.find((m) => m.Ebs?.SnapshotId)?.Ebs?.SnapshotId;
}
