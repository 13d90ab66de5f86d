/**
 * uploadAmi and replicateAmi with real SDK clients against moto_server. moto cannot import
 * snapshots (ImportSnapshot / DescribeImportSnapshotTasks answer 500) and drops RegisterImage's
 * BlockDeviceMappings and BootMode, so a front from @cosa/test-utils fakes the two import calls
 * (pending → active → completed, with a snapshot made in moto) and records every request: the
 * checks on what moto ignores are made on the recorded requests. Everything else is moto's.
 */
import { join } from 'node:path';
import { DescribeImageAttributeCommand, DescribeImagesCommand, DescribeSnapshotsCommand, ImportSnapshotCommand, EC2Client } from '@aws-sdk/client-ec2';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { isCosaError } from '@cosa/schema';
import { makeTestVmdk, startEc2ImportFront, tempDir, type Ec2ImportFront } from '@cosa/test-utils';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createAwsClients, replicateAmi, uploadAmi, type AwsClients, type UploadAmiOptions } from '../src/index.js';

let front: Ec2ImportFront;
let work: { dir: string; cleanup(): Promise<void> };
let aws: AwsClients;
const BUCKET = 'ami-import-test';

beforeAll(async () => {
  front = await startEc2ImportFront();
  await front.createBucket(BUCKET);
  work = await tempDir('cosa-cloud-');
});
afterAll(async () => {
  await front?.stop();
  await work?.cleanup();
});
beforeEach(() => {
  for (const [k, v] of Object.entries(front.env)) vi.stubEnv(k, v);
  aws = createAwsClients();
});
afterEach(() => {
  aws.destroy();
  vi.unstubAllEnvs();
});

/** Options for one AMI named after `id`, from a fresh VMDK of 1.5 GiB. */
function amiOptions(id: string, extra: Partial<UploadAmiOptions> = {}): UploadAmiOptions {
  const file = join(work.dir, `os-${id}-aws.x86_64.vmdk`);
  makeTestVmdk(file, 1.5 * 1024 ** 3, id);
  return {
    ec2: aws.ec2('us-east-1'), s3: aws.s3('us-east-1'), region: 'us-east-1',
    file, bucket: BUCKET, name: `os-${id}-x86_64`, description: `os ${id} x86_64`, arch: 'x86_64',
    imdsv2Only: true, pollIntervalMs: 20, ...extra,
  };
}

const actionsSince = (n: number, keep: string[]) =>
  front.requests.slice(n).filter((r) => (r.status < 300 || r.action === 'HeadObject') && keep.includes(r.action)).map((r) => r.action);
const KEY_ACTIONS = ['DescribeSnapshots', 'HeadObject', 'PutObject', 'CreateMultipartUpload', 'ImportSnapshot', 'CreateTags', 'DeleteObject', 'DescribeImages', 'RegisterImage'];

