import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '@cosa/schema';
import {
  createRpmOstreeComposer, initRepo, 
  readCommitMeta, type ComposeOptions,
} from '@cosa/ostree';
import { composeJsonStats, findLockfiles, parseComposeJson, parseRpmOstreeVersion, pkglistFromCommitMeta, rpmOstreeComposeArgv } from '../src/rpm-ostree.js';
import { hasTool } from '@cosa/ostree/internal';
import { tempDir } from './_tmp.js';

const fixtures = fileURLToPath(new URL('./fixtures/rpm-ostree/', import.meta.url));
const haveRpmOstree = await hasTool('rpm-ostree');

describe('rpm-ostree argv', () => {
  it('builds the compose command cosa build runs', () => {
    expect(rpmOstreeComposeArgv({
      treefile: '/w/src/config/manifest.yaml', repo: '/w/tmp/repo', cacheDir: '/w/cache', composeJson: '/w/tmp/compose.json',
      changedStamp: '/w/tmp/treecompose.changed', version: '39.1', previousCommit: 'abc', cacheOnly: true,
      lockfiles: ['/w/src/config/manifest-lock.x86_64.json', '/w/src/config/manifest-lock.overrides.yaml'],
    })).toEqual([
      'rpm-ostree', 'compose', 'tree', '--unified-core', '--repo=/w/tmp/repo', '--cachedir=/w/cache', '--cache-only',
      '--write-composejson-to=/w/tmp/compose.json', '--touch-if-changed=/w/tmp/treecompose.changed', '--previous-commit=abc',
      '--add-metadata-string=version=39.1', '--ex-lockfile=/w/src/config/manifest-lock.x86_64.json',
      '--ex-lockfile=/w/src/config/manifest-lock.overrides.yaml', '/w/src/config/manifest.yaml',
    ]);
  });

  it('builds the download-only command of cosa fetch, strict and forced variants', () => {
    const argv = rpmOstreeComposeArgv({ treefile: 't.yaml', repo: 'r', cacheDir: 'c', downloadOnly: true, strict: true, lockfiles: ['l.json'], force: true, extraArgs: ['--unified-core-extra'] });
    expect(argv).toContain('--download-only');
    expect(argv).toContain('--force-nocache');
    expect(argv.indexOf('--ex-lockfile-strict')).toBeGreaterThan(argv.indexOf('--ex-lockfile=l.json'));
    expect(argv.at(-1)).toBe('t.yaml');
    expect(argv.at(-2)).toBe('--unified-core-extra');
    expect(argv.some((a) => a.startsWith('--add-metadata-string'))).toBe(false);
  });

  it('finds the lockfiles of an arch in cosa order', async () => {
    const d = await tempDir();
    for (const n of ['manifest-lock.overrides.x86_64.yaml', 'manifest-lock.x86_64.json', 'manifest-lock.aarch64.json', 'manifest-lock.overrides.yaml']) await writeFile(path.join(d, n), '{}');
    expect((await findLockfiles(d, 'x86_64')).map((p) => path.basename(p))).toEqual([
      'manifest-lock.x86_64.json', 'manifest-lock.overrides.yaml', 'manifest-lock.overrides.x86_64.yaml',
    ]);
  });
});

describe('rpm-ostree output parsing', () => {
  it('reads the compose JSON fields and its ostree-n-* statistics', async () => {
    const file = path.join(fixtures, 'compose.json');
    const j = parseComposeJson(await readFile(file, 'utf8'), file);
    expect(j['ostree-commit']).toMatch(/^[0-9a-f]{64}$/);
    expect(j['ostree-version']).toBe('39.20240225.dev.0');
    expect(j['rpm-ostree-inputhash']).toMatch(/^[0-9a-f]{64}$/);
    expect(composeJsonStats(j)).toEqual({
      'ostree-n-metadata-total': 10313, 'ostree-n-metadata-written': 3746, 'ostree-n-content-total': 30395,
      'ostree-n-content-written': 25915, 'ostree-n-cache-hits': 0, 'ostree-content-bytes-written': 1797710538,
    });
  });

  it('rejects a compose JSON without a commit checksum, naming the field', () => {
    expect(() => parseComposeJson('{"ostree-commit":"nope","ostree-n-cache-hits":"x"}', 'compose.json')).toThrow(
      expect.objectContaining({ code: 'COSA_SCHEMA_INVALID', file: 'compose.json', issues: [{ path: 'ostree-commit', message: expect.any(String) }, { path: 'ostree-n-cache-hits', message: expect.any(String) }] }),
    );
    expect(() => parseComposeJson('not json', 'compose.json')).toThrow(expect.objectContaining({ code: 'COSA_SCHEMA_PARSE' }));
  });

  it('reads the version from rpm-ostree --version and the package list from commit metadata', async () => {
    expect(parseRpmOstreeVersion(await readFile(path.join(fixtures, 'version.txt'), 'utf8'))).toBe('2024.3');
    expect(pkglistFromCommitMeta({ 'rpmostree.rpmdb.pkglist': [['bash', '0', '5.2.26', '1.fc39', 'x86_64'], ['shim-x64', '1', '15.8', '3', 'x86_64']] })).toEqual([
      { name: 'bash', version: '5.2.26', release: '1.fc39', arch: 'x86_64' },
      { name: 'shim-x64', epoch: '1', version: '15.8', release: '3', arch: 'x86_64' },
    ]);
  });
});

