/**
 * One description of a compose's inputs, made by {@link describeInputs} for every composer: the
 * flattened treefile, every config file it references, the overlay.d layers, overrides/rootfs and
 * overrides/rpm, the resolved package set, the composer and its version, arch and variant. The
 * input hash is sha256 over its canonical JSON ({@link inputsHash}); the composer receives the
 * same object (`ComposeOptions.inputs`), so what is hashed is what is built.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { CosaError, stableStringify, writeFileAtomic } from '@cosa/schema';
import type { ComposeOptions, Composer, PackageInfo } from './composer.js';
import { resolveInside } from './postprocess.js';

/** Bumped when the description's shape changes (an old record then always differs). */
export const INPUTS_SCHEMA = 1;

/** One entry of a described file tree: type, mode, and content hash or link target. */
export type TreeEntry =
  | { type: 'file'; mode: string; size: number; sha256: string }
  | { type: 'dir'; mode: string }
  | { type: 'symlink'; target: string }
  /** A device node, fifo or socket: recorded, never read. */
  | { type: 'special'; mode: string };

/** A file tree as `relative path → entry`, sorted by path. */
export type TreeDescription = Record<string, TreeEntry>;

/** A package of the resolved set, as the description records it. */
export interface DescribedPackage {
  name: string;
  /** `[epoch:]version[-release]`. */
  evr: string;
  arch: string;
  checksum?: string;
}

/** An overlay.d layer in the order it is applied. */
export interface DescribedOverlay {
  /** `NNname`: the directory under overlay.d/ (committed as `overlay/NNname` for rpm-ostree). */
  name: string;
  tree: TreeDescription;
}

/** The description of a compose's inputs (saved as `builds/<id>/<arch>/inputs.json` by core). */
export interface ComposeInputs {
  schema: number;
  composer: { name: string; version: string };
  arch: string;
  /** The config variant, or null. */
  variant: string | null;
  /** The flattened treefile (includes, variables and arch applied). */
  manifest: unknown;
  /** Every config file the treefile reads or references, by path relative to the config dir. */
  files: TreeDescription;
  /** The overlay.d layers applied, in order. */
  overlays: DescribedOverlay[];
  /** `overrides/rootfs/` and the RPMs of `overrides/rpm/`. */
  overrides: { rootfs: TreeDescription; rpm: TreeDescription };
  /** The resolved package set, sorted by name and arch. */
  packages: DescribedPackage[];
  /** Composer-specific inputs (Debian: the sources and the initramfs assets digest). */
  extra: Record<string, unknown>;
}

/** What a composer adds to the description: the package set it would install, and its extras. */
export interface ResolvedInputs {
  packages: PackageInfo[];
  extra?: Record<string, unknown>;
}

/** sha256 (hex) over the canonical JSON of a description: the input hash. */
export function inputsHash(d: ComposeInputs): string {
  return createHash('sha256').update(stableStringify(d)).digest('hex');
}

/** `[epoch:]version[-release]` of a package. */
export function packageEvr(p: { epoch?: string | undefined; version: string; release?: string | undefined }): string {
  return `${p.epoch && p.epoch !== '0' ? `${p.epoch}:` : ''}${p.version}${p.release ? `-${p.release}` : ''}`;
}

/**
 * A cache of file content hashes keyed by path, with the file's device, inode, size, mtime and
 * ctime (ns). ctime cannot be set from user space, so a rewrite that restores mtime (cp -p, tar,
 * rsync) still misses the cache. Entries whose mtime or ctime is within {@link RACY_MS} of the
 * moment they were hashed are not kept ("racy" files: a write in the same clock tick would not
 * change the stamp), as git does for its index.
 */
export class FileHashCache {
  private entries = new Map<string, { k: string; h: string }>();
  /** Paths looked up since loading: only those are saved (files no longer inputs drop out). */
  private seen = new Set<string>();
  private dirty = false;
  /**
   * @param file where the cache is kept (JSON), or undefined for an in-memory cache.
   * @param racyMs files stamped this recently are not cached (default {@link RACY_MS}).
   */
  constructor(readonly file?: string, private readonly racyMs: number = RACY_MS) {}

  /** Loads the cache file (a missing or unreadable cache is empty). */
  async load(): Promise<this> {
    if (!this.file) return this;
    const text = await readFile(this.file, 'utf8').catch(() => undefined);
    try {
      const data = text ? (JSON.parse(text) as { v?: number; entries?: Record<string, { k: string; h: string }> }) : undefined;
      if (data?.v === 1 && data.entries) this.entries = new Map(Object.entries(data.entries));
    } catch {
      this.entries = new Map();
    }
    return this;
  }