describe('uploadAmi', () => {
  it('uploads the VMDK, imports it, registers the AMI as the original does, and cleans up the object', async () => {
    const n = front.requests.length;
    const o = amiOptions('1.0', { tags: { team: 'os' } });
    const r = await uploadAmi(o);
    expect(r.hvm).toMatch(/^ami-/);
    expect(r.snapshot).toMatch(/^snap-/);
    expect(r).toMatchObject({ name: 'us-east-1', uploaded: true, reused: false, s3Object: `s3://${BUCKET}/ami-import/os-1.0-aws.x86_64.vmdk` });
    // The order of the original: resume check, upload, import, tag snapshot, delete object, register, tag.
    const seq = actionsSince(n, KEY_ACTIONS).filter((a, i, all) => a !== all[i - 1]);
    expect(seq).toEqual(['DescribeSnapshots', 'HeadObject', 'PutObject', 'ImportSnapshot', 'CreateTags', 'DeleteObject', 'DescribeImages', 'RegisterImage', 'CreateTags']);
    const imp = front.calls('ImportSnapshot').at(-1)!.params;
    expect(imp).toMatchObject({ RoleName: 'vmimport', Description: 'os-1.0-x86_64', 'DiskContainer.Format': 'VMDK', 'DiskContainer.UserBucket.S3Bucket': BUCKET, 'DiskContainer.UserBucket.S3Key': 'ami-import/os-1.0-aws.x86_64.vmdk' });
    // What moto drops, checked on the request: 1.5 GiB rounds up to a 2 GiB gp3 volume.
    const reg = front.calls('RegisterImage').at(-1)!.params;
    expect(reg).toMatchObject({
      Name: 'os-1.0-x86_64', Description: 'os 1.0 x86_64', Architecture: 'x86_64', VirtualizationType: 'hvm', RootDeviceName: '/dev/xvda',
      'BlockDeviceMapping.1.DeviceName': '/dev/xvda', 'BlockDeviceMapping.1.Ebs.SnapshotId': r.snapshot, 'BlockDeviceMapping.1.Ebs.VolumeSize': '2',
      'BlockDeviceMapping.1.Ebs.VolumeType': 'gp3', 'BlockDeviceMapping.1.Ebs.DeleteOnTermination': 'true',
      'BlockDeviceMapping.2.DeviceName': '/dev/xvdb', 'BlockDeviceMapping.2.VirtualName': 'ephemeral0',
      EnaSupport: 'true', SriovNetSupport: 'simple', BootMode: 'uefi-preferred', ImdsSupport: 'v2.0',
    });
    // And in moto: the snapshot is tagged with the name, the AMI exists with its tags, the object is gone.
    const snaps = await front.ec2().send(new DescribeSnapshotsCommand({ SnapshotIds: [r.snapshot] }));
    expect(snaps.Snapshots?.[0]?.Tags).toEqual(expect.arrayContaining([{ Key: 'Name', Value: 'os-1.0-x86_64' }, { Key: 'team', Value: 'os' }]));
    const imgs = await front.ec2().send(new DescribeImagesCommand({ ImageIds: [r.hvm] }));
    expect(imgs.Images?.[0]?.Name).toBe('os-1.0-x86_64');
    expect(imgs.Images?.[0]?.Tags).toEqual(expect.arrayContaining([{ Key: 'Name', Value: 'os-1.0-x86_64' }, { Key: 'team', Value: 'os' }]));
    await expect(front.s3().send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'ami-import/os-1.0-aws.x86_64.vmdk' }))).rejects.toMatchObject({ name: 'NotFound' });

    // A second run finds the snapshot and the AMI: nothing is sent, imported or registered again.
    const m = front.requests.length;
    const again = await uploadAmi({ ...o, ec2: aws.ec2('us-east-1') });
    expect(again).toMatchObject({ hvm: r.hvm, snapshot: r.snapshot, uploaded: false, reused: true });
    expect(actionsSince(m, ['PutObject', 'CreateMultipartUpload', 'ImportSnapshot', 'RegisterImage'])).toEqual([]);
  });

  it('surfaces the message of an import task that fails (resumed from an earlier run)', async () => {
    const o = amiOptions('2.0');
    // An earlier run staged something that is not a VMDK and started its import.
    await front.s3().send(new PutObjectCommand({ Bucket: BUCKET, Key: 'ami-import/junk.img', Body: 'not a disk' }));
    const ec2 = new EC2Client({ region: 'us-east-1', endpoint: front.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    await ec2.send(new ImportSnapshotCommand({ Description: o.name, RoleName: 'vmimport', DiskContainer: { Format: 'VMDK', UserBucket: { S3Bucket: BUCKET, S3Key: 'ami-import/junk.img' } } }));
    ec2.destroy();
    const n = front.requests.length;
    const err = await uploadAmi(o).catch((e: unknown) => e);
    expect(isCosaError(err, 'COSA_AWS_IMPORT_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/ended deleted: ClientError: Disk validation failed \[Unsupported VMDK File Format\]/);
    expect(actionsSince(n, ['PutObject', 'ImportSnapshot', 'RegisterImage'])).toEqual([]);
    // The failed task no longer counts: the next run uploads and imports afresh.
    const r = await uploadAmi({ ...o, ec2: aws.ec2('us-east-1') });
    expect(r.uploaded).toBe(true);
  });

  it('gives up waiting for the import at the deadline, naming the task; a re-run resumes it', async () => {
    const o = amiOptions('2.5');
    front.holdImports(true);
    try {
      const err = await uploadAmi({ ...o, importTimeoutMs: 500 }).catch((e: unknown) => e);
      expect(isCosaError(err, 'COSA_AWS_TIMEOUT')).toBe(true);
      expect((err as Error).message).toMatch(/^gave up waiting for import task import-snap-\w+ in us-east-1 after 1 s \(last status: active \(converting\)\)/);
    } finally {
      front.holdImports(false);
    }
    const n = front.requests.length;
    const r = await uploadAmi({ ...o, ec2: aws.ec2('us-east-1') });
    expect(r).toMatchObject({ uploaded: false, importTaskId: expect.stringMatching(/^import-snap-/) });
    expect(actionsSince(n, ['PutObject', 'ImportSnapshot'])).toEqual([]);
  });

  it('retries throttled requests (RequestLimitExceeded from EC2, SlowDown from S3)', async () => {
    const o = amiOptions('3.0');
    front.throttle('PutObject', 2);
    front.throttle('ImportSnapshot', 1);
    front.throttle('DescribeImportSnapshotTasks', 2);
    front.throttle('RegisterImage', 1);
    const before = Object.fromEntries(['PutObject', 'ImportSnapshot', 'RegisterImage'].map((a) => [a, front.calls(a, true).length]));
    const r = await uploadAmi(o);
    expect(r.hvm).toMatch(/^ami-/);
    expect(front.calls('PutObject', true).length - before.PutObject!).toBe(3);
    expect(front.calls('ImportSnapshot', true).length - before.ImportSnapshot!).toBe(2);
    expect(front.calls('RegisterImage', true).length - before.RegisterImage!).toBe(2);
    expect(front.requests.filter((q) => q.status === 503).length).toBeGreaterThanOrEqual(6);
  });

  it('--force deregisters the AMI and deletes the snapshot before making them again', async () => {
    const o = amiOptions('4.0');
    const first = await uploadAmi(o);
    const n = front.requests.length;
    const second = await uploadAmi({ ...o, ec2: aws.ec2('us-east-1'), force: true, replace: first });
    expect(second.hvm).not.toBe(first.hvm);
    expect(second.snapshot).not.toBe(first.snapshot);
    expect(second.uploaded).toBe(true);
    expect(front.requests.slice(n).filter((q) => q.action === 'DeregisterImage').map((q) => q.params.ImageId)).toEqual([first.hvm]);
    expect(front.requests.slice(n).filter((q) => q.action === 'DeleteSnapshot').map((q) => q.params.SnapshotId)).toEqual([first.snapshot]);
    const left = await front.ec2().send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [o.name] }] }));
    expect(left.Images?.map((i) => i.ImageId)).toEqual([second.hvm]);
  });

  it('registers an aarch64 image as arm64 with uefi boot, and leaves ImdsSupport out when not asked', async () => {
    const o = amiOptions('5.5', { arch: 'aarch64', imdsv2Only: false, x86BootMode: 'legacy-bios', volumeType: 'io2' });
    await uploadAmi(o);
    const reg = front.calls('RegisterImage').at(-1)!.params;
    expect(reg).toMatchObject({ Name: o.name, Architecture: 'arm64', BootMode: 'uefi', 'BlockDeviceMapping.1.Ebs.VolumeType': 'io2' });
    expect(reg.ImdsSupport).toBeUndefined();
    await expect(uploadAmi({ ...o, arch: 'ppc64le' })).rejects.toMatchObject({ code: 'COSA_USAGE' });
  });

  it('grants launch and volume permissions, and --public opens both to all', async () => {
    const o = amiOptions('5.0', { grantUsers: ['111122223333'], grantUsersSnapshot: ['444455556666'], public: true });
    const r = await uploadAmi(o);
    const mods = front.requests.filter((q) => q.action === 'ModifyImageAttribute' || q.action === 'ModifySnapshotAttribute').map((q) => ({ a: q.action, ...q.params }));
    expect(mods).toEqual(expect.arrayContaining([
      expect.objectContaining({ a: 'ModifyImageAttribute', ImageId: r.hvm, Attribute: 'launchPermission', 'LaunchPermission.Add.1.UserId': '111122223333' }),
      expect.objectContaining({ a: 'ModifySnapshotAttribute', SnapshotId: r.snapshot, Attribute: 'createVolumePermission', 'CreateVolumePermission.Add.1.UserId': '444455556666' }),
      expect.objectContaining({ a: 'ModifySnapshotAttribute', SnapshotId: r.snapshot, 'CreateVolumePermission.Add.1.Group': 'all' }),
      expect.objectContaining({ a: 'ModifyImageAttribute', ImageId: r.hvm, 'LaunchPermission.Add.1.Group': 'all' }),
    ]));
    const launch = await front.ec2().send(new DescribeImageAttributeCommand({ ImageId: r.hvm, Attribute: 'launchPermission' }));
    expect(launch.LaunchPermissions).toEqual(expect.arrayContaining([{ UserId: '111122223333' }, { Group: 'all' }]));
    // moto reads only the older UserId/Group form of ModifySnapshotAttribute and drops
    // CreateVolumePermission.Add (which AWS takes and the original sends): checked on the requests above.
  });
});

