/**
 * Change detection you can trust, on an RPM config composed by the dnf composer from a local repo
 * (RPMs built here with rpmbuild + createrepo_c): one workdir, changes applied in sequence, so
 * each row of the table is one incremental build, not a cold compose.
 * - inputs: every kind of input makes the expected kind of build, says what changed, and the change
 *   is in the new commit;
 * - non-inputs: "No changes", builds/ and builds/latest untouched.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '@cosa/ostree/internal';
import { snapshotTree, tempWorkdir, type TempWorkdir } from '@cosa/test-utils';
import { build, planBuild, type BuildKind, type BuildResult } from '../src/index.js';
import { buildRpmRepo, writeRepoFile } from '../../ostree/test/_rpm.js';

const cliBin = fileURLToPath(new URL('../../cli/bin/cosa.js', import.meta.url));

let wd: TempWorkdir;
let rpmWork: string;
let config: string;
let lastCommit = '';

const MANIFEST = `# a comment
ref: test/x86_64/tiny
repos: [local]
packages:
  - cosa-test-app
postprocess-script: post.sh
add-files:
  - [motd, /usr/share/cosa-test/motd]
postprocess:
  - echo one > "$1/usr/share/cosa-test/inline"
`;

async function cat(rev: string, p: string): Promise<string> {
  return (await run(['ostree', `--repo=${path.join(wd.dir, 'tmp/repo')}`, 'cat', rev, p])).stdout;
}
async function ls(rev: string, p: string): Promise<string> {
  return (await run(['ostree', `--repo=${path.join(wd.dir, 'tmp/repo')}`, 'ls', rev, p])).stdout;
}
const cfg = (p: string) => path.join(config, p);
const ov = (p: string) => path.join(wd.dir, 'overrides', p);

async function edit(file: string, fn: (t: string) => string): Promise<void> {
  await writeFile(file, fn(await readFile(file, 'utf8')));
}

async function buildOnce(): Promise<BuildResult> {
  return build({ workdir: wd.dir, targets: ['ostree'], skipPrune: true });
}

beforeAll(async () => {
  wd = await tempWorkdir({ prefix: 'cosa-changes-' });
  config = wd.configDir;
  rpmWork = path.join(wd.dir, 'rpmwork');
  await mkdir(rpmWork);
  await writeRepoFile(config, 'local', await buildRpmRepo(rpmWork));
  await writeFile(cfg('manifest.yaml'), MANIFEST);
  await writeFile(cfg('post.sh'), 'echo scripted-1 > "$1/usr/share/cosa-test/scripted"\n');
  await writeFile(cfg('motd'), 'motd-1\n');
  await writeFile(cfg('manifest-lock.x86_64.json'), JSON.stringify({ packages: { 'cosa-test-app': { evra: '1.0-1.noarch' } } }));
  await mkdir(cfg('overlay.d/10test/usr/share/cosa-test'), { recursive: true });
  await writeFile(cfg('overlay.d/10test/usr/share/cosa-test/layer'), 'layer-1\n');
  const first = await buildOnce();
  expect(first).toMatchObject({ status: 'built', kind: 'compose', reason: 'first build' });
  lastCommit = first.meta['ostree-commit'];
  expect(await cat(lastCommit, '/usr/share/cosa-test/layer')).toBe('layer-1');
  // The RPM config's second run: nothing changed, nothing built.
  expect(await buildOnce()).toMatchObject({ status: 'unchanged', kind: 'unchanged', reason: `No changes since build ${first.buildId}` });
}, 15 * 60_000);

afterAll(async () => {
  await wd?.cleanup();
});

interface Row {
  name: string;
  change: () => Promise<void>;
  kind: BuildKind;
  /** The "what changed" line. */
  line: RegExp;
  /** The change is in the new commit. */
  check: (commit: string) => Promise<void>;
}

