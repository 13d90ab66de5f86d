import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { commit, importRepoTar, initRepo, listRefs, readRepoMode, revParse, showCommit, writeRepoTar } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import { tempDir, writeTree } from './_tmp.js';
import { ARCHIVE_ZLIB_LEVEL, extractTar } from '../src/repo-tar.js';

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

  async function hostileTar(d: string, entries: Array<{ header: Partial<tar.Headers> & { name: string }; body?: string }>): Promise<string> {
    const pack = tar.pack();
    for (const e of entries) pack.entry(e.header, e.body ?? '');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    const file = path.join(d, 'hostile.tar');
    await writeFile(file, Buffer.concat(chunks));
    return file;
  }

  it('refuses a symlink in the tar and never writes through it', async () => {
    const d = await tempDir();
    const outside = path.join(d, 'outside');
    await mkdir(outside);
    const file = await hostileTar(d, [
      { header: { name: './', type: 'directory', mode: 0o755 } },
      { header: { name: './objects', type: 'symlink', linkname: outside } },
      { header: { name: './objects/pwned', type: 'file', mode: 0o644 }, body: 'owned' },
    ]);
    const err = await importRepoTar({ tar: file, repo: path.join(d, 'r'), tmpDir: path.join(d, 'tmp') }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_PATH_UNSAFE' });
    expect((err as Error).message).toContain('./objects');
    expect(await readdir(outside)).toEqual([]);
    expect(await readdir(path.join(d, 'tmp'))).toEqual([]);
  });

  it('refuses a hardlink to a file outside the repo and device entries', async () => {
    const d = await tempDir();
    const victim = path.join(d, 'victim');
    await writeFile(victim, 'keep');
    for (const header of [
      { name: './x', type: 'link', linkname: './config' },
      { name: './dev', type: 'character-device', devmajor: 1, devminor: 3 },
      { name: './fifo', type: 'fifo' },
    ] as Array<Partial<tar.Headers> & { name: string }>) {
      const file = await hostileTar(d, [{ header: { name: './config', type: 'file', mode: 0o644 }, body: 'c' }, { header }]);
      await expect(importRepoTar({ tar: file, repo: path.join(d, 'r'), tmpDir: path.join(d, 'tmp') })).rejects.toMatchObject({ code: 'COSA_PATH_UNSAFE' });
    }
    expect(await readFile(victim, 'utf8')).toBe('keep');
  });

  it('refuses a second entry for the same file instead of overwriting it', async () => {
    const d = await tempDir();
    const file = await hostileTar(d, [
      { header: { name: './config', type: 'file', mode: 0o644 }, body: 'first' },
      { header: { name: './config', type: 'file', mode: 0o644 }, body: 'second' },
    ]);
    await expect(importRepoTar({ tar: file, repo: path.join(d, 'r'), tmpDir: path.join(d, 'tmp') })).rejects.toMatchObject({ code: 'COSA_PATH_UNSAFE' });
  });

  it('drops setuid, setgid, sticky and group/world-write bits of extracted files', async () => {
    const { d, repo, commit: c } = await built();
    const out = path.join(d, 'o.tar');
    await writeRepoTar({ repo, rev: c, ref: 'r', output: out, tmpDir: path.join(d, 'tmp') });
    // Rewrite the tar with every file marked 04777 and every directory 01777.
    const ex = tar.extract();
    const pack = tar.pack();
    const copied = (async () => {
      for await (const e of ex) {
        const h = { ...e.header, mode: e.header.type === 'directory' ? 0o1777 : 0o4777 };
        const body: Buffer[] = [];
        for await (const b of e) body.push(b as Buffer);
        pack.entry(h, Buffer.concat(body));
      }
      pack.finalize();
    })();
    ex.end(await readFile(out));
    await copied;
    const chunks: Buffer[] = [];
    for await (const b of pack) chunks.push(b as Buffer);
    const evil = path.join(d, 'modes.tar');
    await writeFile(evil, Buffer.concat(chunks));
    const target = path.join(d, 'x');
    await mkdir(target);
    await extractTar(evil, target, undefined);
    expect(await listRefs({ repo: target })).toEqual(['r']);
    const modes = new Set<number>();
    const walk = async (dir: string): Promise<void> => {
      for (const n of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, n.name);
        modes.add((await stat(p)).mode & 0o7777);
        if (n.isDirectory()) await walk(p);
      }
    };
    await walk(target);
    expect(modes.size).toBeGreaterThan(0);
    for (const m of modes) expect(m & 0o7022).toBe(0);
  });

  it('compresses objects at the cache\'s zlib level (1 by default) and ships the plain archive config', async () => {
    const d = await tempDir();
    const repo = path.join(d, 'repo');
    // Text that zlib 1 and 9 compress to different sizes (words from a small vocabulary).
    let x = 12345;
    const words = ['ostree', 'commit', 'archive', 'zlib', 'level', 'debian', 'kernel', 'initramfs'];
    const text = Array.from({ length: 300_000 }, () => words[(x = (x * 1103515245 + 12345) % 2 ** 31) % words.length]).join(' ');
    await writeTree(path.join(d, 'tree'), { 'usr/share/words.txt': text });
    await initRepo({ path: repo, mode: 'bare-user' });
    const c = (await commit({ repo, branch: 'b', tree: path.join(d, 'tree') })).commit;
    const sizes: number[] = [];
    for (const level of [undefined, 9] as const) {
      const cache = path.join(d, `cache-${level ?? 'default'}`);
      const out = path.join(d, `${level ?? 'default'}.tar`);
      const r = await writeRepoTar({ repo, rev: c, ref: 'r', output: out, tmpDir: path.join(d, 'tmp'), archiveCache: cache, ...(level ? { zlibLevel: level } : {}) });
      sizes.push(r.size);
      expect(await readFile(path.join(cache, 'config'), 'utf8')).toMatch(new RegExp(`^\\[archive\\]\\nzlib-level=${level ?? ARCHIVE_ZLIB_LEVEL}$`, 'm'));
      const x2 = path.join(d, `x-${level ?? 'default'}`);
      await mkdir(x2);
      await run(['tar', '-xf', out, '-C', x2]);
      expect(await readFile(path.join(x2, 'config'), 'utf8')).not.toMatch(/zlib-level/);
      await run(['ostree', `--repo=${x2}`, 'fsck']);
    }
    expect(ARCHIVE_ZLIB_LEVEL).toBe(1);
    expect(sizes[1]).toBeLessThan(sizes[0]!);
    await expect(writeRepoTar({ repo, rev: c, ref: 'r', output: path.join(d, 'bad.tar'), tmpDir: path.join(d, 'tmp'), zlibLevel: 0 })).rejects.toMatchObject({ code: 'COSA_USAGE' });
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
