/**
 * OSTree repository operations, each a verb over the `ostree` CLI through {@link run}.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { CommandFailedError, CosaError, type OnProgress } from '@cosa/schema';
import { run } from './_exec.js';
import { gvalueToJson, parseGVariantText, type GValue } from './_gvariant.js';

/** OSTree repository modes cosa uses. */
export type RepoMode = 'archive' | 'bare-user' | 'bare';

/** Options shared by the repo verbs. */
export interface RepoCallOptions {
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

function ostreeError(e: unknown, message: string): never {
  if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
    throw new CosaError('COSA_OSTREE_FAILED', `${message}: ${e.stderr.trim().split('\n').slice(-5).join('\n')}`, { cause: e });
  }
  throw e;
}

async function ostree(repo: string, args: string[], o: RepoCallOptions & { what: string; okExitCodes?: number[] }) {
  try {
    // --repo right after the verb, so a `--` in args ends the options for good.
    return await run(['ostree', args[0]!, `--repo=${repo}`, ...args.slice(1)], {
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      phase: 'ostree',
      streamLines: false,
      ...(o.okExitCodes ? { okExitCodes: o.okExitCodes } : {}),
    });
  } catch (e) {
    ostreeError(e, o.what);
  }
}

/** Reads the mode from a repo's `config` file, or undefined when `dir` holds no repo. */
export async function readRepoMode(dir: string): Promise<RepoMode | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'config'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const m = /^\s*mode\s*=\s*(\S+)/m.exec(text);
  const mode = m?.[1] ?? 'bare';
  return mode === 'archive-z2' ? 'archive' : (mode as RepoMode);
}

/**
 * Creates an OSTree repo at `path` (with parent directories). Idempotent: an existing repo of the
 * same mode is left as is; one of another mode is an error (COSA_OSTREE_FAILED).
 */
export async function initRepo(o: { path: string; mode: RepoMode } & RepoCallOptions): Promise<void> {
  const existing = await readRepoMode(o.path);
  if (existing !== undefined) {
    if (existing !== o.mode) {
      throw new CosaError('COSA_OSTREE_FAILED', `${o.path} is an OSTree repo in mode ${existing}, not ${o.mode}`);
    }
    return;
  }
  await mkdir(o.path, { recursive: true });
  await ostree(o.path, ['init', `--mode=${o.mode}`], { ...o, what: `cannot create the OSTree repo ${o.path}` });
}

/** Sets one key of a repo's config (`ostree config set`), e.g. `archive.zlib-level`. */
export async function setRepoConfig(o: { repo: string; key: string; value: string } & RepoCallOptions): Promise<void> {
  await ostree(o.repo, ['config', 'set', '--', o.key, o.value], { ...o, what: `cannot set ${o.key} in ${o.repo}` });
}

/** Options of {@link commit}. */
export interface CommitOptions extends RepoCallOptions {
  repo: string;
  /** Ref to commit on (moved to the new commit). */
  branch: string;
  /** Directory holding the tree. */
  tree: string;
  subject?: string;
  /** Commit metadata strings, e.g. `{version: '1.0'}`. */
  metadata?: Record<string, string>;
  /** Don't write a commit when the tree equals the branch's current commit. */
  skipIfUnchanged?: boolean;
  /** Commit timestamp (default now). */
  timestamp?: Date;
  /** Parent commit (default the branch's current commit); `'none'` for no parent. */
  parent?: string;
  /** `false` skips fsync (`--fsync=false`): much faster, fine for scratch repos under tmp/. */
  fsync?: boolean;
}

/** The result of {@link commit}. */
export interface CommitResult {
  commit: string;
  /** False when the branch already pointed at this commit (`skipIfUnchanged` found the tree unchanged). */
  changed: boolean;
}

/**
 * Commits a directory tree on `branch`: no xattrs, files owned by uid/gid 0 (forced when not
 * running as root), metadata as strings. The ref moves only when the commit succeeded.
 */
