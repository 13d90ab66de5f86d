import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serializeBuildsJson, serializeMetaJson, type MetaJson } from '@cosa/schema';
import { startS3Server, type S3Server } from '@cosa/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from './_run.js';

let s3: S3Server;
const dirs: string[] = [];
beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['cosa-builds'] });
});
afterAll(async () => {
  await s3?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
afterEach(() => vi.unstubAllEnvs());

async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cosa-cli-store-'));
  dirs.push(d);
  return d;
}

/** A workdir with one build (x86_64) of two small artifacts. */
async function workdirWithBuild(id = '7.20261126.0'): Promise<{ workdir: string; id: string; meta: MetaJson }> {
  const workdir = await dir();
  const bdir = join(workdir, 'builds', id, 'x86_64');
  await mkdir(bdir, { recursive: true });
  const images: Record<string, { path: string; sha256: string; size: number }> = {};
  for (const [k, file] of [['ostree', `os-${id}-ostree.x86_64.tar`], ['qemu', `os-${id}-qemu.x86_64.qcow2`]] as const) {
    const data = randomBytes(30_000);
    await writeFile(join(bdir, file), data);
    images[k] = { path: file, sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
  }
  const meta = { buildid: id, name: 'os', 'ostree-commit': 'a'.repeat(64), 'ostree-timestamp': '2026-11-26T00:00:00Z', 'ostree-version': id, images } as MetaJson;
  await writeFile(join(bdir, 'meta.json'), serializeMetaJson(meta));
  await writeFile(join(workdir, 'builds', 'builds.json'), serializeBuildsJson({ 'schema-version': '1.0.0', builds: [{ id, arches: ['x86_64'] }] }));
  await symlink(id, join(workdir, 'builds', 'latest'));
  return { workdir, id, meta };
}

function s3Env(): void {
  for (const [k, v] of Object.entries(s3.env)) vi.stubEnv(k, v);
}

describe('cosa buildupload s3 and cosa buildfetch', () => {
  it('upload a build and fetch it back into an empty workdir', async () => {
    s3Env();
    const { workdir, id, meta } = await workdirWithBuild();
    const up = await runCli(['buildupload', 's3', '--endpoint-url', s3.endpoint, 'cosa-builds/prod'], workdir);
    expect(up.stderr).not.toContain('error');
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(new RegExp(`^${id.replace(/\./g, '\\.')} \\(x86_64\\): sent`));

    const dst = await dir();
    const got = await runCli(['buildfetch', '--url', 's3://cosa-builds/prod', '--arch', 'all', '--artifact', 'all'], dst);
    expect(got.code).toBe(0);
    expect(got.stdout).toContain('builds/latest updated');
    expect(await readFile(join(dst, 'builds', id, 'x86_64', 'meta.json'), 'utf8')).toBe(await readFile(join(workdir, 'builds', id, 'x86_64', 'meta.json'), 'utf8'));
    for (const img of Object.values(meta.images!)) {
      const { path, sha256 } = img as { path: string; sha256: string };
      expect(createHash('sha256').update(await readFile(join(dst, 'builds', id, 'x86_64', path))).digest('hex')).toBe(sha256);
    }
  });

  it('reports a second upload of the same build as skipped, and JSON with --json', async () => {
    s3Env();
    const { workdir } = await workdirWithBuild('8.0');
    expect((await runCli(['buildupload', 's3', 'cosa-builds/again'], workdir)).code).toBe(0);
    const again = await runCli(['buildupload', '--json', 's3', 'cosa-builds/again'], workdir);
    expect(again.code).toBe(0);
    const lines = again.stdout.trim().split('\n');
    const doc = JSON.parse(lines.at(-1)!) as { event: string; bytesSent: number };
    expect(doc.event).toBe('result');
    expect(lines.some((l) => l.startsWith('{"event":"transfer"') || l.startsWith('{"event":"phase"'))).toBe(true);
    expect(doc.bytesSent).toBe(0);
  });

  it('prints what a dry run would upload', async () => {
    s3Env();
    const { workdir } = await workdirWithBuild('9.0');
    const r = await runCli(['buildupload', '--dry-run', 's3', 'cosa-builds/dry'], workdir);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('Would upload s3://cosa-builds/dry/9.0/x86_64/');
  });

  it('fails with a clear message when the local builds.json has changes', async () => {
    s3Env();
    const { workdir } = await workdirWithBuild('10.0');
    expect((await runCli(['buildupload', 's3', 'cosa-builds/changes'], workdir)).code).toBe(0);
    const dst = await dir();
    expect((await runCli(['buildfetch', '--url', 's3://cosa-builds/changes', '--arch', 'x86_64'], dst)).code).toBe(0);
    await writeFile(join(dst, 'builds', 'builds.json'), serializeBuildsJson({ 'schema-version': '1.0.0', builds: [{ id: 'mine', arches: ['x86_64'] }] }));
    const r = await runCli(['buildfetch', '--url', 's3://cosa-builds/changes', '--arch', 'x86_64'], dst);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('has changed since it was fetched');
    expect(r.stderr).toContain('--force');
    expect((await runCli(['buildfetch', '--url', 's3://cosa-builds/changes', '--arch', 'x86_64', '--force'], dst)).code).toBe(0);
  });

  it('reads credentials from --aws-config-file', async () => {
    s3Env();
    vi.stubEnv('AWS_ACCESS_KEY_ID', '');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', '');
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    const cfgDir = await dir();
    const cfg = join(cfgDir, 'config');
    await writeFile(cfg, '[default]\nregion = us-east-1\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n');
    vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', join(cfgDir, 'no-credentials'));
    vi.stubEnv('AWS_CONFIG_FILE', join(cfgDir, 'no-config'));
    vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
    const { workdir } = await workdirWithBuild('11.0');
    const without = await runCli(['buildupload', 's3', 'cosa-builds/cfg'], workdir);
    expect(without.code).toBe(1);
    const r = await runCli(['buildupload', 's3', '--aws-config-file', cfg, 'cosa-builds/cfg'], workdir);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
  });
});