  /** The sha256 of `abs`, from the cache when its stamp matches. */
  async hash(abs: string, st: import('node:fs').BigIntStats): Promise<string> {
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    this.seen.add(abs);
    const hit = this.entries.get(abs);
    if (hit && hit.k === key) return hit.h;
    const h = await fileSha256(abs);
    const now = BigInt(Date.now()) * 1_000_000n;
    const racy = BigInt(this.racyMs) * 1_000_000n;
    if (now - st.mtimeNs >= racy && now - st.ctimeNs >= racy) {
      this.entries.set(abs, { k: key, h });
      this.dirty = true;
    } else if (hit) {
      this.entries.delete(abs);
      this.dirty = true;
    }
    return h;
  }

  /** Writes the cache back (atomically) when it changed, keeping only the files looked up. */
  async save(): Promise<void> {
    const kept = [...this.entries].filter(([p]) => this.seen.has(p));
    if (!this.file || (!this.dirty && kept.length === this.entries.size)) return;
    await writeFileAtomic(this.file, JSON.stringify({ v: 1, entries: Object.fromEntries(kept) }));
    this.dirty = false;
  }
}

/** A file stamped within this many ms of being hashed is not cached. */
export const RACY_MS = 2000;

async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

const mode = (m: bigint): string => (Number(m) & 0o7777).toString(8).padStart(4, '0');

/** Describes one path (a file, link or directory, recursively) into `out` under `rel`. */
async function describePath(abs: string, rel: string, out: TreeDescription, cache: FileHashCache, skip?: (rel: string) => boolean): Promise<void> {
  const st = await lstat(abs, { bigint: true });
  if (st.isSymbolicLink()) out[rel] = { type: 'symlink', target: await readlink(abs) };
  else if (st.isDirectory()) {
    if (rel !== '') out[rel] = { type: 'dir', mode: mode(st.mode) };
    for (const n of (await readdir(abs)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      if (!skip?.(r)) await describePath(path.join(abs, n), r, out, cache, skip);
    }
  } else if (st.isFile()) out[rel] = { type: 'file', mode: mode(st.mode), size: Number(st.size), sha256: await cache.hash(abs, st) };
  else out[rel] = { type: 'special', mode: mode(st.mode) };
}

/** Describes a directory tree (missing → empty). */
export async function describeTree(root: string, cache: FileHashCache = new FileHashCache(), skip?: (rel: string) => boolean): Promise<TreeDescription> {
  const out: TreeDescription = {};
  const st = await lstat(root).catch(() => undefined);
  if (!st?.isDirectory()) return out;
  await describePath(root, '', out, cache, skip);
  return sortKeys(out);
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The overlay.d directories of a config, in name order (non-directories are ignored, as the original). */
export async function overlayNames(configDir: string): Promise<string[]> {
  const dir = path.join(configDir, 'overlay.d');
  const names: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory() || (e.isSymbolicLink() && (await lstat(path.join(dir, e.name)).then((s) => s.isDirectory(), () => false)))) names.push(e.name);
  }
  return names.sort();
}

/**
 * The overlay layers a compose applies: the manifest's `ostree-layers` (entries `overlay/NAME`
 * with NAME a directory of overlay.d/) when it lists any, else every overlay.d directory in name
 * order. An `overlay/NAME` the config does not have → COSA_CONFIG_MISSING naming the field.
 */
export async function overlayLayers(o: Pick<ComposeOptions, 'manifest' | 'configDir'>): Promise<string[]> {
  const have = await overlayNames(o.configDir);
  const listed = o.manifest['ostree-layers'];
  if (!listed || listed.length === 0) return have;
  return listed.map((ref, i) => {
    const name = ref.startsWith('overlay/') ? ref.slice('overlay/'.length) : undefined;
    if (!name || !have.includes(name)) {
      throw new CosaError('COSA_CONFIG_MISSING', `manifest ostree-layers[${i}]: ${ref} has no directory overlay.d/${name ?? ref} in ${o.configDir}`, {
        hint: 'ostree-layers entries are overlay/NAME for a directory overlay.d/NAME of the config',
      });
    }
    return name;
  });
}

