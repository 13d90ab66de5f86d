/**
 * pinRpmdbTimes: two rpmdbs of the same packages installed at different times (real rpm 4.18,
 * real sqlite3) differ before and are byte-identical after, and rpm still reads them.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../src/_exec.js';
import { pinRpmdbTimes, setHeaderInt32 } from '../src/_rpmdb.js';
import { tempDir } from './_tmp.js';
import { buildRpmRepo } from './_rpm.js';

const DBPATH = '/usr/lib/sysimage/rpm';

async function installRoot(rpmRepo: string, root: string): Promise<string> {
  const rpms = (await readdir(rpmRepo)).filter((f) => /^cosa-test-(filesystem|base|app)-.*\.rpm$/.test(f)).sort().map((f) => path.join(rpmRepo, f));
  await run(['rpm', '--root', root, '--dbpath', DBPATH, '--initdb']);
  await run(['rpm', '--root', root, '--dbpath', DBPATH, '-i', '--nodeps', '--nosignature', ...rpms]);
  return path.join(root, DBPATH, 'rpmdb.sqlite');
}

const query = (root: string) => run(['rpm', '--root', root, '--dbpath', DBPATH, '-qa', '--qf', '%{name} %{installtime} %{installtid}\\n']).then((r) => r.stdout.trim().split('\n').sort());

describe('pinRpmdbTimes', () => {
  it('makes two rpmdbs installed a second apart byte-identical, with the install times rpm reports set to the epoch', { timeout: 120_000 }, async () => {
    const work = await tempDir('cosa-rpmdb-');
    const repo = await buildRpmRepo(work);
    const a = await installRoot(repo, path.join(work, 'a'));
    await new Promise((r) => setTimeout(r, 1100));
    const b = await installRoot(repo, path.join(work, 'b'));
    expect(Buffer.compare(await readFile(a), await readFile(b)), 'the rpmdbs differ before').not.toBe(0);
    const epoch = 1_700_000_000;
    expect((await pinRpmdbTimes(a, epoch, { tmpDir: work })).packages).toBe(3);
    expect((await pinRpmdbTimes(b, epoch, { tmpDir: work })).packages).toBe(3);
    expect(Buffer.compare(await readFile(a), await readFile(b)), 'the rpmdbs differ after pinning').toBe(0);
    expect(await query(path.join(work, 'a'))).toEqual(['cosa-test-app', 'cosa-test-base', 'cosa-test-filesystem'].map((n) => `${n} ${epoch} ${epoch}`));
    await run(['rpm', '--root', path.join(work, 'a'), '--dbpath', DBPATH, '--verifydb']);
  });

  it('refuses a header whose entries point outside it', () => {
    const blob = Buffer.alloc(8 + 16 + 4);
    blob.writeUInt32BE(1, 0);
    blob.writeUInt32BE(4, 4);
    blob.writeUInt32BE(1008, 8);
    blob.writeUInt32BE(4, 12);
    blob.writeInt32BE(2, 16);
    blob.writeUInt32BE(1, 20);
    expect(() => setHeaderInt32(blob, new Set([1008]), 1)).toThrow(/outside/);
    blob.writeInt32BE(0, 16);
    expect(setHeaderInt32(blob, new Set([1008]), 7)).toBe(1);
    expect(blob.readUInt32BE(24)).toBe(7);
  });
});
