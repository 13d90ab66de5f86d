/**
 * Atomic writes and cross-process locks shared by every package that writes workdir or build
 * files: a reader never sees a half-written file and two processes never lose an update.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import lockfile from 'proper-lockfile';
import { CosaError } from './errors.js';

/** Whether a process with this PID exists on this host (EPERM: it exists, owned by another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files `.NAME.tmp-PID-HEX` (and `.NAME.partial-PID-HEX`) of `path` whose
 * writer PID is no longer alive on this host: what a SIGKILLed atomic write leaves. Called
 * before every atomic write of `path`, so a re-run cleans up after a killed run. (On a store
 * shared by several hosts, a live writer elsewhere whose PID is free here loses its temp file;
 * its rename then fails with an error, nothing is half-written.)
 */
export async function removeStaleTemps(path: string): Promise<string[]> {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  const removed: string[] = [];
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (!n.startsWith(prefix)) continue;
    const m = /^(?:tmp|partial)-(\d+)-[0-9a-f]+$/.exec(n.slice(prefix.length));
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    await rm(join(dir, n), { force: true });
    removed.push(n);
  }
  return removed;
}

/**
 * The prefixes of the temp dirs cosa makes under `os.tmpdir()` (run, boot, probes; the test
 * helpers' too). Each dir is named `<prefix><pid>-<random>` ({@link makeTempDir}), so
 * {@link sweepStaleTempDirs} can tell the dirs of a killed process from those of a live one.
 */
export const TEMP_DIR_PREFIXES = ['cosa-run-', 'cosa-boot-', 'cosa-kvm-probe-', 'cosa-loop-probe-', 'cosa-setplatform-', 'cosa-kola-', 'cosa-wd-', 'cosa-test-'] as const;

let swept: Promise<string[]> | undefined;

/**
 * Removes the temp dirs of {@link TEMP_DIR_PREFIXES} in `dir` (default `os.tmpdir()`) whose
 * owning process is gone: the name must be `<prefix><pid>-<6 chars>`, the PID not this process
 * and not alive on this host, and the dir a real directory owned by this user. What a killed
 * run leaves (SIGKILL skips every `finally`); the same test as the workdir's `tmp/` sweep of
 * buildfetch staging dirs. Dirs without a PID in their name (older cosa, other tools) are left
 * alone. Returns the names removed.
 */
export async function sweepStaleTempDirs(dir: string = tmpdir()): Promise<string[]> {
  const removed: string[] = [];
  const uid = process.getuid?.();
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    const prefix = TEMP_DIR_PREFIXES.find((p) => n.startsWith(p));
    const pid = prefix ? Number(/^(\d+)-[A-Za-z0-9]{6}$/.exec(n.slice(prefix.length))?.[1]) : NaN;
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    const st = await lstat(join(dir, n)).catch(() => undefined);
    if (!st?.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
    await rm(join(dir, n), { recursive: true, force: true }).then(
      () => removed.push(n),
      () => {},
    );
  }
  return removed;
}

/**
 * `mkdtemp` under `os.tmpdir()` (or `parent`) named `<prefix><pid>-<random>`; the first call of a
 * process first sweeps the dirs killed runs left in `os.tmpdir()` ({@link sweepStaleTempDirs};
 * only a prefix of {@link TEMP_DIR_PREFIXES} is ever swept).
 */
export async function makeTempDir(prefix: string, parent: string = tmpdir()): Promise<string> {
  swept ??= sweepStaleTempDirs().catch(() => []);
  await swept;
  return mkdtemp(join(parent, `${prefix}${process.pid}-`));
}

/** Writes `data` to `path` through a temp file in the same directory: write, fsync, rename, fsync dir. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  const dir = dirname(path);
  await removeStaleTemps(path);
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
    await assertLocksHeld();
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
  await removeStaleTemps(path);
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await symlink(target, tmp);
  try {
    await assertLocksHeld();
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
  /**
   * A lock not refreshed for this long counts as left by a killed process and is taken over
   * (ms, default 60 s: a holder's event loop may stall for many seconds under load).
   */
  staleMs?: number;
  /** How often the holder refreshes the lock (ms, default a sixth of `staleMs`). */
  updateMs?: number;
}

/** A lock this process holds: where it is, and what proves it is still ours. */
interface HeldLock {
  lockPath: string;
  what: string;
  ino: number;
  birthtimeMs: number;
  staleMs: number;
  lost: Error | undefined;
  /** Set when `fn` returned: work it left running no longer counts as holding the lock. */
  released: boolean;
}

/** The locks held by the current async call chain (nested withLock calls add to it). */
const heldLocks = new AsyncLocalStorage<HeldLock[]>();

/**
 * Throws COSA_WORKDIR_LOCK_LOST when a lock held by the calling chain was taken over by another
 * process (or is about to be: not refreshed within its stale time). Every atomic write and
 * symlink update calls it right before its rename, so a holder that lost its lock never
 * replaces a file the new holder may be writing.
 */
export async function assertLocksHeld(): Promise<void> {
  for (const l of heldLocks.getStore() ?? []) {
    if (l.released) continue;
    const lost = (why: string, cause?: unknown) =>
      new CosaError('COSA_WORKDIR_LOCK_LOST', `${l.what}: the lock was lost (${why}); nothing was written`, {
        hint: 'another cosa process took the lock over; run the command again',
        ...(cause ? { cause } : {}),
      });
    if (l.lost) throw lost(l.lost.message, l.lost);
    const st = await stat(l.lockPath).catch(() => undefined);
    if (!st) throw lost('its lock directory is gone');
    if (st.ino !== l.ino || st.birthtimeMs !== l.birthtimeMs) throw lost('another process holds it now');
    if (Date.now() - st.mtimeMs > l.staleMs) throw lost(`not refreshed for ${Math.round((Date.now() - st.mtimeMs) / 1000)} s`);
  }
}