const rows: Row[] = [
  {
    name: 'a manifest key (a package added)',
    change: () => edit(cfg('manifest.yaml'), (t) => t.replace('  - cosa-test-app\n', '  - cosa-test-app\n  - cosa-test-extra\n')),
    kind: 'compose',
    line: /manifest: packages \+cosa-test-extra; packages: \+cosa-test-extra 1\.0-1$/,
    check: async (c) => expect(await cat(c, '/usr/share/cosa-test/extra.txt')).toBe('extra'),
  },
  {
    name: 'an inline postprocess script',
    change: () => edit(cfg('manifest.yaml'), (t) => t.replace('echo one', 'echo two')),
    kind: 'compose',
    line: /^manifest: postprocess\[0\] changed$/,
    check: async (c) => expect(await cat(c, '/usr/share/cosa-test/inline')).toBe('two'),
  },
  {
    name: 'a referenced script file',
    change: () => writeFile(cfg('post.sh'), 'echo scripted-2 > "$1/usr/share/cosa-test/scripted"\n'),
    kind: 'compose',
    line: /^config: post\.sh changed$/,
    check: async (c) => expect(await cat(c, '/usr/share/cosa-test/scripted')).toBe('scripted-2'),
  },
  {
    name: 'an add-files source',
    change: () => writeFile(cfg('motd'), 'motd-2\n'),
    kind: 'compose',
    line: /^config: motd changed$/,
    check: async (c) => expect(await cat(c, '/usr/share/cosa-test/motd')).toBe('motd-2'),
  },
  {
    name: 'a lockfile',
    change: () => writeFile(cfg('manifest-lock.x86_64.json'), JSON.stringify({ packages: { 'cosa-test-app': { evra: '1.0-1.noarch' }, 'cosa-test-base': { evra: '1.0-1.noarch' } } })),
    kind: 'compose',
    line: /^config: manifest-lock\.x86_64\.json changed$/,
    // The dnf composer does not apply lockfiles: the tree stays, the commit is new.
    check: async (c) => expect(c).not.toBe(lastCommit),
  },
  {
    name: 'an overlay.d file (under etc/: lands in /usr/etc)',
    change: async () => {
      await mkdir(cfg('overlay.d/10test/etc'), { recursive: true });
      await writeFile(cfg('overlay.d/10test/etc/cosa-overlay.conf'), 'overlay=1\n');
    },
    kind: 'compose',
    line: /^overlay\.d\/10test: etc added, etc\/cosa-overlay\.conf added$/,
    check: async (c) => expect(await cat(c, '/usr/etc/cosa-overlay.conf')).toBe('overlay=1'),
  },
  {
    name: 'overrides/rootfs: a file added',
    change: async () => {
      await mkdir(ov('rootfs/usr/share/cosa-test'), { recursive: true });
      await writeFile(ov('rootfs/usr/share/cosa-test/ov'), 'ov-1\n');
    },
    kind: 'compose',
    line: /^overrides\/rootfs: usr added, usr\/share added, usr\/share\/cosa-test added, usr\/share\/cosa-test\/ov added$/,
    check: async (c) => expect(await cat(c, '/usr/share/cosa-test/ov')).toBe('ov-1'),
  },
  {
    name: 'overrides/rootfs: a file edited',
    change: () => writeFile(ov('rootfs/usr/share/cosa-test/ov'), 'ov-2\n'),
    kind: 'compose',
    line: /^overrides\/rootfs: usr\/share\/cosa-test\/ov changed$/,
    check: async (c) => expect(await cat(c, '/usr/share/cosa-test/ov')).toBe('ov-2'),
  },
  {
    name: 'overrides/rootfs: a mode changed',
    change: () => chmod(ov('rootfs/usr/share/cosa-test/ov'), 0o755),
    kind: 'compose',
    line: /^overrides\/rootfs: usr\/share\/cosa-test\/ov mode 0644 → 0755$/,
    check: async (c) => expect(await ls(c, '/usr/share/cosa-test/ov')).toMatch(/^-00755 /),
  },
  {
    name: 'overrides/rootfs: a symlink added',
    change: () => symlink('ov', ov('rootfs/usr/share/cosa-test/ln')),
    kind: 'compose',
    line: /^overrides\/rootfs: usr\/share\/cosa-test\/ln added$/,
    check: async (c) => expect(await ls(c, '/usr/share/cosa-test/ln')).toMatch(/^l.* -> ov$/m),
  },
  {
    name: 'overrides/rootfs: a file removed',
    change: () => rm(ov('rootfs/usr/share/cosa-test/ln')),
    kind: 'compose',
    line: /^overrides\/rootfs: usr\/share\/cosa-test\/ln removed$/,
    check: async (c) => expect(ls(c, '/usr/share/cosa-test/ln')).rejects.toThrow(),
  },
  {
    name: 'overrides/rpm: an older package dropped in wins over the repo',
    change: async () => {
      const w = path.join(rpmWork, 'override');
      await mkdir(w, { recursive: true });
      const repo = await buildRpmRepo(w, { 'cosa-test-filesystem': '0.9' });
      const f = (await readdir(repo)).find((x) => x.startsWith('cosa-test-filesystem-0.9'))!;
      await copyFile(path.join(repo, f), ov(`rpm/${f}`));
    },
    kind: 'compose',
    line: /^overrides\/rpm: cosa-test-filesystem-0\.9-1\.noarch\.rpm added; packages: cosa-test-filesystem 1\.0-1 → 0\.9-1$/,
    check: async (c) => expect(await cat(c, '/usr/etc/cosa-test-release')).toBe('COSA_TEST=0.9'),
  },
  {
    name: 'a package version bumped in the local repo',
    change: async () => {
      // Only the new package goes into the repo (rebuilding the others would change their checksums).
      const w = path.join(rpmWork, 'bump');
      await mkdir(w, { recursive: true });
      const built = await buildRpmRepo(w, { 'cosa-test-app': '1.1' });
      const f = (await readdir(built)).find((x) => x.startsWith('cosa-test-app-1.1'))!;
      await copyFile(path.join(built, f), path.join(rpmWork, 'rpm-repo', f));
      await run(['createrepo_c', '-q', '--update', path.join(rpmWork, 'rpm-repo')]);
    },
    kind: 'compose',
    line: /^packages: cosa-test-app 1\.0-1 → 1\.1-1$/,
    check: async (c) => expect(await cat(c, '/usr/lib/cosa-test/app.txt')).toBe('app 1.1'),
  },
  {
    name: 'image.yaml (image-only)',
    change: () => writeFile(cfg('image.yaml'), 'size: 3\n'),
    kind: 'image-only',
    line: /^image\.yaml: size changed$/,
    check: async (c) => expect(c).toBe(lastCommit),
  },
];

