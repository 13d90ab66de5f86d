import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tarDirectory } from '@cosa/ostree';
import { tarEntryAt } from '../src/verify-reproducible.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'cosa-verify-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('locating a difference in an ostree tar', () => {
  it('names the entry whose header or data holds a byte offset, long (pax) names included', async () => {
    const dir = path.join(work, 'repo');
    const long = `objects/${'ab'.repeat(70)}.file`;
    await mkdir(path.join(dir, 'objects'), { recursive: true });
    await writeFile(path.join(dir, 'config'), '[core]\nrepo_version=1\nmode=archive-z2\n');
    await writeFile(path.join(dir, long), 'FIRST-MARKER'.repeat(100));
    await writeFile(path.join(dir, 'objects', 'zz.commit'), 'SECOND-MARKER');
    const tar = path.join(work, 'repo.tar');
    await tarDirectory({ dir, output: tar, mtime: new Date(0) });
    const bytes = await readFile(tar);
    expect(await tarEntryAt(tar, bytes.indexOf('mode=archive-z2'))).toBe('./config');
    expect(await tarEntryAt(tar, bytes.indexOf('FIRST-MARKER') + 700)).toBe(`./${long}`);
    expect(await tarEntryAt(tar, bytes.indexOf('SECOND-MARKER'))).toBe('./objects/zz.commit');
    expect(await tarEntryAt(tar, bytes.indexOf('SECOND-MARKER') - 512)).toBe('./objects/zz.commit (header)');
    expect(await tarEntryAt(tar, bytes.length - 10)).toMatch(/^end of archive/);
  });
});