/** Who holds a lock: written beside the lock directory, tied to that directory by inode and birth time. */
interface LockOwner {
  pid: number;
  host: string;
  ino: number;
  birthtimeMs: number;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A lock whose holder is a process of this host that no longer exists (SIGKILL, OOM) is marked
 * stale at once (its mtime set to the epoch), so proper-lockfile takes it over without waiting
 * out the stale time. Only when the owner record names the lock directory as it is now: a lock
 * taken meanwhile by a live process is never touched.
 */
async function expireDeadOwner(lockPath: string): Promise<void> {
  const st = await stat(lockPath).catch(() => undefined);
  if (!st) return;
  const owner = await readFile(`${lockPath}.owner`, 'utf8').then((t) => JSON.parse(t) as LockOwner, () => undefined);
  if (!owner || owner.host !== hostname() || owner.ino !== st.ino || owner.birthtimeMs !== st.birthtimeMs || !Number.isInteger(owner.pid)) return;
  if (owner.pid === process.pid || isAlive(owner.pid)) return;
  await utimes(lockPath, 0, 0).catch(() => {});
}

/**
 * Runs `fn` while holding an exclusive lock on `path` (a `.<name>.lock` directory next to it,
 * shared by every cosa process; a lock left by a killed process of this host is taken over at
 * once, any other goes stale after 60 s without a refresh). When
 * the lock is taken over meanwhile, writes made through {@link writeFileAtomic} inside `fn` fail
 * with COSA_WORKDIR_LOCK_LOST instead of the process dying.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  const lockPath = join(dirname(path), `.${basename(path)}.lock`);
  const waitMs = options.waitMs ?? 10 * 60_000;
  const staleMs = Math.max(2_000, options.staleMs ?? 60_000);
  const updateMs = Math.min(Math.floor(staleMs / 2), options.updateMs ?? Math.floor(staleMs / 6));
  const deadline = Date.now() + waitMs;
  const held: HeldLock = { lockPath, what: options.what ?? path, ino: 0, birthtimeMs: 0, staleMs, lost: undefined, released: false };
  let release: (() => Promise<void>) | undefined;
  for (;;) {
    try {
      release = await lockfile.lock(path, {
        lockfilePath: lockPath,
        realpath: false,
        stale: staleMs,
        update: updateMs,
        // proper-lockfile's default throws from a timer, which kills the process.
        onCompromised: (e: Error) => {
          held.lost = e;
        },
      });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
      await expireDeadOwner(lockPath);
      if (Date.now() >= deadline) {
        throw new CosaError('COSA_WORKDIR_LOCKED', `${options.what ?? path} is locked by another cosa process`, {
          hint: 'wait for the other cosa command to finish',
          cause: e,
        });
      }
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  const st = await stat(lockPath);
  held.ino = st.ino;
  held.birthtimeMs = st.birthtimeMs;
  const ownerFile = `${lockPath}.owner`;
  const owner: LockOwner = { pid: process.pid, host: hostname(), ino: st.ino, birthtimeMs: st.birthtimeMs };
  // Named and swept like writeFileAtomic's temps: a holder killed between write and rename leaves
  // a temp the next holder of this lock removes.
  await removeStaleTemps(ownerFile);
  const ownerTmp = join(dirname(ownerFile), `.${basename(ownerFile)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await writeFile(ownerTmp, JSON.stringify(owner)).then(() => rename(ownerTmp, ownerFile)).catch(() => rm(ownerTmp, { force: true }));
  try {
    return await heldLocks.run([...(heldLocks.getStore() ?? []), held], fn);
  } finally {
    held.released = true;
    // A lock taken over by another process is theirs now: releasing it would remove their lock
    // directory. proper-lockfile's next refresh notices the loss and forgets it.
    const ours = await stat(lockPath).then((x) => x.ino === held.ino && x.birthtimeMs === held.birthtimeMs, () => false);
    // The owner record goes with the lock, unless a new holder has written its own meanwhile.
    const record = await readFile(ownerFile, 'utf8').then((t) => JSON.parse(t) as LockOwner, () => undefined);
    if (record?.pid === process.pid && record.ino === held.ino && record.birthtimeMs === held.birthtimeMs) await rm(ownerFile, { force: true });
    if (!held.lost && ours) await release().catch(() => {});
  }
}

/**
 * Reads a file that must be a regular file, without following a symlink at its last component
 * (COSA_PATH_UNSAFE otherwise, naming the path and never showing what a link points to).
 * ENOENT and ENOTDIR pass through unchanged, so callers can treat a missing file as before.
 */
export async function readRegularFile(path: string): Promise<string> {
  const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ELOOP') throw new CosaError('COSA_PATH_UNSAFE', `${path} is a symlink, not a regular file; refusing to read it`, { hint: 'replace it with the file itself' });
    throw e;
  });
  try {
    if (!(await fh.stat()).isFile()) throw new CosaError('COSA_PATH_UNSAFE', `${path} is not a regular file; refusing to read it`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}
