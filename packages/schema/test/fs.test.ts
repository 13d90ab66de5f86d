import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, rmdir, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withLock, writeFileAtomic } from '@cosa/schema';
import { symlinkAtomic } from '@cosa/schema/internal';

let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'cosa-fs-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

describe('atomic files and locks', () => {
  it('writes a file atomically and leaves no temp file behind', async () => {
    await writeFileAtomic(join(dir, 'a.json'), 'one');
    await writeFileAtomic(join(dir, 'a.json'), 'two');
    expect(await readFile(join(dir, 'a.json'), 'utf8')).toBe('two');
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('repoints a symlink atomically', async () => {
    await symlinkAtomic('b1', join(dir, 'latest'));
    await symlinkAtomic('b2', join(dir, 'latest'));
    expect(await readlink(join(dir, 'latest'))).toBe('b2');
  });

  it('serialises concurrent read-modify-write cycles so no update is lost', async () => {
    const f = join(dir, 'counter');
    await writeFileAtomic(f, '0');
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withLock(f, async () => {
          const n = Number(await readFile(f, 'utf8'));
          await new Promise((r) => setTimeout(r, 2));
          await writeFileAtomic(f, String(n + 1));
        }),
      ),
    );
    expect(await readFile(f, 'utf8')).toBe('20');
  });

  it('takes over at once a lock whose holder on this host was killed, but never one whose holder lives', async () => {
    const f = join(dir, 'builds.json');
    const lock = join(dir, '.builds.json.lock');
    // A lock as a process left it: the directory (fresh, so not stale by time) and its owner record.
    const holdAs = async (pid: number) => {
      await rm(lock, { recursive: true, force: true });
      await mkdir(lock);
      const st = await stat(lock);
      await writeFile(`${lock}.owner`, JSON.stringify({ pid, host: hostname(), ino: st.ino, birthtimeMs: st.birthtimeMs }));
    };
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    await new Promise((r) => child.once('spawn', r));
    await holdAs(child.pid!);
    const alive = await withLock(f, async () => 'stolen', { waitMs: 500 }).catch((x: unknown) => x);
    expect(alive).toMatchObject({ code: 'COSA_WORKDIR_LOCKED' });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const t0 = Date.now();
    expect(await withLock(f, async () => 'taken', { waitMs: 5_000 })).toBe('taken');
    expect(Date.now() - t0).toBeLessThan(5_000);
    // Released: neither the lock nor its owner record is left beside builds.json.
    expect(await readdir(dir)).toEqual([]);
  });

  it('does not take over a live lock whose holder stalled for 15 s', async () => {
    const f = join(dir, 'builds.json');
    const lock = join(dir, '.builds.json.lock');
    let release!: () => void;
    const holder = withLock(f, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 100));
    // The holder's event loop stalled: its last refresh of the lock was 15 s ago.
    const old = new Date(Date.now() - 15_000);
    await utimes(lock, old, old);
    const e = await withLock(f, async () => 'stolen', { waitMs: 300 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'COSA_WORKDIR_LOCKED' });
    release();
    await holder;
  });

  it('refuses to write once another process took the lock over, instead of losing its update', async () => {
    const f = join(dir, 'builds.json');
    const lock = join(dir, '.builds.json.lock');
    await writeFileAtomic(f, 'theirs');
    const e = await withLock(f, async () => {
      // Another process decided the lock was stale and took it: the directory is a new one.
      await rmdir(lock);
      await mkdir(lock);
      await writeFileAtomic(f, 'mine');
    }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'COSA_WORKDIR_LOCK_LOST' });
    expect(await readFile(f, 'utf8')).toBe('theirs');
    expect((await readdir(dir)).sort()).toEqual(['.builds.json.lock', 'builds.json']);
  });

  it('turns a compromised lock into an error of the write, not a crash of the process', async () => {
    const f = join(dir, 'meta.json');
    const lock = join(dir, '.meta.json.lock');
    const e = await withLock(
      f,
      async () => {
        // Someone else touched the lock: the holder's next refresh sees a foreign mtime.
        const other = new Date(Date.now() - 1_000);
        await utimes(lock, other, other);
        await new Promise((r) => setTimeout(r, 1_500));
        await writeFileAtomic(f, 'late');
      },
      { staleMs: 4_000, updateMs: 1_000 },
    ).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'COSA_WORKDIR_LOCK_LOST' });
    await expect(readFile(f, 'utf8')).rejects.toThrow();
  });
});

describe('temp files of a killed atomic write', () => {
  it('are removed by the next atomic write of the same file when their writer is dead; live writers\' are kept', async () => {
    const d = await mkdtemp(join(tmpdir(), 'cosa-stale-'));
    try {
      const dead = await new Promise<number>((resolve) => {
        const c = spawn(process.execPath, ['-e', '0']);
        c.on('exit', () => resolve(c.pid!));
      });
      const names = [`.meta.json.tmp-${dead}-0badf00d`, `.meta.json.partial-${dead}-0badf00d`, '.meta.json.tmp-1-0badf00d', `.other.json.tmp-${dead}-0badf00d`, `.latest.tmp-${dead}-0badf00d`];
      for (const n of names) await writeFile(join(d, n), 'half');
      await writeFileAtomic(join(d, 'meta.json'), '{}');
      await symlinkAtomic('x', join(d, 'latest'));
      // pid 1 is alive; other.json is not the file written.
      expect((await readdir(d)).sort()).toEqual(['.meta.json.tmp-1-0badf00d', `.other.json.tmp-${dead}-0badf00d`, 'latest', 'meta.json']);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it("of a lock's owner record are removed by the next holder of that lock when their writer is dead", async () => {
    const d = await mkdtemp(join(tmpdir(), 'cosa-stale-'));
    try {
      const dead = await new Promise<number>((resolve) => {
        const c = spawn(process.execPath, ['-e', '0']);
        c.on('exit', () => resolve(c.pid!));
      });
      // What a holder killed between writing its owner record and renaming it leaves.
      const stale = `..meta.json.lock.owner.tmp-${dead}-0badf00d`;
      await writeFile(join(d, stale), '{"pid":');
      await withLock(join(d, 'meta.json'), async () => {
        expect(await readdir(d)).not.toContain(stale);
      });
      expect(await readdir(d)).toEqual([]);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