export async function commit(o: CommitOptions): Promise<CommitResult> {
  const before = await revParse({ repo: o.repo, ref: o.branch, ...(o.signal ? { signal: o.signal } : {}) });
  const args = ['commit', `--branch=${o.branch}`, `--tree=dir=${o.tree}`, '--no-xattrs'];
  if (process.getuid?.() !== 0) args.push('--owner-uid=0', '--owner-gid=0');
  args.push(`--subject=${o.subject ?? ''}`);
  for (const [k, v] of Object.entries(o.metadata ?? {})) args.push(`--add-metadata-string=${k}=${v}`);
  if (o.skipIfUnchanged) args.push('--skip-if-unchanged');
  if (o.timestamp) args.push(`--timestamp=${o.timestamp.toISOString().replace(/\.\d{3}Z$/, 'Z')}`);
  if (o.parent) args.push(`--parent=${o.parent}`);
  if (o.fsync === false) args.push('--fsync=false');
  const r = await ostree(o.repo, args, { ...o, what: `cannot commit ${o.tree} on ${o.branch}` });
  const sha = printedChecksum(r.stdout);
  return { commit: sha, changed: before !== sha };
}

/** The checksum `ostree commit` printed (its last line). */
function printedChecksum(stdout: string): string {
  const sha = stdout.trim().split('\n').pop() ?? '';
  if (!/^[0-9a-f]{64}$/.test(sha)) throw new CosaError('COSA_OSTREE_FAILED', `ostree commit printed no checksum: ${stdout}`);
  return sha;
}

/** Options of {@link recommit}. */
export interface RecommitOptions extends RepoCallOptions {
  repo: string;
  /** Ref to commit on (moved to the new commit). */
  branch: string;
  /** The commit whose tree the new commit reuses; it becomes the parent. */
  from: string;
  subject?: string;
  /** Metadata strings set anew (e.g. `version`); every other key of `from` is kept. */
  metadata?: Record<string, string>;
  /** `false` skips fsync. */
  fsync?: boolean;
}

/**
 * A new commit on `branch` with exactly the tree of `from` (no file is read or written, it takes
 * well under a second), `from` as its parent, `from`'s metadata kept except the keys given anew.
 * For a forced rebuild whose inputs did not change: a new version needs a new commit, not a new tree.
 */
export async function recommit(o: RecommitOptions): Promise<string> {
  const sig = o.signal ? { signal: o.signal } : {};
  const from = await showCommit({ repo: o.repo, rev: o.from, ...sig });
  const fresh = o.metadata ?? {};
  const args = ['commit', `--branch=${o.branch}`, `--tree=ref=${from.commit}`, `--parent=${from.commit}`, `--subject=${o.subject ?? from.subject}`];
  // ostree writes its own bindings of the new commit (ref, collection).
  const own = new Set(['ostree.ref-binding', 'ostree.collection-binding']);
  for (const k of Object.keys(from.metadata).sort()) if (!(k in fresh) && !own.has(k)) args.push(`--keep-metadata=${k}`);
  for (const [k, v] of Object.entries(fresh)) args.push(`--add-metadata-string=${k}=${v}`);
  if (o.fsync === false) args.push('--fsync=false');
  const r = await ostree(o.repo, args, { ...o, what: `cannot commit the tree of ${from.commit} on ${o.branch}` });
  return printedChecksum(r.stdout);
}

/** {@link commit} into a repo created as bare-user when missing. */
export async function commitTree(o: CommitOptions): Promise<CommitResult> {
  await initRepo({ path: o.repo, mode: (await readRepoMode(o.repo)) ?? 'bare-user' });
  return commit(o);
}

/** Options of {@link commitToArchive}. */
export interface CommitToArchiveOptions extends CommitOptions {
  /** A bare-user repo to commit into first (created when missing); `repo` is the archive repo. */
  stagingRepo: string;
}

/**
 * The fast way to get a commit into an archive repo: commit into a bare-user staging repo (no
 * zlib, ~4× faster) and `pull-local` the result into the archive repo, moving `branch` there too.
 */
