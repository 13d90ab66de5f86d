/**
 * `cosa imageupload-aws`, its older spellings and `cosa aws-replicate`, in-process, against
 * moto_server with real SDK clients. moto implements neither ImportSnapshot nor
 * DescribeImportSnapshotTasks: the front from @cosa/test-utils answers those (and records every
 * request); the rest is moto's. The builds are synthetic (a small stream-optimized VMDK, no OS).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { serializeBuildsJson, serializeMetaJson, type MetaJson } from '@cosa/schema';
import { fakeMeta, makeTestVmdk, startEc2ImportFront, tempWorkdir, type Ec2ImportFront, type TempWorkdir } from '@cosa/test-utils';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runCli } from './_run.js';

let front: Ec2ImportFront;
const wds: TempWorkdir[] = [];
const SECRET = 'cosa-test-secret-2f9c1d';
const BUCKET = 'cli-ami-import';

beforeAll(async () => {
  front = await startEc2ImportFront();
  await front.createBucket(BUCKET);
});
afterAll(async () => {
  await front?.stop();
  for (const w of wds) await w.cleanup();
});
beforeEach(() => {
  for (const [k, v] of Object.entries(front.env)) vi.stubEnv(k, v);
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', SECRET);
});
afterEach(() => vi.unstubAllEnvs());

/** A workdir whose latest build (x86_64) has an aws VMDK. */
async function workdir(id: string): Promise<{ dir: string; metaFile: string }> {
  const wd = await tempWorkdir({ prefix: 'cosa-cli-aws-' });
  wds.push(wd);
  const bdir = join(wd.dir, 'builds', id, 'x86_64');
  await mkdir(bdir, { recursive: true });
  const file = `os-${id}-aws.x86_64.vmdk`;
  makeTestVmdk(join(bdir, file), 1024 ** 3, id);
  const data = await readFile(join(bdir, file));
  const meta = fakeMeta(id, { name: 'os' });
  (meta.images as Record<string, unknown>).aws = { path: file, sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
  await writeFile(join(bdir, 'meta.json'), serializeMetaJson(meta as MetaJson));
  await writeFile(join(wd.dir, 'builds', 'builds.json'), serializeBuildsJson({ 'schema-version': '1.0.0', builds: [{ id, arches: ['x86_64'] }] }));
  await symlink(id, join(wd.dir, 'builds', 'latest'));
  return { dir: wd.dir, metaFile: join(bdir, 'meta.json') };
}

const amis = async (f: string) => (JSON.parse(await readFile(f, 'utf8')) as MetaJson).amis;

describe('cosa imageupload-aws / aws-replicate', () => {
  it('makes the AMI, records it, says so on a re-run, and copies it to two regions', async () => {
    const w = await workdir('10.1');
    const up = await runCli(['imageupload-aws', '--arch', 'x86_64', '--region', 'us-east-1', '--bucket', `s3://${BUCKET}/staging`, '--tags', 'stream=testing', '--json'], w.dir);
    expect(up.stderr).not.toMatch(/error/);
    expect(up.code).toBe(0);
    const lines = up.stdout.trim().split('\n');
    expect(lines.some((l) => l.includes('"type":"phase"'))).toBe(true);
    const result = JSON.parse(lines.slice(lines.findIndex((l) => l.startsWith('{') && !l.includes('"type"'))).join('\n')) as { entry: { hvm: string; snapshot: string } };
    expect(await amis(w.metaFile)).toEqual([{ name: 'us-east-1', hvm: result.entry.hvm, snapshot: result.entry.snapshot }]);
    expect(front.calls('ImportSnapshot').at(-1)!.params['DiskContainer.UserBucket.S3Key']).toBe('staging/os-10.1-aws.x86_64.vmdk');

    const again = await runCli(['imageupload-aws', '--arch', 'x86_64', '--region', 'us-east-1', '--bucket', BUCKET], w.dir);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`us-east-1: build 10.1 already has ${result.entry.hvm} (${result.entry.snapshot}); use --force to replace it\n`);

    const rep = await runCli(['aws-replicate', '--arch', 'x86_64', '--regions', 'eu-west-1,us-west-2'], w.dir);
    expect(rep.code).toBe(0);
    expect(rep.stdout.trim().split('\n').map((l) => l.split(':')[0]).sort()).toEqual(['eu-west-1', 'us-west-2']);
    expect((await amis(w.metaFile))?.map((a) => a.name).sort()).toEqual(['eu-west-1', 'us-east-1', 'us-west-2']);
    for (const out of [up, again, rep]) expect(out.stdout + out.stderr).not.toContain(SECRET);
  });

  it('buildextend-aws --upload and buildextend-ec2 are the same command', async () => {
    for (const argv of [['buildextend-aws', '--upload'], ['buildextend-ec2']]) {
      const w = await workdir(`11.${argv.length}`);
      const r = await runCli([...argv, '--arch', 'x86_64', '--region', 'us-east-1', '--bucket', BUCKET], w.dir);
      expect(r.stderr).not.toMatch(/error/);
      expect(r.code).toBe(0);
      const got = await amis(w.metaFile);
      expect(r.stdout).toBe(`us-east-1: ${got?.[0]?.hvm} (${got?.[0]?.snapshot})\n`);
    }
  });

  it('reads credentials and the region from --aws-config-file', async () => {
    const w = await workdir('13.1');
    const cfg = join(w.dir, 'aws-config');
    await writeFile(cfg, `[profile publish]\nregion = eu-central-1\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = ${SECRET}\n`);
    for (const k of ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) vi.stubEnv(k, undefined);
    await front.createBucket('cli-ami-import-eu', 'eu-central-1');
    const n = front.requests.length;
    const r = await runCli(['imageupload-aws', '--arch', 'x86_64', '--bucket', 'cli-ami-import-eu', '--aws-config-file', cfg, '--profile', 'publish'], w.dir);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^eu-central-1: ami-/);
    const seen = front.requests.slice(n);
    expect(seen.length).toBeGreaterThan(5);
    expect(seen.every((q) => q.accessKeyId === 'AKIDFROMFILE' && q.region === 'eu-central-1')).toBe(true);
    expect((await amis(w.metaFile))?.map((a) => a.name)).toEqual(['eu-central-1']);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });

  it('rejects bad flags with a usage error and leaves meta.json alone', async () => {
    const w = await workdir('12.1');
    const before = await readFile(w.metaFile, 'utf8');
    const n = front.requests.length;
    for (const argv of [
      ['imageupload-aws', '--region', 'us-east-1'],
      ['imageupload-aws', '--region', 'us-east-1', '--bucket', BUCKET, '--tags', 'novalue'],
      ['imageupload-aws', '--region', 'us-east-1', '--bucket', 'Not_A_Bucket'],
      ['aws-replicate'],
    ]) {
      const r = await runCli(argv, w.dir);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^error: /);
    }
    const none = await runCli(['aws-replicate', '--arch', 'x86_64', '--regions', 'eu-west-1'], w.dir);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/has no AMI to copy \(meta.json amis\)/);
    expect(await readFile(w.metaFile, 'utf8')).toBe(before);
    expect(front.requests.length).toBe(n);
  });
});
