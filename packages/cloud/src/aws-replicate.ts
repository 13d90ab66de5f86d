import {
  CopyImageCommand,
  DescribeImageAttributeCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  type CreateVolumePermission,
  type EC2Client,
  type LaunchPermission,
  type Tag,
} from '@aws-sdk/client-ec2';
import { CosaError, type OnProgress } from '@cosa/schema';
import pLimit from 'p-limit';
import { awsCall, pollUntil } from './_aws.js';
import { addLaunchPermissions, addVolumePermissions, describeImage, findImage, imageSnapshotId, tagResources, type Ec2Ctx } from './_ec2.js';
import type { AmiEntry } from './aws-upload.js';

/** Options of {@link replicateAmi}. */
export interface ReplicateAmiOptions {
  /** The EC2 client of a region. */
  ec2: (region: string) => EC2Client;
  /** The AMI to copy (its `name` is its region). */
  source: AmiEntry;
  /** Regions to copy it into (the source region and duplicates are left out). */
  regions: string[];
  /** Copies under way at once (default 4). */
  concurrency?: number;
  /** Deadline of each copy becoming `available` (default 30 min, as the original). */
  timeoutMs?: number;
  /** First delay between checks (default 2 s, doubling up to 15 s). */
  pollIntervalMs?: number;
  /** Called as each region completes (the caller records it before the next one ends). */
  onRegion?: (entry: AmiEntry) => Promise<void> | void;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What {@link replicateAmi} did. */
export interface ReplicateAmiResult {
  /** Regions that completed, in the order they did. */
  copied: AmiEntry[];
  /** Regions that failed, with their errors (the others still completed). */
  failed: { region: string; error: Error }[];
}

interface SourceFacts {
  name: string;
  description: string;
  imageTags: Tag[];
  snapshotTags: Tag[];
  launch: LaunchPermission[];
  volume: CreateVolumePermission[];
}

async function readSource(c: Ec2Ctx, source: AmiEntry): Promise<SourceFacts> {
  const image = await describeImage(c, source.hvm);
  if (!image?.Name) throw new CosaError('COSA_AWS_NO_AMI', `AMI ${source.hvm} does not exist in ${source.name}`, { hint: 'cosa imageupload-aws --force makes it again' });
  const abort = c.signal ? { abortSignal: c.signal } : {};
  const snaps = await awsCall('DescribeSnapshots', c.region, () => c.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [source.snapshot] }), abort));
  const volume = await awsCall('DescribeSnapshotAttribute', c.region, () =>
    c.ec2.send(new DescribeSnapshotAttributeCommand({ SnapshotId: source.snapshot, Attribute: 'createVolumePermission' }), abort),
  );
  const launch = await awsCall('DescribeImageAttribute', c.region, () =>
    c.ec2.send(new DescribeImageAttributeCommand({ ImageId: source.hvm, Attribute: 'launchPermission' }), abort),
  );
  return {
    name: image.Name,
    description: image.Description ?? '',
    imageTags: image.Tags ?? [],
    snapshotTags: snaps.Snapshots?.[0]?.Tags ?? [],
    launch: launch.LaunchPermissions ?? [],
    volume: volume.CreateVolumePermissions ?? [],
  };
}

const tagMap = (tags: Tag[]) => Object.fromEntries(tags.filter((t) => t.Key && !t.Key.startsWith('aws:')).map((t) => [t.Key as string, t.Value ?? '']));

/** One region: find or start the copy, wait for it, then copy tags and permissions. */
async function copyInto(c: Ec2Ctx, source: AmiEntry, facts: SourceFacts, o: ReplicateAmiOptions): Promise<AmiEntry> {
  let imageId = (await findImage(c, facts.name))?.ImageId;
  if (imageId) c.onProgress?.({ type: 'info', message: `${c.region}: AMI ${imageId} named ${facts.name} exists; waiting for it` });
  else {
    const res = await awsCall('CopyImage', c.region, () =>
      c.ec2.send(new CopyImageCommand({ SourceRegion: source.name, SourceImageId: source.hvm, Name: facts.name, Description: facts.description }), c.signal ? { abortSignal: c.signal } : {}),
    );
    imageId = res.ImageId;
    if (!imageId) throw new CosaError('COSA_AWS_FAILED', `CopyImage into ${c.region} returned no image id`);
    c.onProgress?.({ type: 'info', message: `${c.region}: copying ${source.hvm} as ${imageId}` });
  }
  const id = imageId;
  const image = await pollUntil({
    what: `AMI ${id} in ${c.region} to be available`,
    timeoutMs: o.timeoutMs ?? 30 * 60_000,
    intervalMs: o.pollIntervalMs ?? 2000,
    ...(c.signal ? { signal: c.signal } : {}),
    ...(c.onProgress ? { onProgress: c.onProgress } : {}),
    check: async () => {
      const img = await describeImage(c, id);
      if (img?.State === 'available') return { done: true, value: img };
      if (img?.State === 'failed' || img?.State === 'error' || img?.State === 'deregistered') {
        throw new CosaError('COSA_AWS_FAILED', `copy of ${source.hvm} into ${c.region} (${id}) ended ${img.State}: ${img.StateReason?.Message ?? 'no reason given'}`);
      }
      return { done: false, status: img?.State ?? 'not listed yet' };
    },
  });
  const snapshotId = imageSnapshotId(image);
  if (!snapshotId) throw new CosaError('COSA_AWS_FAILED', `AMI ${id} in ${c.region} lists no EBS snapshot`);
  await tagResources(c, [id], tagMap(facts.imageTags));
  await tagResources(c, [snapshotId], tagMap(facts.snapshotTags));
  await addVolumePermissions(c, snapshotId, facts.volume);
  await addLaunchPermissions(c, id, facts.launch);
  return { name: c.region, hvm: id, snapshot: snapshotId };
}

/**
 * Copies an AMI into other regions (the original's `ore aws copy-image`): CopyImage into each
 * region concurrently (bounded), an AMI of the same name already there is waited for instead of
 * copied again; each waits for `available` with a deadline, then gets the source's tags, its
 * snapshot's tags and both permission lists. `onRegion` is called as each region completes; a
 * region that fails does not stop the others (they are listed in `failed`).
 */
export async function replicateAmi(o: ReplicateAmiOptions): Promise<ReplicateAmiResult> {
  const ctx = (region: string): Ec2Ctx => ({ ec2: o.ec2(region), region, ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
  const regions = [...new Set(o.regions)].filter((r) => r !== o.source.name);
  const copied: AmiEntry[] = [];
  const failed: { region: string; error: Error }[] = [];
  if (regions.length === 0) return { copied, failed };
  const facts = await readSource(ctx(o.source.name), o.source);
  const limit = pLimit(Math.max(1, o.concurrency ?? 4));
  let chain = Promise.resolve();
  await Promise.all(
    regions.map((region) =>
      limit(async () => {
        try {
          const entry = await copyInto(ctx(region), o.source, facts, o);
          // Records are made one at a time, in completion order.
          chain = chain.then(async () => {
            copied.push(entry);
            await o.onRegion?.(entry);
          });
          await chain;
        } catch (e) {
          failed.push({ region, error: e instanceof Error ? e : new Error(String(e)) });
        }
      }),
    ),
  );
  return { copied, failed };
}