describe('endpoints', () => {
  it('takes AWS_ENDPOINT_URL_EC2 and AWS_ENDPOINT_URL_S3 (path-style) from the environment', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL', 'http://127.0.0.1:9'); // nothing listens there: the per-service ones must win
    vi.stubEnv('AWS_ENDPOINT_URL_EC2', front.endpoint);
    vi.stubEnv('AWS_ENDPOINT_URL_S3', front.motoEndpoint);
    aws.destroy();
    aws = createAwsClients();
    const n = front.requests.length;
    const r = await uploadAmi(amiOptions('7.0'));
    expect(r.uploaded).toBe(true);
    const seen = front.requests.slice(n);
    expect(seen.some((q) => q.action === 'RegisterImage')).toBe(true);
    // S3 went straight to moto (path-style: a virtual-host name under 127.0.0.1 would not resolve).
    expect(seen.filter((q) => q.service === 's3')).toEqual([]);
  });
});

describe('replicateAmi', () => {
  it('copies the AMI into two regions with its tags and permissions, and a re-run copies nothing', async () => {
    const src = await uploadAmi(amiOptions('6.0', { tags: { team: 'os' }, grantUsers: ['111122223333'] }));
    const seen: string[] = [];
    const r = await replicateAmi({ ec2: aws.ec2, source: src, regions: ['eu-west-1', 'us-west-2', 'us-east-1'], pollIntervalMs: 20, onRegion: (e) => void seen.push(e.name) });
    expect(r.failed).toEqual([]);
    expect(r.copied.map((e) => e.name).sort()).toEqual(['eu-west-1', 'us-west-2']);
    expect(seen.sort()).toEqual(['eu-west-1', 'us-west-2']);
    for (const e of r.copied) {
      const copy = front.calls('CopyImage').find((q) => q.region === e.name)!;
      expect(copy.params).toMatchObject({ SourceRegion: 'us-east-1', SourceImageId: src.hvm, Name: 'os-6.0-x86_64', Description: 'os 6.0 x86_64' });
      const img = (await front.ec2(e.name).send(new DescribeImagesCommand({ ImageIds: [e.hvm] }))).Images?.[0];
      expect(img?.Tags).toEqual(expect.arrayContaining([{ Key: 'Name', Value: 'os-6.0-x86_64' }, { Key: 'team', Value: 'os' }]));
      const launch = await front.ec2(e.name).send(new DescribeImageAttributeCommand({ ImageId: e.hvm, Attribute: 'launchPermission' }));
      expect(launch.LaunchPermissions).toEqual([{ UserId: '111122223333' }]);
      expect(e.snapshot).toMatch(/^snap-/);
    }
    const copies = front.calls('CopyImage').length;
    const again = await replicateAmi({ ec2: aws.ec2, source: src, regions: ['eu-west-1', 'us-west-2'], pollIntervalMs: 20 });
    expect(front.calls('CopyImage').length).toBe(copies);
    expect(again.copied.map((e) => e.hvm).sort()).toEqual(r.copied.map((e) => e.hvm).sort());
  });
});
