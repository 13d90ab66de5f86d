import { createHash } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { commit, importRepoTar, initRepo, listRefs, readRepoMode, revParse, run, showCommit, writeRepoTar } from '@cosa/ostree';
import { tempDir, writeTree } from './_tmp.js';

async function built() {
  const d = await tempDir();
  const repo = path.join(d, 'repo');
  const tree = path.join(d, 'tree');
  await writeTree(tree, { 'usr/bin/hello': '#!/bin/sh\necho hi\n', 'usr/lib/big.bin': 'x'.repeat(3 * 1024 * 1024 + 7), 'usr/share/l': { link: '../bin/hello' } });
  await initRepo({ path: repo, mode: 'bare-user' });
  const c = await commit({ repo, branch: 'tmp/work', tree, metadata: { version: '42.1' } });
  return { d, repo, tree, commit: c.commit };
}

describe('repo tar', () => {
  it('writes an archive-mode repo holding the commit under the given ref, with its sha256 and size', async () => {
    const { d, repo, commit: c } = await built();
    const out = path.join(d, 'builds', 'os-42.1-ostree.x86_64.tar');
    const r = await writeRepoTar({ repo, rev: c, ref: 'os/x86_64/stable', output: out, tmpDir: path.join(d, 'tmp') });
    const bytes = await readFile(out);
    expect(r).toEqual({ path: out, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect(await readdir(path.join(d, 'tmp'))).toEqual([]);
    expect(await readdir(path.dirname(out))).toEqual([path.basename(out)]);
    // The system tar reads it, and ostree sees an archive repo with exactly our ref.
    const x = path.join(d, 'x');
    await run(['mkdir', '-p', x]);
    await run(['tar', '-xf', out, '-C', x]);
    expect(await readRepoMode(x)).toBe('archive');
    expect(await listRefs({ repo: x })).toEqual(['os/x86_64/stable']);
    expect(await revParse({ repo: x, ref: 'os/x86_64/stable' })).toBe(c);
    await run(['ostree', `--repo=${x}`, 'fsck']);
    const names: string[] = [];
    const ex = tar.extract();
    const done = (async () => { for await (const e of ex) { names.push(e.header.name); expect(e.header.uid).toBe(0); e.resume(); } })();
    ex.end(bytes);
    await done;
    expect(names[0]).toBe('./');
    expect(names).toContain('./config');
    expect(names.filter((n) => n.endsWith('.commit'))).toEqual([`./objects/${c.slice(0, 2)}/${c.slice(2)}.commit`]);
  });

  it('writes the same bytes twice for the same commit', async () => {
    const { d, repo, commit: c } = await built();
    const a = await writeRepoTar({ repo, rev: 'tmp/work', ref: 'r', output: path.join(d, 'a.tar'), tmpDir: path.join(d, 'tmp') });
    const b = await writeRepoTar({ repo, rev: c, ref: 'r', output: path.join(d, 'b.tar'), tmpDir: path.join(d, 'tmp') });
    expect(b.sha256).toBe(a.sha256);
  });

  it('imports a repo tar into another repo so its commit can be a parent', async () => {
    const { d, repo, tree, commit: c } = await built();
    const out = path.join(d, 'o.tar');
    await writeRepoTar({ repo, rev: c, ref: 'os/x86_64/dev', output: out, tmpDir: path.join(d, 'tmp') });
    const target = path.join(d, 'fresh');
    const r = await importRepoTar({ tar: out, repo: target, tmpDir: path.join(d, 'tmp') });
    expect(r).toEqual({ commit: c, ref: 'os/x86_64/dev' });
    expect(await readRepoMode(target)).toBe('bare-user');
    expect((await showCommit({ repo: target, rev: 'os/x86_64/dev' })).version).toBe('42.1');
    await run(['ostree', `--repo=${target}`, 'fsck']);
    await writeTree(tree, { 'usr/share/new': 'n' });
    const next = await commit({ repo: target, branch: 'os/x86_64/dev', tree });
    expect((await showCommit({ repo: target, rev: next.commit })).parent).toBe(c);
    expect(await readdir(path.join(d, 'tmp'))).toEqual([]);
  });

  it('refuses a tar whose entries escape the extraction directory', async () => {
    const d = await tempDir();
    const pack = tar.pack();
    pack.entry({ name: '../evil', type: 'file' }, 'x');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    await writeFile(path.join(d, 'evil.tar'), Buffer.concat(chunks));
    await expect(importRepoTar({ tar: path.join(d, 'evil.tar'), repo: path.join(d, 'r'), tmpDir: path.join(d, 'tmp') })).rejects.toMatchObject({ code: 'COSA_PATH_UNSAFE' });
    await expect(stat(path.join(d, 'tmp', 'evil'))).rejects.toThrow();
  });

  it('leaves no partial output when aborted', async () => {
    const { d, repo, commit: c } = await built();
    const ac = new AbortController();
    ac.abort();
    const out = path.join(d, 'o.tar');
    await expect(writeRepoTar({ repo, rev: c, ref: 'r', output: out, tmpDir: path.join(d, 'tmp'), signal: ac.signal })).rejects.toBeTruthy();
    expect((await readdir(d)).filter((n) => n.startsWith('o.tar'))).toEqual([]);
  });
});