/** Config files the treefile references (not the treefiles themselves), relative to the config dir (sorted, unique). */
export async function referencedFiles(o: Pick<ComposeOptions, 'manifest' | 'configDir' | 'files' | 'treefiles'>, withRepoFiles: boolean): Promise<string[]> {
  const m = o.manifest;
  const treefiles = new Set((o.treefiles ?? []).map((f) => path.resolve(o.configDir, f)));
  const abs = new Set<string>(o.files.map((f) => path.resolve(o.configDir, f)).filter((f) => !treefiles.has(f)));
  for (const [src] of m['add-files'] ?? []) abs.add(resolveInside(o.configDir, src));
  if (m['postprocess-script']) abs.add(resolveInside(o.configDir, m['postprocess-script']));
  if (withRepoFiles) {
    for (const f of await readdir(o.configDir).catch(() => [] as string[])) if (f.endsWith('.repo')) abs.add(path.join(o.configDir, f));
  }
  return [...abs].map((f) => path.relative(o.configDir, f)).sort();
}

/** Options of {@link describeInputs}. */
export interface DescribeInputsOptions {
  /** Reuses content hashes of unchanged files (see {@link FileHashCache}). */
  fileCache?: FileHashCache;
  /** The config variant. */
  variant?: string | undefined;
}

/**
 * Describes a compose's inputs for `composer` (which resolves the package set). Composes nothing.
 * A referenced file that cannot be read → COSA_CONFIG_MISSING naming it.
 */
export async function describeInputs(o: ComposeOptions, composer: Pick<Composer, 'name' | 'version' | 'resolve'>, d: DescribeInputsOptions = {}): Promise<ComposeInputs> {
  const cache = d.fileCache ?? new FileHashCache();
  const isRpm = composer.name !== 'debian';
  const [version, resolved, files, overlays, rootfs, rpm] = await Promise.all([
    composer.version(),
    composer.resolve(o),
    describeConfigFiles(o, isRpm, cache),
    overlayLayers(o).then((names) => Promise.all(names.map(async (name) => ({ name, tree: await describeTree(path.join(o.configDir, 'overlay.d', name), cache) })))),
    o.overridesRootfs ? describeTree(o.overridesRootfs, cache) : Promise.resolve({}),
    // Only the RPMs: repodata/ written beside them is not an input.
    o.overridesRpm ? describeTree(o.overridesRpm, cache, (r) => !r.endsWith('.rpm')) : Promise.resolve({}),
  ]);
  const packages = resolved.packages
    .map((p) => ({ name: p.name, evr: packageEvr(p), arch: p.arch, ...(p.checksum ? { checksum: p.checksum } : {}) }))
    .sort((a, b) => (a.name === b.name ? (a.arch < b.arch ? -1 : 1) : a.name < b.name ? -1 : 1));
  const out: ComposeInputs = {
    schema: INPUTS_SCHEMA,
    composer: { name: composer.name, version },
    arch: o.arch,
    variant: d.variant ?? null,
    manifest: o.manifest,
    files,
    overlays,
    overrides: { rootfs, rpm },
    packages,
    extra: resolved.extra ?? {},
  };
  resolvedPackages.set(out, resolved.packages);
  return out;
}

/** The composer's own package records behind each description made in this process. */
const resolvedPackages = new WeakMap<ComposeInputs, PackageInfo[]>();

async function describeConfigFiles(o: ComposeOptions, withRepoFiles: boolean, cache: FileHashCache): Promise<TreeDescription> {
  const out: TreeDescription = {};
  for (const rel of await referencedFiles(o, withRepoFiles)) {
    try {
      await describePath(path.join(o.configDir, rel), rel, out, cache);
    } catch (e) {
      throw new CosaError('COSA_CONFIG_MISSING', `${rel}: referenced by the manifest but cannot be read (in ${o.configDir})`, { cause: e });
    }
  }
  return sortKeys(out);
}

/** `o.inputs` when the caller described the inputs already, else a new description. */
export async function inputsFor(o: ComposeOptions, composer: Pick<Composer, 'name' | 'version' | 'resolve'>): Promise<ComposeInputs> {
  return o.inputs ?? describeInputs(o, composer, { variant: o.variant, ...(o.fileCache ? { fileCache: o.fileCache } : {}) });
}

/** The {@link Composer.inputHash} every composer implements: describe (or take `o.inputs`), then hash. */
export async function composerInputHash(o: ComposeOptions, composer: Pick<Composer, 'name' | 'version' | 'resolve'>): Promise<{ inputHash: string; packages: PackageInfo[]; inputs: ComposeInputs }> {
  const inputs = await inputsFor(o, composer);
  const packages = resolvedPackages.get(inputs) ?? (await composer.resolve(o)).packages;
  return { inputHash: inputsHash(inputs), packages, inputs };
}
