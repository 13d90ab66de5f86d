import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  commit, commitSize, commitToArchive, commitTree, deleteRef, recommit, initRepo, listCommitTree, listRefs, prune, pullLocal, readCommitMeta, readRepoMode,
  revParse, setRef, showCommit,
} from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import { tempDir, writeTree } from './_tmp.js';

async function fixture() {
  const d = await tempDir();
  const repo = path.join(d, 'repo');
  const tree = path.join(d, 'tree');
  await writeTree(tree, { 'usr/bin/hello': '#!/bin/sh\necho hi\n', 'usr/bin/hi': { link: 'hello' }, 'usr/share/a.txt': 'aaaa', 'usr/share/b.txt': 'aaaa' });
  await initRepo({ path: repo, mode: 'bare-user' });
  return { d, repo, tree };
}

describe('repo operations', () => {
  it('creates a repo once and refuses to reuse it in another mode', async () => {
    const d = await tempDir();
    const repo = path.join(d, 'a', 'repo');
    await initRepo({ path: repo, mode: 'archive' });
    await initRepo({ path: repo, mode: 'archive' });
    expect(await readRepoMode(repo)).toBe('archive');
    await expect(initRepo({ path: repo, mode: 'bare-user' })).rejects.toMatchObject({ code: 'COSA_OSTREE_FAILED' });
  });

  it('commits a tree with metadata, subject and timestamp and reads them back', async () => {
    const { repo, tree } = await fixture();
    const ts = new Date('2024-02-03T04:05:06Z');
    const r = await commit({ repo, branch: 'os/x86_64/test', tree, subject: "it's a test", metadata: { version: '1.2.3', 'rpmostree.inputhash': 'abc' }, timestamp: ts, fsync: false });
    expect(r.changed).toBe(true);
    expect(r.commit).toMatch(/^[0-9a-f]{64}$/);
    expect(await revParse({ repo, ref: 'os/x86_64/test' })).toBe(r.commit);
    const info = await showCommit({ repo, rev: 'os/x86_64/test' });
    expect(info).toMatchObject({ commit: r.commit, subject: "it's a test", version: '1.2.3' });
    expect(info.parent).toBeUndefined();
    expect(info.timestamp.toISOString()).toBe('2024-02-03T04:05:06.000Z');
    expect(info.metadata).toMatchObject({ version: '1.2.3', 'rpmostree.inputhash': 'abc' });
    expect(await readCommitMeta({ repo, rev: r.commit })).toEqual(info.metadata);
    const ls = await run(['ostree', `--repo=${repo}`, 'ls', r.commit, '/usr/bin/hello']);
    expect(ls.stdout).toMatch(/^-00644 0 0\s+18 \/usr\/bin\/hello/);
  });

  it('lists a commit tree, with object checksums and extended attributes on request', async () => {
    const { repo, tree } = await fixture();
    const r = await commit({ repo, branch: 'os/list', tree, fsync: false });
    const plain = await listCommitTree({ repo, rev: r.commit });
    const hello = plain.find((l) => l.endsWith(' /usr/bin/hello'));
    expect(hello).toMatch(/^-00644 0 0\s+18 \/usr\/bin\/hello$/);
    const full = await listCommitTree({ repo, rev: r.commit, checksums: true, xattrs: true });
    expect(full).toHaveLength(plain.length);
    // What the VM writer's host stage reads: the object of every file and its (empty) xattrs.
    expect(full.find((l) => l.includes(' /usr/bin/hello'))).toMatch(/^-00644 0 0\s+18 [0-9a-f]{64} \{ @a\(ayay\) \[\] \} \/usr\/bin\/hello$/);
  });

  it('resolves and deletes a ref whose name is all hex (a build id such as 1) as a ref, never as an abbreviated checksum', async () => {
    const { repo, tree } = await fixture();
    const commits: string[] = [];
    // 17 commits: two of them surely start with the same hex digit.
    for (let i = 0; i < 17; i++) commits.push((await commit({ repo, branch: 'os/hex', tree, metadata: { version: String(i) }, fsync: false })).commit);
    const shared = [...'0123456789abcdef'].find((c) => commits.filter((x) => x.startsWith(c)).length >= 2)!;
    const target = commits.find((x) => !x.startsWith(shared))!;
    await setRef({ repo, ref: shared, rev: target });
    expect(await revParse({ repo, ref: shared })).toBe(target);
    // A name that abbreviates exactly one other commit still names the ref.
    const other = commits.find((x) => x !== target)!;
    const unique = [...Array(64).keys()].map((n) => other.slice(0, n + 1)).find((p) => commits.filter((x) => x.startsWith(p)).length === 1)!;
    await setRef({ repo, ref: unique, rev: target });
    expect(await revParse({ repo, ref: unique })).toBe(target);
    expect(await listRefs({ repo })).toEqual(expect.arrayContaining([shared, unique]));
    // Pulled into a repo that holds every commit: the ref is pulled as the ref.
    const dest = path.join(path.dirname(repo), 'dest');
    await initRepo({ path: dest, mode: 'archive' });
    await pullLocal({ repo: dest, srcRepo: repo, refs: ['os/hex'], depth: -1 });
    await pullLocal({ repo: dest, srcRepo: repo, refs: [shared, unique] });
    expect(await revParse({ repo: dest, ref: shared })).toBe(target);
    expect(await revParse({ repo: dest, ref: unique })).toBe(target);
    expect(await listCommitTree({ repo: dest, rev: shared })).toEqual(await listCommitTree({ repo, rev: target }));
    await deleteRef({ repo, ref: shared });
    await deleteRef({ repo, ref: unique });
    expect(await listRefs({ repo })).toEqual(['os/hex']);
    // No such ref: the ambiguous name resolves to nothing, and deleting it again is no error.
    expect(await revParse({ repo, ref: shared })).toBeUndefined();
    await deleteRef({ repo, ref: shared });
    await deleteRef({ repo, ref: unique });
    expect(await revParse({ repo, ref: 'os/hex' })).toBe(commits[16]);
  });

  it('skips an unchanged tree and records the parent of a changed one', async () => {
    const { repo, tree } = await fixture();
    const a = await commit({ repo, branch: 'os/b', tree, skipIfUnchanged: true });
    const again = await commit({ repo, branch: 'os/b', tree, skipIfUnchanged: true });
    expect(again).toEqual({ commit: a.commit, changed: false });
    await writeTree(tree, { 'usr/share/c.txt': 'new' });
    const b = await commit({ repo, branch: 'os/b', tree, skipIfUnchanged: true, metadata: { version: '2' } });
    expect(b.changed).toBe(true);
    expect((await showCommit({ repo, rev: 'os/b' })).parent).toBe(a.commit);
  });

  it('recommits the tree of a commit with a new version, keeping its other metadata', async () => {
    const { repo, tree } = await fixture();
    const a = await commit({ repo, branch: 'os/b', tree, subject: 'os 1', metadata: { version: '1', 'cosa.inputhash': 'h1', 'rpmostree.rpmdb.pkglist': 'x' } });
    const b = await recommit({ repo, branch: 'os/b', from: a.commit, subject: 'os 2', metadata: { version: '2' } });
    expect(b).not.toBe(a.commit);
    expect(await revParse({ repo, ref: 'os/b' })).toBe(b);
    const info = await showCommit({ repo, rev: b });
    expect(info).toMatchObject({ parent: a.commit, subject: 'os 2', version: '2' });
    expect(info.metadata).toEqual({ version: '2', 'cosa.inputhash': 'h1', 'rpmostree.rpmdb.pkglist': 'x', 'ostree.ref-binding': ['os/b'] });
    // The same tree: ostree diff finds nothing, and the root tree checksums agree.
    expect((await run(['ostree', `--repo=${repo}`, 'diff', a.commit, b])).stdout.trim()).toBe('');
    const root = async (c: string) => (await run(['ostree', `--repo=${repo}`, 'ls', '-C', '-d', c, '/'])).stdout.trim().split(/\s+/).slice(-3).join(' ');
    expect(await root(b)).toBe(await root(a.commit));
    await expect(recommit({ repo, branch: 'os/b', from: '0'.repeat(64) })).rejects.toMatchObject({ code: 'COSA_OSTREE_FAILED' });
  });

  it('creates a missing repo as bare-user when committing with commitTree', async () => {
    const d = await tempDir();
    await writeTree(path.join(d, 't'), { 'usr/x': 'x' });
    const r = await commitTree({ repo: path.join(d, 'new'), branch: 'os/b', tree: path.join(d, 't') });
    expect(r.changed).toBe(true);
    expect(await readRepoMode(path.join(d, 'new'))).toBe('bare-user');
  });

  it('returns undefined for a missing ref and fails on a broken repo', async () => {
    const { d, repo } = await fixture();
    expect(await revParse({ repo, ref: 'no/such/ref' })).toBeUndefined();
    await expect(revParse({ repo: path.join(d, 'nope'), ref: 'x' })).rejects.toMatchObject({ code: 'COSA_OSTREE_FAILED' });
  });

  it('lists, sets and deletes refs', async () => {
    const { repo, tree } = await fixture();
    const { commit: c } = await commit({ repo, branch: 'a/one', tree });
    await setRef({ repo, ref: 'a/two', rev: c });
    await setRef({ repo, ref: 'a/two', rev: c });
    expect(await listRefs({ repo })).toEqual(['a/one', 'a/two']);
    expect(await listRefs({ repo, prefix: 'a' })).toEqual(['a/one', 'a/two']);
    await deleteRef({ repo, ref: 'a/one' });
    await deleteRef({ repo, ref: 'a/one' });
    expect(await listRefs({ repo })).toEqual(['a/two']);
  });

  it('pulls refs and bare commits between local repos, and prunes what no ref reaches', async () => {
    const { d, repo, tree } = await fixture();
    const { commit: c1 } = await commit({ repo, branch: 'x', tree });
    await writeTree(tree, { 'usr/share/new.txt': 'new content' });
    const { commit: c2 } = await commit({ repo, branch: 'y', tree, parent: 'none' });
    const other = path.join(d, 'other');
    await initRepo({ path: other, mode: 'archive' });
    await pullLocal({ repo: other, srcRepo: repo, refs: ['x'] });
    await pullLocal({ repo: other, srcRepo: repo, revs: [c2] });
    expect(await listRefs({ repo: other })).toEqual(['x']);
    expect(await revParse({ repo: other, ref: c2 })).toBe(c2);
    expect(await revParse({ repo: other, ref: 'x' })).toBe(c1);
    await prune({ repo: other, refsOnly: true });
    expect(await revParse({ repo: other, ref: c2 })).toBeUndefined();
    await expect(showCommit({ repo: other, rev: c2 })).rejects.toMatchObject({ code: 'COSA_OSTREE_FAILED' });
    expect((await showCommit({ repo: other, rev: 'x' })).commit).toBe(c1);
  });

  it('measures content size counting identical files once', async () => {
    const { repo, tree } = await fixture();
    const { commit: c } = await commit({ repo, branch: 'x', tree });
    // hello (18) + a.txt/b.txt share one object (4); 4 directories (/, usr, usr/bin, usr/share)
    expect(await commitSize({ repo, rev: c })).toBe(18 + 4 + 4 * 4096);
  });

  it('commits into an archive repo through a bare-user staging repo, keeping history', async () => {
    const { d, tree } = await fixture();
    const archive = path.join(d, 'archive');
    const staging = path.join(d, 'staging');
    const a = await commitToArchive({ repo: archive, stagingRepo: staging, branch: 'os', tree, metadata: { version: '1' }, skipIfUnchanged: true });
    expect(await readRepoMode(archive)).toBe('archive');
    expect(await revParse({ repo: archive, ref: 'os' })).toBe(a.commit);
    const same = await commitToArchive({ repo: archive, stagingRepo: staging, branch: 'os', tree, skipIfUnchanged: true });
    expect(same).toEqual({ commit: a.commit, changed: false });
    await writeTree(tree, { 'usr/share/z': 'z' });
    const b = await commitToArchive({ repo: archive, stagingRepo: staging, branch: 'os', tree, metadata: { version: '2' } });
    const info = await showCommit({ repo: archive, rev: 'os' });
    expect(info).toMatchObject({ commit: b.commit, parent: a.commit, version: '2' });
    expect(await readFile(path.join(archive, 'config'), 'utf8')).toMatch(/mode=archive/);
  });
});

describe('refs that look like options', () => {
  it('are never taken as ostree options by rev-parse, refs --create and refs --delete', async () => {
    const d = await tempDir();
    const repo = path.join(d, 'repo');
    await initRepo({ path: repo, mode: 'archive' });
    // Without `--`, `ostree rev-parse --help` prints its help and exits 0: a "commit".
    await expect(revParse({ repo, ref: '--help' })).rejects.toMatchObject({ code: 'COSA_OSTREE_FAILED' });
    await expect(deleteRef({ repo, ref: '--help' })).rejects.toMatchObject({ code: 'COSA_OSTREE_FAILED' });
    await expect(setRef({ repo, ref: 'x', rev: '--help' })).rejects.toMatchObject({ code: 'COSA_OSTREE_FAILED' });
  });
});
