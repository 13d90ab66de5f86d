import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sourceDateEpoch } from '../src/source-date.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cosa-sde-'));
  await writeFile(path.join(dir, 'manifest.yaml'), 'ref: x\n');
  await writeFile(path.join(dir, 'image.yaml'), 'size: 2\n');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('SOURCE_DATE_EPOCH of a build', () => {
  it('is $SOURCE_DATE_EPOCH when set, and a malformed value is a usage error', async () => {
    expect(await sourceDateEpoch({ configDir: dir, env: { SOURCE_DATE_EPOCH: '1700000000' } })).toEqual({ epoch: 1_700_000_000, origin: 'env' });
    await expect(sourceDateEpoch({ configDir: dir, env: { SOURCE_DATE_EPOCH: 'yesterday' } })).rejects.toMatchObject({ code: 'COSA_USAGE' });
  });

  it('is the committer time of the config\'s git HEAD, whatever the files\' mtimes', async () => {
    execFileSync('git', ['init', '-q', dir]);
    execFileSync('git', ['-C', dir, 'add', '-A']);
    execFileSync('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@t.invalid', 'commit', '-qm', 'x'], {
      env: { ...process.env, GIT_COMMITTER_DATE: '@1600000000 +0000', GIT_AUTHOR_DATE: '@1500000000 +0000' },
    });
    await utimes(path.join(dir, 'manifest.yaml'), new Date(), new Date());
    expect(await sourceDateEpoch({ configDir: dir, files: ['manifest.yaml'], env: {} })).toEqual({ epoch: 1_600_000_000, origin: 'git' });
  });

  it('is the newest mtime of the config files without git', async () => {
    await utimes(path.join(dir, 'manifest.yaml'), new Date(1_650_000_000_500), new Date(1_650_000_000_500));
    await utimes(path.join(dir, 'image.yaml'), new Date(1_640_000_000_000), new Date(1_640_000_000_000));
    expect(await sourceDateEpoch({ configDir: dir, files: [path.join(dir, 'manifest.yaml'), 'image.yaml'], env: {} })).toEqual({ epoch: 1_650_000_000, origin: 'mtime' });
  });
});
