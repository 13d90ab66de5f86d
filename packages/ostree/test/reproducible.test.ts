/**
 * Reproducible RPM composes: the same manifest and RPMs composed in two separate places with the
 * same SOURCE_DATE_EPOCH give the same commit (dnf composer, local RPMs): the rpmdb's install
 * times, which rpm 4.18 takes from the clock, are pinned to SOURCE_DATE_EPOCH afterwards.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '@cosa/schema';
import { createDnfComposer, diffCommits, pullLocal, showCommit, type ComposeOptions } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import { tempDir } from './_tmp.js';
import { buildRpmRepo, writeRepoFile } from './_rpm.js';

async function composeIn(rpmRepo: string, epoch: number): Promise<{ repo: string; commit: string }> {
  const work = { dir: await tempDir('cosa-repro-rpm-') };
  const configDir = path.join(work.dir, 'src', 'config');
  await writeRepoFile(configDir, 'local', rpmRepo);
  await writeFile(path.join(configDir, 'manifest.yaml'), 'ref: test\n');
  const o: ComposeOptions = {
    manifest: { ref: 'cosa/x86_64/test', repos: ['local'], packages: ['cosa-test-app'], postprocess: ['echo "$SOURCE_DATE_EPOCH" > "$1/usr/cosa-built-at"'] } as Manifest,
    configDir, files: [path.join(configDir, 'manifest.yaml')], cacheDir: path.join(work.dir, 'cache'), tmpDir: path.join(work.dir, 'tmp'),
    repo: path.join(work.dir, 'tmp', 'repo'), arch: 'x86_64', version: '1.0.0', ref: 'cosa/x86_64/test', sourceDateEpoch: epoch,
  };
  const r = await createDnfComposer().compose(o);
  return { repo: o.repo, commit: r.commit };
}

describe('reproducible RPM composes', () => {
  it('gives the same commit in two workdirs with the same SOURCE_DATE_EPOCH', { timeout: 240_000 }, async () => {
    const rpmRepo = await buildRpmRepo(await tempDir('cosa-repro-rpms-'));
    const epoch = 1_700_000_000;
    const a = await composeIn(rpmRepo, epoch);
    const b = await composeIn(rpmRepo, epoch);
    expect((await showCommit({ repo: a.repo, rev: a.commit })).timestamp.getTime()).toBe(epoch * 1000);
    if (a.commit !== b.commit) {
      await pullLocal({ repo: a.repo, srcRepo: b.repo, revs: [b.commit] });
      const changes = await diffCommits({ repo: a.repo, from: a.commit, to: b.commit });
      expect(changes, 'files that differ between the two composes').toEqual([]);
    }
    expect(b.commit).toBe(a.commit);
    // rpm reads the pinned database and reports SOURCE_DATE_EPOCH as every package's install time.
    const db = path.join(path.dirname(a.repo), 'rpmdb');
    await run(['ostree', `--repo=${a.repo}`, 'checkout', '--subpath=/usr/lib/sysimage/rpm', a.commit, db]);
    const times = (await run(['rpm', '--dbpath', db, '-qa', '--qf', '%{name} %{installtime} %{installtid}\n'])).stdout.trim().split('\n').sort();
    expect(times).toEqual(['cosa-test-app', 'cosa-test-base', 'cosa-test-filesystem'].map((n) => `${n} ${epoch} ${epoch}`));
    expect((await run(['ostree', `--repo=${a.repo}`, 'cat', a.commit, '/usr/cosa-built-at'])).stdout.trim()).toBe(String(epoch));
  });
});