export async function commitToArchive(o: CommitToArchiveOptions): Promise<CommitResult> {
  await initRepo({ path: o.stagingRepo, mode: 'bare-user' });
  await initRepo({ path: o.repo, mode: 'archive' });
  // Stage on top of the archive repo's current commit so --skip-if-unchanged and the parent agree.
  const current = await revParse({ repo: o.repo, ref: o.branch });
  if (current) {
    await pullLocal({ repo: o.stagingRepo, srcRepo: o.repo, revs: [current], ...(o.signal ? { signal: o.signal } : {}) });
    await setRef({ repo: o.stagingRepo, ref: o.branch, rev: current });
  }
  const r = await commit({ ...o, repo: o.stagingRepo });
  await pullLocal({ repo: o.repo, srcRepo: o.stagingRepo, refs: [o.branch], ...(o.signal ? { signal: o.signal } : {}) });
  return r;
}

/**
 * Resolves a ref (or a rev such as `ref^`, or a checksum) to a commit checksum; undefined when the
 * ref or the commit object does not exist.
 */
export async function revParse(o: { repo: string; ref: string } & RepoCallOptions): Promise<string | undefined> {
  if (/^[0-9a-f]{64}$/.test(o.ref)) {
    // ostree rev-parse echoes any checksum; check that the commit object is there.
    if (!(await readRepoMode(o.repo))) throw new CosaError('COSA_OSTREE_FAILED', `${o.repo} is not an OSTree repo`);
    const obj = path.join(o.repo, 'objects', o.ref.slice(0, 2), `${o.ref.slice(2)}.commit`);
    return (await stat(obj).then(() => true, () => false)) ? o.ref : undefined;
  }
  if (isShortHex(o.ref)) {
    // ostree takes a short hex string as an abbreviated checksum before it looks for a ref of that
    // name: build id `1` would resolve to whichever commit starts with 1, or fail as "not unique".
    const head = await localRef(o.repo, o.ref);
    if (head) return head;
  }
  // `--`: a ref (a build id from a store) never reaches ostree as an option.
  const r = await ostree(o.repo, ['rev-parse', '--', o.ref], { ...o, what: `cannot resolve ${o.ref}`, okExitCodes: [0, 1] });
  if (r.exitCode === 0) return r.stdout.trim();
  // "not unique": a short hex name that is no ref and abbreviates several commits names none.
  if (/Refspec .* (not found|not unique)|has no parent/i.test(r.stderr)) return undefined;
  throw new CosaError('COSA_OSTREE_FAILED', `cannot resolve ${o.ref} in ${o.repo}: ${r.stderr.trim()}`);
}

/**
 * Whether ostree could take `name` for an abbreviated commit checksum: it tries that before it
 * looks for a ref of that name, so such a ref (build id `1`) is read and written here by its file.
 */
function isShortHex(name: string): boolean {
  return /^[0-9a-f]{1,63}$/.test(name);
}

/** The commit a local ref (`refs/heads/<ref>`) points at, read from its file; undefined when there is no such ref. */
async function localRef(repo: string, ref: string): Promise<string | undefined> {
  const text = await readFile(path.join(repo, 'refs', 'heads', ref), 'utf8').catch(() => undefined);
  const sha = text?.trim();
  return sha && /^[0-9a-f]{64}$/.test(sha) ? sha : undefined;
}

/** `rev` as the ostree CLI may take it: a short hex name that is a local ref becomes that ref's checksum (see {@link revParse}). */
async function cliRev(repo: string, rev: string): Promise<string> {
  return isShortHex(rev) ? ((await localRef(repo, rev)) ?? rev) : rev;
}

/** A commit as {@link showCommit} reports it. */
export interface CommitInfo {
  commit: string;
  parent?: string;
  subject: string;
  body: string;
  timestamp: Date;
  /** The `version` metadata string, when set. */
  version?: string;
  /** Commit metadata as JSON values (byte arrays as hex strings). */
  metadata: Record<string, unknown>;
}

function hex(v: GValue | undefined): string | undefined {
  if (v instanceof Uint8Array && v.length > 0) return Buffer.from(v).toString('hex');
  return undefined;
}

