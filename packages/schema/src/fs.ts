/**
 * Atomic writes and cross-process locks shared by every package that writes workdir or build
 * files: a reader never sees a half-written file and two processes never lose an update.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import lockfile from 'proper-lockfile';
import { CosaError } from './errors.js';

/** Writes `data` to `path` through a temp file in the same directory: write, fsync, rename, fsync dir. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', options.mode ?? 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dir);
}

/** fsyncs a directory so a rename in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Points the symlink `path` at `target` atomically (temp link + rename), like `ln -Tsf`. */
export async function symlinkAtomic(target: string, path: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await symlink(target, tmp);
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Options of {@link withLock}. */
export interface LockOptions {
  /** How long to wait for another holder before failing (ms, default 10 minutes). */
  waitMs?: number;
  /** What the lock protects, for the error message. */
  what?: string;
}

/**
 * Runs `fn` while holding an exclusive lock on `path` (a `.<name>.lock` directory next to it,
 * shared by every cosa process; a lock left by a killed process goes stale after 10 s).
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  const lockPath = join(dirname(path), `.${basename(path)}.lock`);
  const waitMs = options.waitMs ?? 10 * 60_000;
  const deadline = Date.now() + waitMs;
  let release: (() => Promise<void>) | undefined;
  for (;;) {
    try {
      release = await lockfile.lock(path, { lockfilePath: lockPath, realpath: false, stale: 10_000, update: 2_000 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
      if (Date.now() >= deadline) {
        throw new CosaError('COSA_WORKDIR_LOCKED', `${options.what ?? path} is locked by another cosa process`, {
          hint: 'wait for the other cosa command to finish',
          cause: e,
        });
      }
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}
