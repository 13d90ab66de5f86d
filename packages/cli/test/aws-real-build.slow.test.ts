/**
 * `cosa imageupload-aws` on a real build of the bundled example that has no aws image yet: the
 * command writes the aws VMDK first (as buildextend-aws), then imports it. AWS is moto_server
 * behind the front from @cosa/test-utils, which fakes only what moto lacks (ImportSnapshot,
 * DescribeImportSnapshotTasks) and records the requests that moto would drop (RegisterImage's
 * block devices and boot mode).
 */
import { execFileSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import { mkdir, readFile, readlink, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMetaJson } from '@cosa/schema';
import { startEc2ImportFront, tempDir, testWorkdirCache, validateWithOriginalSchema, type Ec2ImportFront } from '@cosa/test-utils';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from './_run.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
let base: { dir: string; cleanup(): Promise<void> };
let front: Ec2ImportFront;
let wd: string;

beforeAll(async () => {
  base = await tempDir('cosa-aws-real-');
  front = await startEc2ImportFront();
  await front.createBucket('real-ami-import');
  const config = join(base.dir, 'config');
  wd = join(base.dir, 'wd');
  cpSync(join(repoRoot, 'examples/debian'), config, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', config]);
  execFileSync('git', ['-C', config, '-c', 'user.name=cosa-test', '-c', 'user.email=test@cosa.invalid', 'add', '-A']);
  execFileSync('git', ['-C', config, '-c', 'user.name=cosa-test', '-c', 'user.email=test@cosa.invalid', 'commit', '-qm', 'example config']);
  await mkdir(wd, { recursive: true });
  const init = await runCli(['init', config], wd);
  if (init.code !== 0) throw new Error(init.stderr);
  await rm(join(wd, 'cache'), { recursive: true });
  await symlink(testWorkdirCache(), join(wd, 'cache'));
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await front?.stop();
  await base?.cleanup();
});

describe('cosa imageupload-aws on a real build', () => {
  it('makes the aws image of a build that lacks one, then the AMI', async () => {
    const b = await runCli(['build', '--json'], wd);
    expect(b.code, b.stderr + b.stdout.slice(-2000)).toBe(0);
    for (const [k, v] of Object.entries(front.env)) vi.stubEnv(k, v);
    const r = await runCli(['imageupload-aws', '--region', 'us-east-1', '--bucket', 'real-ami-import'], wd);
    expect(r.code, r.stderr).toBe(0);
    const id = await readlink(join(wd, 'builds', 'latest'));
    const arch = execFileSync('uname', ['-m']).toString().trim();
    const meta = parseMetaJson(await readFile(join(wd, 'builds', id, arch, 'meta.json'), 'utf8'));
    expect(meta.images?.aws?.path).toMatch(/-aws\.x86_64\.vmdk$/);
    expect(meta.amis).toHaveLength(1);
    expect(r.stdout).toBe(`us-east-1: ${meta.amis![0]!.hvm} (${meta.amis![0]!.snapshot})\n`);
    validateWithOriginalSchema(meta);
    // The EBS volume is the image's virtual size (image.yaml size, GB) rounded up to GiB.
    const virtual = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', join(wd, 'builds', id, arch, meta.images!.aws!.path)]).toString()) as { 'virtual-size': number };
    const reg = front.calls('RegisterImage').at(-1)!.params;
    expect(reg['BlockDeviceMapping.1.Ebs.VolumeSize']).toBe(String(Math.ceil(virtual['virtual-size'] / 1024 ** 3)));
    expect(reg.Name).toBe(`${meta.name}-${id}-${arch}`);
  });
});