describe('every input makes a build that says what changed and carries the change', () => {
  it.each(rows)('$name', async (row) => {
    await row.change();
    const plan = await planBuild({ workdir: wd.dir, targets: ['ostree'] });
    expect(plan.kind).toBe(row.kind);
    const r = await buildOnce();
    expect(r.status).toBe('built');
    expect(r.kind).toBe(row.kind);
    expect(r.changes.join('; ')).toMatch(row.line);
    expect(r.changes).toEqual(plan.changes);
    expect(await readlink(path.join(wd.dir, 'builds/latest'))).toBe(r.buildId);
    expect(existsSync(path.join(r.buildDir, 'inputs.json'))).toBe(true);
    await row.check(r.meta['ostree-commit']);
    lastCommit = r.meta['ostree-commit'];
  });
});

const nonInputs: { name: string; change: () => Promise<void> }[] = [
  { name: 'nothing at all (the second run of an RPM config)', change: async () => {} },
  { name: 'a README in the config dir', change: () => writeFile(cfg('README.md'), '# notes\n') },
  { name: 'tests/ and ci/ in the config dir', change: async () => {
    await mkdir(cfg('tests/kola'), { recursive: true });
    await writeFile(cfg('tests/kola/basic'), '#!/bin/sh\n');
    await mkdir(cfg('ci'), { recursive: true });
    await writeFile(cfg('ci/build.sh'), 'true\n');
  } },
  { name: 'a comment and the key order in the manifest', change: () => edit(cfg('manifest.yaml'), (t) => `# another comment\n${t.split('\n').filter((l) => !l.startsWith('ref:')).join('\n')}ref: test/x86_64/tiny\n`) },
  { name: 'a file in the workdir tmp/ and cache/', change: async () => {
    await writeFile(path.join(wd.dir, 'tmp/junk'), 'x');
    await writeFile(path.join(wd.dir, 'cache/junk'), 'x');
  } },
  { name: 'a touched input file (mtime only)', change: async () => {
    const t = new Date();
    await utimes(cfg('post.sh'), t, t);
    await utimes(ov('rootfs/usr/share/cosa-test/ov'), t, t);
  } },
  { name: 'a file next to overlay.d layers (not a layer)', change: () => writeFile(cfg('overlay.d/README.md'), 'layers\n') },
];

describe('what is not an input never triggers a build', () => {
  it.each(nonInputs)('$name', async (row) => {
    const before = await snapshotTree(path.join(wd.dir, 'builds'));
    const latest = await readlink(path.join(wd.dir, 'builds/latest'));
    await row.change();
    const r = await buildOnce();
    expect(r.status, r.changes.join('; ')).toBe('unchanged');
    expect(r.reason).toBe(`No changes since build ${latest}`);
    expect(await readlink(path.join(wd.dir, 'builds/latest'))).toBe(latest);
    expect(await snapshotTree(path.join(wd.dir, 'builds'))).toEqual(before);
  });

  it('says "No changes" from the CLI too, and --dry-run writes nothing', () => {
    if (!existsSync(path.join(path.dirname(cliBin), '../dist/index.js'))) throw new Error('the CLI is not built: run `pnpm -r run build`');
    const out = execFileSync(process.execPath, [cliBin, 'build', 'ostree'], { cwd: wd.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toMatch(/is up to date/);
    const dry = execFileSync(process.execPath, [cliBin, 'build', 'ostree', '--dry-run'], { cwd: wd.dir, encoding: 'utf8' });
    expect(dry).toMatch(/^No changes since build /);
  });

  it('--dry-run shows the plan and what changed, and writes nothing', async () => {
    await writeFile(cfg('motd'), 'motd-dry\n');
    const before = await snapshotTree(path.join(wd.dir, 'builds'));
    const hashCache = await readFile(path.join(wd.dir, 'cache/inputs-file-hashes.json'), 'utf8');
    const dry = execFileSync(process.execPath, [cliBin, 'build', 'ostree', '--dry-run'], { cwd: wd.dir, encoding: 'utf8' });
    expect(dry).toMatch(/^Would make a compose build \S+ \(x86_64\): inputs changed\n {2}changed: config: motd changed\n$/);
    const json = JSON.parse(execFileSync(process.execPath, [cliBin, 'build', 'ostree', '--dry-run', '--json'], { cwd: wd.dir, encoding: 'utf8' }).trim().split('\n').pop()!) as Record<string, unknown>;
    expect(json).toMatchObject({ event: 'result', dryRun: true, kind: 'compose', changes: ['config: motd changed'] });
    expect(await snapshotTree(path.join(wd.dir, 'builds'))).toEqual(before);
    expect(await readFile(path.join(wd.dir, 'cache/inputs-file-hashes.json'), 'utf8')).toBe(hashCache);
  });
});