/** Reads a commit object: subject, parent, timestamp and its metadata. */
export async function showCommit(o: { repo: string; rev: string } & RepoCallOptions): Promise<CommitInfo> {
  const sha = await revParse({ repo: o.repo, ref: o.rev, ...(o.signal ? { signal: o.signal } : {}) });
  if (!sha) throw new CosaError('COSA_OSTREE_FAILED', `no commit ${o.rev} in ${o.repo}`);
  const r = await ostree(o.repo, ['show', '--raw', sha], { ...o, what: `cannot read commit ${sha}` });
  const line = r.stdout.split('\n').find((l) => l.startsWith('('));
  if (!line) throw new CosaError('COSA_OSTREE_FAILED', `ostree show --raw printed no commit variant for ${sha}`);
  let v: GValue;
  try {
    v = parseGVariantText(r.stdout.slice(r.stdout.indexOf(line)).trim());
  } catch (e) {
    throw new CosaError('COSA_OSTREE_FAILED', `cannot parse commit ${sha}: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(v) || v.length < 7) throw new CosaError('COSA_OSTREE_FAILED', `unexpected commit variant for ${sha}`);
  const [meta, parent, , subject, body, ts] = v;
  const metadata = (gvalueToJson(meta ?? {}) ?? {}) as Record<string, unknown>;
  const info: CommitInfo = {
    commit: sha,
    subject: typeof subject === 'string' ? subject : '',
    body: typeof body === 'string' ? body : '',
    timestamp: new Date(Number(ts) * 1000),
    metadata,
  };
  const p = hex(parent);
  if (p) info.parent = p;
  if (typeof metadata.version === 'string') info.version = metadata.version;
  return info;
}

/** The commit's metadata as JSON: what a build's `commitmeta.json` holds. */
export async function readCommitMeta(o: { repo: string; rev: string } & RepoCallOptions): Promise<Record<string, unknown>> {
  return (await showCommit(o)).metadata;
}

/** Lists refs (optionally only those under `prefix`, returned with the prefix). */
export async function listRefs(o: { repo: string; prefix?: string } & RepoCallOptions): Promise<string[]> {
  const r = await ostree(o.repo, ['refs', ...(o.prefix ? [o.prefix] : [])], { ...o, what: 'cannot list refs' });
  const refs = r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  return (o.prefix ? refs.map((x) => `${o.prefix!.replace(/\/$/, '')}/${x}`) : refs).sort();
}

/** Points `ref` at `rev` (created or moved). */
export async function setRef(o: { repo: string; ref: string; rev: string } & RepoCallOptions): Promise<void> {
  if (isShortHex(o.ref)) return setHexRef(o);
  await ostree(o.repo, ['refs', '--force', `--create=${o.ref}`, '--', await cliRev(o.repo, o.rev)], { ...o, what: `cannot set ${o.ref} to ${o.rev}` });
}

/**
 * `ostree refs --create` first resolves the new name, and a short hex name (build id `1`) that
 * abbreviates several commits fails there as "not unique". Such a ref is written the way ostree
 * writes a local ref: `refs/heads/<ref>` holding the checksum, replaced atomically from the repo's
 * own tmp/ (not writeFileAtomic: its temp file sits beside the target, where a leftover would be
 * listed as a ref).
 */
async function setHexRef(o: { repo: string; ref: string; rev: string } & RepoCallOptions): Promise<void> {
  const sha = await revParse({ repo: o.repo, ref: o.rev, ...(o.signal ? { signal: o.signal } : {}) });
  if (!sha) throw new CosaError('COSA_OSTREE_FAILED', `cannot set ${o.ref} to ${o.rev}: no such commit in ${o.repo}`);
  const tmp = path.join(o.repo, 'tmp', `cosa-ref-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(`${sha}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await mkdir(path.join(o.repo, 'refs', 'heads'), { recursive: true });
    await rename(tmp, path.join(o.repo, 'refs', 'heads', o.ref));
  } catch (e) {
    await rm(tmp, { force: true });
    throw new CosaError('COSA_OSTREE_FAILED', `cannot set ${o.ref} to ${o.rev} in ${o.repo}: ${(e as Error).message}`, { cause: e });
  }
}

/** Deletes `ref` (a missing ref is not an error). */
export async function deleteRef(o: { repo: string; ref: string } & RepoCallOptions): Promise<void> {
  // A ref, not whatever the name resolves to: a short hex name can abbreviate a commit.
  const hex = isShortHex(o.ref);
  if (hex && !(await readRepoMode(o.repo))) throw new CosaError('COSA_OSTREE_FAILED', `cannot delete ${o.ref}: ${o.repo} is not an OSTree repo`);
  const exists = hex ? (await localRef(o.repo, o.ref)) !== undefined : (await revParse(o)) !== undefined;
  if (!exists) return;
  await ostree(o.repo, ['refs', '--delete', '--', o.ref], { ...o, what: `cannot delete ${o.ref}` });
}

/** Options of {@link pullLocal}. */
export interface PullLocalOptions extends RepoCallOptions {
  repo: string;
  srcRepo: string;
  /** Refs to pull (created in `repo` too). */
  refs?: string[];
  /** Commit checksums to pull (no ref is written). */
  revs?: string[];
  /** Parent commits to pull as well (default 0). */
  depth?: number;
  /**
   * Trust the source repo (one of cosa's own): skip re-verifying checksums, and let ostree
   * hardlink objects when both repos have the same mode on one file system (default false).
   */
  trusted?: boolean;
  /**
   * Check that each pulled ref is among the commit's `ostree.ref-binding` (default false: local
   * pulls between cosa's own repos ship a commit under another ref than it was composed on).
   */
  verifyBindings?: boolean;
}

/** Copies commits (and their objects) from another local repo. */
export async function pullLocal(o: PullLocalOptions): Promise<void> {
  const what = [...(o.refs ?? []), ...(o.revs ?? [])];
  if (what.length === 0) throw new TypeError('pullLocal(): refs or revs required');
  // pull-local resolves a ref's name in the destination too, where a short hex name (build id
  // `1`) can abbreviate several commits: such refs are pulled by checksum and written after.
  const hexRefs: [string, string][] = [];
  for (const ref of (o.refs ?? []).filter((r) => isShortHex(r))) {
    const sha = await localRef(o.srcRepo, ref);
    if (!sha) throw new CosaError('COSA_OSTREE_FAILED', `cannot pull ${ref} from ${o.srcRepo}: no such ref`);
    hexRefs.push([ref, sha]);
  }
  const pulled = [...(o.refs ?? []).filter((r) => !hexRefs.some(([h]) => h === r)), ...hexRefs.map(([, sha]) => sha), ...(o.revs ?? [])];
  const args = ['pull-local'];
  if (!o.trusted) args.push('--untrusted');
  if (!o.verifyBindings) args.push('--disable-verify-bindings');
  if (o.depth !== undefined) args.push(`--depth=${o.depth}`);
  args.push(o.srcRepo, ...pulled);
  await ostree(o.repo, args, { ...o, what: `cannot pull ${what.join(', ')} from ${o.srcRepo}` });
  for (const [ref, sha] of hexRefs) {
    if (o.verifyBindings) {
      const bound = (await showCommit({ repo: o.repo, rev: sha })).metadata['ostree.ref-binding'];
      if (Array.isArray(bound) && !bound.includes(ref)) throw new CosaError('COSA_OSTREE_FAILED', `cannot pull ${ref} from ${o.srcRepo}: commit ${sha} is bound to ${bound.join(', ')}, not ${ref}`);
    }
    await setHexRef({ repo: o.repo, ref, rev: sha, ...(o.signal ? { signal: o.signal } : {}) });
  }
}

/** Deletes unreachable objects; `refsOnly` keeps only what refs reach, `depth` limits history kept. */
export async function prune(o: { repo: string; refsOnly?: boolean; depth?: number } & RepoCallOptions): Promise<void> {
  const args = ['prune'];
  if (o.refsOnly) args.push('--refs-only');
  if (o.depth !== undefined) args.push(`--depth=${o.depth}`);
  await ostree(o.repo, args, { ...o, what: 'cannot prune' });
}

/**
 * Bytes of a commit's content once checked out: regular files counted once per distinct object
 * (a deployment hardlinks them), plus 4 KiB per directory. For disk-size estimation.
 */
export async function commitSize(o: { repo: string; rev: string } & RepoCallOptions): Promise<number> {
  const r = await ostree(o.repo, ['ls', '-R', '-C', '--', await cliRev(o.repo, o.rev)], { ...o, what: `cannot list ${o.rev}` });
  const seen = new Set<string>();
  let bytes = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /^([-dl])\S*\s+\d+\s+\d+\s+(\d+)\s+([0-9a-f]{64})/.exec(line);
    if (!m) continue;
    if (m[1] === 'd') bytes += 4096;
    else if (m[1] === '-' && !seen.has(m[3]!)) {
      seen.add(m[3]!);
      bytes += Number(m[2]);
    }
  }
  return bytes;
}

/** True when `dir` exists and is an OSTree repo. */
export async function isRepo(dir: string): Promise<boolean> {
  try {
    return (await stat(path.join(dir, 'config'))).isFile() && (await stat(path.join(dir, 'objects'))).isDirectory();
  } catch {
    return false;
  }
}

/** Regenerates the repo's summary file (`ostree summary -u`): what HTTP clients read to find refs. */
export async function updateSummary(o: { repo: string } & RepoCallOptions): Promise<void> {
  await ostree(o.repo, ['summary', '-u'], { ...o, what: `cannot update the summary of ${o.repo}` });
}

/** One changed path between two commits, as `ostree diff` reports it. */
export interface CommitFileChange {
  /** `A` added, `M` modified (content or metadata), `D` deleted. */
  status: 'A' | 'M' | 'D';
  /** Absolute path inside the commit. */
  path: string;
}

/**
 * The file-level changes from commit `from` to commit `to` (both in `repo`), sorted by path:
 * `ostree diff` with its `A`/`M`/`D` lines.
 */
export async function diffCommits(o: { repo: string; from: string; to: string } & RepoCallOptions): Promise<CommitFileChange[]> {
  const r = await ostree(o.repo, ['diff', await cliRev(o.repo, o.from), await cliRev(o.repo, o.to)], { ...o, what: `cannot diff ${o.from} and ${o.to}` });
  const out: CommitFileChange[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^([AMD])\s+(\/.*)$/.exec(line);
    if (m) out.push({ status: m[1] as 'A' | 'M' | 'D', path: m[2]! });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Checks out one directory of a commit (`subpath`, absolute inside the commit) into `dest` in
 * user mode (no ownership, no xattrs). Resolves false when the commit has no such directory.
 */
export async function checkoutSubpath(o: { repo: string; rev: string; subpath: string; dest: string } & RepoCallOptions): Promise<boolean> {
  const r = await ostree(o.repo, ['checkout', '--user-mode', `--subpath=${o.subpath}`, await cliRev(o.repo, o.rev), o.dest], {
    ...o, what: `cannot check out ${o.subpath} of ${o.rev}`, okExitCodes: [0, 1],
  });
  if (r.exitCode === 0) return true;
  if (/No such file or directory|not found/i.test(r.stderr)) return false;
  throw new CosaError('COSA_OSTREE_FAILED', `cannot check out ${o.subpath} of ${o.rev} from ${o.repo}: ${r.stderr.trim()}`);
}

/**
 * `ostree ls -R` of a commit: one line per entry (type+mode, uid, gid, size, path); with
 * `checksums` each line also names the entry's object (`-C`), with `xattrs` its extended
 * attributes (`-X`).
 */
export async function listCommitTree(o: { repo: string; rev: string; checksums?: boolean; xattrs?: boolean } & RepoCallOptions): Promise<string[]> {
  const flags = [...(o.checksums ? ['-C'] : []), ...(o.xattrs ? ['-X'] : [])];
  const r = await ostree(o.repo, ['ls', '-R', ...flags, '--', await cliRev(o.repo, o.rev)], { ...o, what: `cannot list ${o.rev}` });
  return r.stdout.split('\n').filter((l) => l.length > 0);
}

/** `ostree --version` of the host: the whole text (version and the `- feature` lines it was built with). */
export async function ostreeVersionText(o: RepoCallOptions = {}): Promise<string> {
  return (await run(['ostree', '--version'], { ...(o.signal ? { signal: o.signal } : {}) })).stdout;
}
