/**
 * The build's OSTree artifact as the original ships it: `<name>-<id>-ostree.<arch>.tar`, an
 * uncompressed tar of an **archive-mode** repo holding the commit and its ref (what
 * `ostree init --mode=archive; ostree pull-local; tar -C repo -cf x.tar .` gives).
 */
import { constants as fsConstants, createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readFile, rename, rm, utimes } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { CosaError, hashFile, type OnProgress } from '@cosa/schema';
import { run } from './_exec.js';
import { initRepo, listRefs, pullLocal, revParse, setRef, setRepoConfig, showCommit, type RepoMode } from './repo.js';

/** Options of {@link writeRepoTar}. */
export interface WriteRepoTarOptions {
  /** Repo holding the commit (any mode). */
  repo: string;
  /** Commit (or ref) to ship. */
  rev: string;
  /** Ref written in the shipped repo, pointing at the commit. */
  ref: string;
  /** The tar file to write (atomically: temp file + rename). */
  output: string;
  /** Scratch space for the archive repo (removed afterwards). */
  tmpDir: string;
  /**
   * A persistent archive-mode repo used as a cache (created when missing): the commit is pulled
   * into it first, so only objects it lacks are compressed; the shipped repo then hardlinks them.
   * Rebuilds of unchanged or slightly changed trees skip nearly all zlib work.
   */
  archiveCache?: string;
  /**
   * zlib level (1–9) of the objects compressed for this tar (default {@link ARCHIVE_ZLIB_LEVEL}),
   * set as `archive.zlib-level` on the repo that compresses them (the cache, never the shipped
   * repo). Any level gives a valid archive repo; objects already in the cache keep theirs.
   */
  zlibLevel?: number;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** What {@link writeRepoTar} wrote. */
export interface RepoTarResult {
  path: string;
  size: number;
  sha256: string;
}

/**
 * The zlib level cosa compresses archive objects with. ostree's default is 6 (what the original's
 * tars hold); level 1 costs a fraction of the CPU for a slightly bigger tar, and every ostree
 * reads either (docs/benchmarks.md, "Cold build CPU").
 */
export const ARCHIVE_ZLIB_LEVEL = 1;

/**
 * Writes the commit `rev` as a tar of an archive-mode repo with `ref` pointing at it
 * ({@link tarDirectory}: entries sorted, owned by 0:0, every mtime the commit's, so the same
 * commit gives the same bytes).
 */
export async function writeRepoTar(o: WriteRepoTarOptions): Promise<RepoTarResult> {
  const call = { ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) };
  await mkdir(o.tmpDir, { recursive: true });
  const work = await mkdtemp(path.join(o.tmpDir, 'repo-tar-'));
  try {
    const commit = await revParse({ repo: o.repo, ref: o.rev, ...call });
    if (!commit) throw new CosaError('COSA_OSTREE_FAILED', `no commit ${o.rev} in ${o.repo}`);
    // Objects are compressed into the cache (a scratch one without archiveCache), then hardlinked
    // into the shipped repo: its config stays the one `ostree init --mode=archive` writes.
    const cache = o.archiveCache ?? path.join(work, 'cache');
    await initRepo({ path: cache, mode: 'archive', ...call });
    await setZlibLevel(cache, o.zlibLevel ?? ARCHIVE_ZLIB_LEVEL, call);
    await pullLocal({ repo: cache, srcRepo: o.repo, revs: [commit], trusted: true, ...call });
    const repo = path.join(work, 'repo');
    await initRepo({ path: repo, mode: 'archive', ...call });
    await pullLocal({ repo, srcRepo: cache, revs: [commit], trusted: true, ...call });
    await setRef({ repo, ref: o.ref, rev: commit, ...call });
    // Every entry gets the commit's timestamp: the same commit always gives the same tar bytes.
    const mtime = (await showCommit({ repo, rev: commit, ...call })).timestamp;

    return await tarDirectory({ dir: repo, output: o.output, mtime, ...call });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Sets `archive.zlib-level` of an archive repo (only when it differs: no ostree call otherwise). */
async function setZlibLevel(repo: string, level: number, call: { signal?: AbortSignal; onProgress?: OnProgress }): Promise<void> {
  if (!Number.isInteger(level) || level < 1 || level > 9) throw new CosaError('COSA_USAGE', `zlib level ${level} is not an integer from 1 to 9`);
  const config = await readFile(path.join(repo, 'config'), 'utf8');
  const current = /^\[archive\][^[]*^zlib-level\s*=\s*(\d+)/m.exec(config)?.[1];
  if (current === String(level)) return;
  await setRepoConfig({ repo, key: 'archive.zlib-level', value: String(level), ...call });
}

/** Options of {@link tarDirectory}. */
export interface TarDirectoryOptions {
  /** Directory to archive; entries are named like `tar -C dir -cf out .` names them (`./…`). */
  dir: string;
  /** The tar file to write (atomically: temp file + rename). */
  output: string;
  /** mtime of every entry (default: each file's own). */
  mtime?: Date;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/**
 * Writes an uncompressed tar of `dir` with GNU tar (the format the original's `tar -cf` writes):
 * entries sorted by name, owned by 0:0 without user or group names, no xattrs or ACLs, hard links
 * stored as files; written to a temp file, hashed (from the page cache it was just written to),
 * then renamed into place. GNU tar packs a 300 MB repo with a tenth of the CPU a JavaScript tar
 * writer needs (docs/benchmarks.md, "Cold build CPU").
 */
export async function tarDirectory(o: TarDirectoryOptions): Promise<RepoTarResult> {
  await mkdir(path.dirname(o.output), { recursive: true });
  const partial = `${o.output}.partial-${process.pid}`;
  try {
    const argv = [
      'tar', '--create', `--file=${partial}`, `--directory=${o.dir}`, '--format=gnu', '--sort=name',
      '--owner=0', '--group=0', '--numeric-owner', '--hard-dereference', '--no-acls', '--no-xattrs', '--no-selinux',
      ...(o.mtime ? [`--mtime=@${Math.floor(o.mtime.getTime() / 1000)}`] : []),
      '.',
    ];
    await run(argv, { ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}), streamLines: false });
    const h = await hashFile(partial, { signal: o.signal, onProgress: o.onProgress, name: path.basename(o.output) });
    await rename(partial, o.output);
    return { path: o.output, ...h };
  } finally {
    await rm(partial, { force: true });
  }
}

/** Options of {@link importRepoTar}. */
export interface ImportRepoTarOptions {
  /** A tar written by {@link writeRepoTar} (or the original cosa). */
  tar: string;
  /** Repo to import into (created in `mode` when missing, default bare-user). */
  repo: string;
  mode?: RepoMode;
  /** Scratch space for the extracted repo (removed afterwards). */
  tmpDir: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/**
 * Imports the commit of a repo tar into `repo` (so a fetched build can be the parent of the next):
 * extracts it streamed into `tmpDir`, then pull-locals its ref(s). Returns the first ref (sorted)
 * and its commit.
 */
export async function importRepoTar(o: ImportRepoTarOptions): Promise<{ commit: string; ref: string }> {
  const sig = o.signal ? { signal: o.signal } : {};
  await mkdir(o.tmpDir, { recursive: true });
  const work = await mkdtemp(path.join(o.tmpDir, 'repo-import-'));
  try {
    const dest = path.join(work, 'repo');
    await mkdir(dest);
    await extractTar(o.tar, dest, o.signal);
    const refs = await listRefs({ repo: dest, ...sig }).catch((e: unknown) => {
      throw new CosaError('COSA_OSTREE_FAILED', `${o.tar} does not hold an OSTree repo`, { cause: e });
    });
    const ref = refs[0];
    if (!ref) throw new CosaError('COSA_OSTREE_FAILED', `${o.tar} holds an OSTree repo without any ref`);
    const commit = (await revParse({ repo: dest, ref, ...sig }))!;
    await initRepo({ path: o.repo, mode: o.mode ?? 'bare-user', ...sig });
    await pullLocal({ repo: o.repo, srcRepo: dest, refs, ...sig });
    return { commit, ref };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function safeJoin(root: string, name: string, tarPath: string): string {
  const clean = path.posix.normalize(name.replace(/^(\.\/)+/, ''));
  if (clean === '.' || clean === './' || clean === '') return root;
  if (clean.startsWith('/') || clean === '..' || clean.startsWith('../')) {
    throw new CosaError('COSA_PATH_UNSAFE', `${tarPath}: entry ${name} points outside the archive`);
  }
  return path.join(root, clean);
}

/** Files are written only where nothing exists yet, and never through a symlink. */
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/**
 * Extracts a repo tar. An archive-mode repo holds only directories and regular files, so every
 * other entry type (symlinks, hardlinks, devices, fifos) is refused: a hostile tar could
 * otherwise plant a link and write through it. Files are created exclusively without following
 * links, and modes are reduced to 0755/0644 (no setuid, setgid, sticky or world-write bits).
 * `dest` must be an empty directory. Exported for tests; {@link importRepoTar} is the API.
 */
export async function extractTar(file: string, dest: string, signal: AbortSignal | undefined): Promise<void> {
  const extract = tar.extract();
  const dirTimes: [string, Date][] = [];
  const consume = (async () => {
    for await (const entry of extract) {
      signal?.throwIfAborted();
      const h = entry.header;
      const target = safeJoin(dest, h.name, file);
      switch (h.type) {
        case 'directory':
          await mkdir(target, { recursive: true, mode: 0o755 });
          if (!(await lstat(target)).isDirectory()) throw unsafeEntry(file, h.name, 'is not a directory');
          if (h.mtime) dirTimes.push([target, h.mtime]);
          entry.resume();
          break;
        case 'file':
        case 'contiguous-file': {
          await mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
          const mode = (h.mode ?? 0o644) & 0o111 ? 0o755 : 0o644;
          const fh = await open(target, CREATE_FLAGS, mode).catch((e: unknown) => {
            const code = (e as NodeJS.ErrnoException).code;
            if (code === 'EEXIST' || code === 'ELOOP' || code === 'ENOTDIR') throw unsafeEntry(file, h.name, `cannot be created (${code})`, e);
            throw e;
          });
          await pipeline(entry, fh.createWriteStream());
          if (h.mtime) await utimes(target, h.mtime, h.mtime);
          break;
        }
        default:
          entry.resume();
          throw unsafeEntry(file, h.name, `is a ${h.type ?? 'unknown'} entry; an archive-mode OSTree repo holds only directories and regular files`);
      }
    }
  })().catch((e: unknown) => {
    extract.destroy(e as Error);
    throw e;
  });
  await Promise.all([pipeline(createReadStream(file), extract, signal ? { signal } : {}), consume]);
  for (const [d, t] of dirTimes.reverse()) await utimes(d, t, t);
}

function unsafeEntry(tarPath: string, name: string, why: string, cause?: unknown): CosaError {
  return new CosaError('COSA_PATH_UNSAFE', `${tarPath}: entry ${name} ${why}`, { hint: 'the OSTree tar is corrupt or hostile; fetch it again from a store you trust', ...(cause ? { cause } : {}) });
}