describe('rpm-ostree composer against a stand-in binary', () => {
  const savedPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = savedPath;
    delete process.env.FAKE_RPMOSTREE_UNCHANGED;
  });

  async function setup() {
    const work = await tempDir('cosa-rpmostree-');
    process.env.PATH = `${path.join(fixtures, 'bin')}:${savedPath}`;
    process.env.FAKE_RPMOSTREE_LOG = path.join(work, 'argv.log');
    process.env.FAKE_RPMOSTREE_REF = 'fcos/x86_64/test';
    const configDir = path.join(work, 'src', 'config');
    const manifest = path.join(configDir, 'manifest.yaml');
    await mkdir(configDir, { recursive: true });
    await writeFile(manifest, 'ref: fcos/x86_64/test\n');
    await writeFile(path.join(configDir, 'manifest-lock.x86_64.json'), '{"packages":{}}');
    const o: ComposeOptions = {
      manifest: { ref: 'fcos/x86_64/test', packages: [] } as Manifest, configDir, files: [manifest], cacheDir: path.join(work, 'cache'),
      tmpDir: path.join(work, 'tmp'), repo: path.join(work, 'tmp', 'repo'), arch: 'x86_64', version: '39.1', ref: 'fcos/x86_64/test', strict: true,
    };
    await initRepo({ path: o.repo, mode: 'bare-user' });
    return { work, o };
  }

  it('composes through rpm-ostree and reports the commit, the version and the compose statistics', async () => {
    const { work, o } = await setup();
    const composer = createRpmOstreeComposer();
    expect(await composer.version()).toBe('2024.3');
    const r = await composer.compose(o);
    expect(r).toMatchObject({ ref: 'fcos/x86_64/test', version: '39.1', changed: true, packages: [] });
    expect(r.stats['ostree-n-content-written']).toBe(1);
    const meta = await readCommitMeta({ repo: o.repo, rev: r.commit });
    expect(meta).toMatchObject({ version: '39.1', 'cosa.inputhash': r.inputHash });
    const argv = (await readFile(path.join(work, 'argv.log'), 'utf8')).trim();
    expect(argv).toContain(`--ex-lockfile=${path.join(o.configDir, 'manifest-lock.x86_64.json')} --ex-lockfile-strict`);
    expect(argv.endsWith(o.files[0]!)).toBe(true);

    process.env.FAKE_RPMOSTREE_UNCHANGED = '1';
    const again = await composer.compose({ ...o, parentCommit: r.commit });
    expect(again).toMatchObject({ commit: r.commit, changed: false, inputHash: r.inputHash });
    expect((await readFile(path.join(work, 'argv.log'), 'utf8')).trim().split('\n').at(-1)).toContain(`--previous-commit=${r.commit}`);
  });

  it('runs rpm-ostree --download-only for fetch', async () => {
    const { work, o } = await setup();
    await createRpmOstreeComposer().fetch({ ...o, offline: false });
    expect(await readFile(path.join(work, 'argv.log'), 'utf8')).toMatch(/^compose tree --unified-core .*--download-only/);
  });
});

describe('rpm-ostree live', () => {
  it.skipIf(!haveRpmOstree)('reports the version of the real rpm-ostree (skipped where rpm-ostree is not installed: it is not packaged for Debian 12)', async () => {
    const composer = createRpmOstreeComposer();
    expect(await composer.version()).toMatch(/^\d{4}\.\d+/);
  });
});
