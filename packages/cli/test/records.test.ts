import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuildsDir } from '@cosa/core';
import { snapshotTree, tempDir, tempWorkdir, TINY_CONFIG, writeFakeBuild, type TempWorkdir } from '@cosa/test-utils';
import { originalSchemaErrors } from '../../core/test/_ajv.js';
import { formatAge } from '../src/commands/list.js';
import { runCli } from './_run.js';

async function addBuilds(wd: TempWorkdir, ids: string[]): Promise<void> {
  const b = new BuildsDir(join(wd.dir, 'builds'));
  for (const [i, id] of ids.entries()) {
    const meta = await writeFakeBuild(wd.dir, id, { timestamp: `2026-01-01T00:${String(i).padStart(2, '0')}:00Z` });
    expect(originalSchemaErrors(meta)).toEqual([]);
    await b.insertBuild(id, 'x86_64');
  }
}

describe('cosa record commands', () => {
  it.each(['init', 'list', 'meta', 'tag', 'tag update', 'tag delete', 'tag list', 'prune', 'clean'])(
    'prints help for `cosa %s --help` and exits 0',
    async (name) => {
      const cmd = name.split(' ');
      const r = await runCli([...cmd, '--help'], process.cwd());
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: cosa ${cmd.join(' ')}`);
    },
  );

  it('walks a new user through init, list, meta, tag and prune', async () => {
    await using t = await tempDir();
    const config = join(t.dir, 'config');
    await mkdir(config);
    for (const [n, text] of Object.entries(TINY_CONFIG)) await writeFile(join(config, n), text);
    const dir = join(t.dir, 'wd');
    await mkdir(dir);
    expect((await runCli(['init', config], dir)).code).toBe(0);
    expect(await readlink(join(dir, 'src', 'config'))).toBe(config);
    const empty = await runCli(['list'], dir);
    expect(empty).toMatchObject({ code: 0, stdout: 'No builds!\n' });

    const wd = { dir } as TempWorkdir;
    await addBuilds(wd, ['1.0', '1.1', '1.2', '1.3', '1.4']);
    const list = await runCli(['list'], dir);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n').slice(0, 3)).toEqual(['1.4', expect.stringMatching(/^ {3}Timestamp: 2026-01-01T00:04:00Z \(.* ago\)$/), '   Artifacts: ostree']);

    const set = await runCli(['meta', '--set', 'summary=Tiny OS', '--set', 'coreos-assembler.image-genver=1'], dir);
    expect(set.code).toBe(0);
    const metaText = await readFile(join(dir, 'builds', '1.4', 'x86_64', 'meta.json'), 'utf8');
    expect(originalSchemaErrors(metaText)).toEqual([]);
    expect(await runCli(['meta', '--get', 'summary'], dir)).toMatchObject({ code: 0, stdout: 'summary: Tiny OS\n' });
    expect(await runCli(['meta', '--get', 'coreos-assembler.image-genver'], dir)).toMatchObject({ code: 0, stdout: 'coreos-assembler.image-genver: 1\n' });
    expect(JSON.parse((await runCli(['meta', '--build', '1.0', '--get', 'images.ostree.size', '--json'], dir)).stdout)).toEqual({ event: 'result', key: 'images.ostree.size', value: 1024 });
    expect((await runCli(['meta', '--build', '1.0', '--get-value', 'images.ostree.size'], dir)).stdout).toBe('1024\n');
    expect((await runCli(['meta', '--build', '1.0', '--get-value', 'buildid'], dir)).stdout).toBe('1.0\n');
    expect((await runCli(['meta', '--image-path', 'ostree'], dir)).stdout).toBe(`${join(dir, 'builds', '1.4', 'x86_64', 'tiny-1.4-ostree.x86_64.tar')}\n`);
    expect(JSON.parse((await runCli(['meta', '--dump'], dir)).stdout)).toEqual(JSON.parse(metaText));

    expect((await runCli(['tag', 'update', '--tag', 'stable', '--build', '1.0', '--description', 'the first'], dir)).code).toBe(0);
    const tags = await runCli(['tag', 'list'], dir);
    expect(tags.stdout).toMatch(/^name: stable\ncreated: \d{4}-.*Z\ntarget: 1\.0\ndescription: the first\n/);
    expect((await runCli(['list'], dir)).stdout).toContain('   Tags: stable\n');

    const before = await snapshotTree(dir);
    const dry = await runCli(['prune', '--dry-run'], dir);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe('Skipping tagged build 1.0 (stable)\nWould prune build 1.1\n');
    expect(await snapshotTree(dir)).toEqual(before);
    const pruned = await runCli(['prune'], dir);
    expect(pruned).toMatchObject({ code: 0, stdout: 'Skipping tagged build 1.0 (stable)\nPruned build 1.1\n' });
    const json = JSON.parse((await runCli(['list', '--json'], dir)).stdout) as { builds: { id: string; tags: string[] }[] };
    expect(json.builds.map((b) => b.id)).toEqual(['1.4', '1.3', '1.2', '1.0']);
    expect(json.builds[3]?.tags).toEqual(['stable']);

    expect((await runCli(['tag', 'delete', '--all'], dir)).code).toBe(0);
    expect((await runCli(['tag', 'list', '--json'], dir)).stdout).toBe('{"event":"result","tags":[]}\n');
    expect((await runCli(['prune', '--build', '1.0', '--json'], dir)).code).toBe(0);
    expect(JSON.parse((await runCli(['clean', '--json'], dir)).stdout).removed).toContain('builds/builds.json');
  });

  it('honours --workdir and prints <missing builds locally> at the first build without a meta.json', async () => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0']);
    await new BuildsDir(join(wd.dir, 'builds')).insertBuild('2.0', 'x86_64');
    const r = await runCli(['--workdir', wd.dir, 'list'], process.cwd());
    expect(r).toMatchObject({ code: 0, stdout: '<missing builds locally>\n' });
  });

  it.each([
    [['meta'], 'exactly one of'],
    [['meta', '--get', 'name', '--dump'], 'exactly one of'],
    [['tag', 'delete'], 'exactly one of'],
    [['tag', 'update'], "required option '--tag"],
    [['prune', '--keep-last-n', 'three'], 'non-negative integer'],
    [['prune', '--keep-last-n', '2', '--build', '1.0'], 'cannot be used together'],
    [['init'], "missing required argument 'config'"],
    [['meta', '--set', 'novalue'], 'KEY=VALUE'],
  ].map(([argv, message]) => ({ line: (argv as string[]).join(' '), argv: argv as string[], message: message as string })))('exits 2 on the usage error `cosa $line`', async ({ argv, message }) => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0']);
    const before = await snapshotTree(wd.dir);
    const r = await runCli(argv, wd.dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('formats ages like the original', () => {
    expect(formatAge(5_000)).toBe('0:00:05');
    expect(formatAge(((2 * 24 + 3) * 3600 + 4 * 60 + 5) * 1000)).toBe('2 days, 3:04:05');
    expect(formatAge(86_400_000)).toBe('1 day, 0:00:00');
  });
});

describe('bad input leaves the workdir byte-identical', () => {
  type Case = { name: string; argv: string[]; setup: (wd: TempWorkdir) => Promise<void>; expect: string[]; code?: number };
  const metaFile = (wd: TempWorkdir, id = '1.1') => join(wd.dir, 'builds', id, 'x86_64', 'meta.json');
  const editMeta = async (wd: TempWorkdir, fn: (m: Record<string, unknown>) => void) => {
    const m = JSON.parse(await readFile(metaFile(wd), 'utf8')) as Record<string, unknown>;
    fn(m);
    await writeFile(metaFile(wd), JSON.stringify(m));
  };
  const buildsJson = (wd: TempWorkdir) => join(wd.dir, 'builds', 'builds.json');
  const cases: Case[] = [
    { name: 'malformed builds.json', argv: ['tag', 'update', '--tag', 'x'], setup: (wd) => writeFile(buildsJson(wd), '{"schema-version": "1.0.0", "builds": ['), expect: ['builds.json', 'invalid JSON'] },
    { name: 'builds.json of major version 0', argv: ['list'], setup: (wd) => writeFile(buildsJson(wd), '{"schema-version": "0.0.1", "builds": ["1.0"]}'), expect: ['builds.json', 'schema-version', 'unsupported build metadata version 0.0.1'] },
    { name: 'builds.json with a wrong type', argv: ['prune'], setup: (wd) => writeFile(buildsJson(wd), '{"schema-version": "1.0.0", "builds": [{"id": "1.0", "arches": "x86_64"}]}'), expect: ['builds.json', 'builds[0].arches'] },
    { name: 'builds.json with a build id containing /', argv: ['list'], setup: (wd) => writeFile(buildsJson(wd), '{"schema-version": "1.0.0", "builds": [{"id": "../etc", "arches": ["x86_64"]}]}'), expect: ['builds.json', 'builds[0].id', 'single path segment'] },
    { name: 'malformed meta.json', argv: ['meta', '--dump'], setup: (wd) => writeFile(metaFile(wd), '{"buildid": '), expect: ['meta.json', 'invalid JSON'] },
    { name: 'unknown top-level meta.json key', argv: ['list'], setup: (wd) => editMeta(wd, (m) => (m['surprise-key'] = 1)), expect: ['meta.json', 'surprise-key'] },
    { name: 'meta.json with a wrong type', argv: ['prune', '--keep-last-n', '1'], setup: (wd) => editMeta(wd, (m) => (m['coreos-assembler.image-genver'] = 'x')), expect: ['meta.json', 'coreos-assembler.image-genver'] },
    { name: 'absolute artifact path', argv: ['meta', '--image-path', 'ostree'], setup: (wd) => editMeta(wd, (m) => ((m.images as { ostree: { path: string } }).ostree.path = '/etc/passwd')), expect: ['meta.json', 'images.ostree.path'] },
    { name: 'artifact path with ..', argv: ['meta', '--set', 'summary=x'], setup: (wd) => editMeta(wd, (m) => ((m.images as { ostree: { path: string } }).ostree.path = '../x.tar')), expect: ['meta.json', 'images.ostree.path'] },
    { name: 'build id with ..', argv: ['meta', '--build', '../1.0', '--set', 'summary=x'], setup: async () => {}, expect: ['invalid build id', '../1.0'] },
    { name: 'absolute build id', argv: ['prune', '--build', '/tmp'], setup: async () => {}, expect: ['invalid build id', '/tmp'] },
    { name: 'invalid --set value', argv: ['meta', '--set', 'ostree-timestamp=yesterday'], setup: async () => {}, expect: ['meta.json', 'ostree-timestamp'] },
    { name: 'unknown buildextend platform', argv: ['buildextend', '--platforms', 'aws,nosuch'], setup: async () => {}, expect: ['unknown platform "nosuch"', 'known platforms:', 'metal4k'] },
    { name: 'buildextend of a build without a qemu image', argv: ['buildextend-aws'], setup: async () => {}, expect: ['build 1.1', 'no qemu image'] },
    {
      name: 'buildextend of a build whose qemu image is compressed',
      argv: ['buildextend-aws'],
      setup: (wd) => editMeta(wd, (m) => ((m.images as Record<string, unknown>).qemu = { path: 'x-1.1-qemu.x86_64.qcow2.xz', sha256: 'a'.repeat(64), size: 1 })),
      expect: ['qemu image of build 1.1 is compressed', 'decompress'],
    },
    {
      name: 'buildextend-metal4k of a build whose ostree archive is compressed',
      argv: ['buildextend-metal4k'],
      setup: (wd) => editMeta(wd, (m) => ((m.images as { ostree: { path: string } }).ostree.path += '.xz')),
      expect: ['ostree archive of build 1.1 is compressed', 'decompress'],
    },
    { name: 'tagged build given to prune --build', argv: ['prune', '--build', '1.0'], setup: async (wd) => void (await runCli(['tag', 'update', '--tag', 'gold', '--build', '1.0'], wd.dir)), expect: ['1.0', 'tagged', 'gold'] },
  ];

  it.each(cases)('$name: exits non-zero naming the file, path and reason', async (c) => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0', '1.1']);
    await c.setup(wd);
    const before = await snapshotTree(wd.dir);
    const r = await runCli(c.argv, wd.dir);
    expect(r.code).toBe(c.code ?? 1);
    for (const s of c.expect) expect(r.stderr).toContain(s);
    expect(await snapshotTree(wd.dir)).toEqual(before);
    const j = await runCli([...c.argv, '--json'], wd.dir);
    expect(j.code).toBe(c.code ?? 1);
    expect(JSON.parse(j.stdout.trim().split('\n').pop()!)).toMatchObject({ event: 'error', code: expect.stringMatching(/^COSA_/) });
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('refuses --vm with --direct for buildextend as a usage error', async () => {
    await using wd = await tempWorkdir();
    await addBuilds(wd, ['1.0']);
    const before = await snapshotTree(wd.dir);
    const r = await runCli(['buildextend-metal4k', '--vm', '--direct'], wd.dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--vm and --direct exclude each other');
    expect(await snapshotTree(wd.dir)).toEqual(before);
  });

  it('refuses a directory that is not a workdir, naming it', async () => {
    await using t = await tempDir();
    await writeFile(join(t.dir, 'file'), 'x');
    const before = await snapshotTree(t.dir);
    for (const argv of [['list'], ['meta', '--dump'], ['tag', 'list'], ['prune'], ['clean']]) {
      const r = await runCli(argv, t.dir);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${t.dir} is not a cosa workdir`);
    }
    expect(await snapshotTree(t.dir)).toEqual(before);
  });

  it('refuses init into a non-empty directory or from a config without manifest.yaml', async () => {
    await using t = await tempDir();
    await mkdir(join(t.dir, 'cfg'));
    await writeFile(join(t.dir, 'cfg', 'image.yaml'), 'size: 2\n');
    const before = await snapshotTree(t.dir);
    const r1 = await runCli(['init', join(t.dir, 'cfg')], t.dir);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain('is not empty');
    await mkdir(join(t.dir, 'wd'));
    const before2 = await snapshotTree(t.dir);
    const r2 = await runCli(['init', join(t.dir, 'cfg')], join(t.dir, 'wd'));
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('manifest.yaml');
    expect(await snapshotTree(t.dir)).toEqual(before2);
    expect(before2).toMatchObject(before);
  });
});
