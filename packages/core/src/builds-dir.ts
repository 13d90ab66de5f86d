import { mkdir, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CosaError,
  emptyBuildsJson,
  parseBuildsJson,
  parseMetaJson,
  serializeBuildsJson,
  serializeMetaJson,
  stableStringify,
  validate,
  validateMetaJson,
  withLock,
  writeFileAtomic,
  type BuildEntry,
  type BuildsJson,
  type MetaJson,
} from '@cosa/schema';
import { buildsJsonSchema, readRegularFile, symlinkAtomic } from '@cosa/schema/internal';
import { assertSegment, isFile, rfc3339Now } from './_paths.js';
import { fetchIntoBuildsDir, uploadFromBuildsDir, type buildFetch, type buildUpload, type BuildFetchOptions, type BuildFetchResult, type BuildUploadOptions, type BuildUploadResult } from './build-transfer.js';

/** meta.json key holding the time (ns since the epoch) of the last merge. */
export const META_STAMP_KEY = 'coreos-assembler.meta-stamp';

/** Keys that must be equal on both sides of a meta.json merge (the same content). */
const MERGE_IDENTITY_KEYS = ['ostree-commit', 'ostree-content-checksum', 'coreos-assembler.image-config-checksum'] as const;

/**
 * The `builds/` directory of a workdir: `builds.json` (newest first), `latest`, and
 * `<id>/<arch>/meta.json`. Every write is atomic (temp file, fsync, rename) and made under a
 * cross-process lock, so concurrent cosa processes never lose each other's updates.
 */
export class BuildsDir {
  /** Absolute path of `builds/`. */
  readonly dir: string;
  /** Absolute path of `builds/builds.json`. */
  readonly file: string;
  /** Absolute path of the `builds/latest` symlink. */
  readonly latestLink: string;

  constructor(dir: string) {
    this.dir = dir;
    this.file = join(dir, 'builds.json');
    this.latestLink = join(dir, 'latest');
  }

  /** Reads builds.json; an absent file reads as an empty one (nothing is written). */
  async read(): Promise<BuildsJson> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyBuildsJson();
      throw e;
    }
    return parseBuildsJson(text, this.file);
  }

  /** The builds, newest first. */
  async list(): Promise<BuildEntry[]> {
    return (await this.read()).builds;
  }

  /** True when builds.json lists `id`. */
  async has(id: string): Promise<boolean> {
    return (await this.list()).some((b) => b.id === id);
  }

  /** The newest build id (for `arch` when given: the first build that has that arch). */
  async latest(arch?: string): Promise<string | undefined> {
    const builds = await this.list();
    return (arch === undefined ? builds[0] : builds.find((b) => b.arches.includes(arch)))?.id;
  }

  /**
   * Resolves a build reference (`latest` or an id) to an id listed in builds.json.
   * Throws `COSA_BUILD_ID_INVALID` for an unsafe id and `COSA_BUILD_NOT_FOUND` for an unknown one.
   */
  async resolve(build = 'latest', arch?: string): Promise<string> {
    if (build === 'latest') {
      const id = await this.latest(arch);
      if (id === undefined) {
        throw new CosaError('COSA_BUILD_NOT_FOUND', `no builds${arch === undefined ? '' : ` for ${arch}`} in ${this.file}`, {
          hint: 'run `cosa build` first',
        });
      }
      return id;
    }
    assertSegment(build, 'build id');
    if (!(await this.has(build))) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${build} is not in ${this.file}`);
    return build;
  }

  /** `builds/<id>` or `builds/<id>/<arch>`; both are checked to be single path segments. */
  buildDir(id: string, arch?: string): string {
    assertSegment(id, 'build id');
    if (arch === undefined) return join(this.dir, id);
    assertSegment(arch, 'arch');
    return join(this.dir, id, arch);
  }

  /** `builds/<id>/<arch>/meta.json`. */
  metaPath(id: string, arch: string): string {
    return join(this.buildDir(id, arch), 'meta.json');
  }

  /** Reads and validates the meta.json of `id`/`arch`; `COSA_BUILD_NOT_FOUND` when there is none. */
  async getMeta(id: string, arch: string): Promise<MetaJson> {
    const file = this.metaPath(id, arch);
    let text: string;
    try {
      text = await readRegularFile(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${id} has no meta.json for ${arch} (${file})`, { cause: e });
      }
      throw e;
    }
    return parseMetaJson(text, file);
  }

  /** True when `builds/<id>/<arch>/meta.json` exists. */
  async hasMeta(id: string, arch: string): Promise<boolean> {
    return isFile(this.metaPath(id, arch));
  }

  /**
   * Read-modify-write of builds.json under its lock: `fn` mutates (or replaces) the document,
   * which is then validated, its `timestamp` bumped, written atomically, and `latest` repointed
   * to the newest build (removed when there is none). Nothing is written when `fn` throws or the
   * result is invalid.
   */
  async update<T>(fn: (data: BuildsJson) => T | Promise<T>): Promise<{ data: BuildsJson; result: T }> {
    return withLock(
      this.file,
      async () => {
        const data = await this.read();
        const result = await fn(data);
        data.timestamp = rfc3339Now();
        const checked = validate(buildsJsonSchema, data, this.file);
        await mkdir(this.dir, { recursive: true });
        await writeFileAtomic(this.file, serializeBuildsJson(checked), { mode: 0o644 });
        await this.pointLatest(checked.builds[0]?.id);
        return { data: checked, result };
      },
      { what: this.file },
    );
  }

  /**
   * Records build `id` for `arch`: a new id goes first (newest); an existing id gets `arch`
   * appended. Throws `COSA_BUILD_EXISTS` when the id already has that arch.
   */
  async insertBuild(id: string, arch: string): Promise<BuildsJson> {
    assertSegment(id, 'build id');
    assertSegment(arch, 'arch');
    const { data } = await this.update((d) => {
      const entry = d.builds.find((b) => b.id === id);
      if (entry === undefined) {
        d.builds.unshift({ id, arches: [arch] });
      } else if (entry.arches.includes(arch)) {
        throw new CosaError('COSA_BUILD_EXISTS', `build ${id} already has ${arch} in ${this.file}`);
      } else {
        entry.arches.push(arch);
      }
    });
    return data;
  }

  /**
   * Writes `builds/<id>/<arch>/meta.json` (creating the directories): validated first (nothing
   * is written when invalid), `buildid` must equal `id`, written atomically under the file's lock.
   */
  async writeMeta(id: string, arch: string, meta: MetaJson): Promise<MetaJson> {
    const file = this.metaPath(id, arch);
    const checked = this.checkMeta(id, arch, meta, file);
    const text = serializeMetaJson(checked, file);
    await mkdir(this.buildDir(id, arch), { recursive: true });
    await withLock(file, () => writeFileAtomic(file, text, { mode: 0o644 }), { what: file });
    return checked;
  }

  /**
   * Read-modify-write of an existing meta.json under its lock: `fn` returns the new document,
   * which is validated before anything is written.
   */
  async updateMeta(id: string, arch: string, fn: (meta: MetaJson) => unknown): Promise<MetaJson> {
    const file = this.metaPath(id, arch);
    await this.getMeta(id, arch); // fail on a missing build before the lock creates anything
    return withLock(
      file,
      async () => {
        const current = await this.getMeta(id, arch);
        const next = this.checkMeta(id, arch, await fn(current), file);
        await writeFileAtomic(file, serializeMetaJson(next, file), { mode: 0o644 });
        return next;
      },
      { what: file },
    );
  }

  /**
   * Merges `fragment` into the meta.json of `id`/`arch` with the original's rules: refused
   * with `COSA_META_MERGE_CONFLICT` when `ostree-commit`,
   * `ostree-content-checksum`, `coreos-assembler.image-config-checksum` or
   * `coreos-assembler.container-config-git.commit` differ; objects merge recursively, lists
   * are unioned, on scalar conflicts the side with the newer `coreos-assembler.meta-stamp` wins
   * (a fragment without a stamp counts as newer); the result gets a fresh meta-stamp.
   */
  async mergeMeta(id: string, arch: string, fragment: Record<string, unknown>): Promise<MetaJson> {
    return this.updateMeta(id, arch, (disk) => mergeMetaDocuments(disk as Record<string, unknown>, fragment, this.metaPath(id, arch)));
  }

  private checkMeta(id: string, arch: string, meta: unknown, file: string): MetaJson {
    const checked = validateMetaJson(meta, file);
    if (checked.buildid !== id) {
      throw new CosaError('COSA_BUILD_ID_INVALID', `${file}: buildid is ${JSON.stringify(checked.buildid)}, expected ${JSON.stringify(id)}`);
    }
    const basearch = checked['coreos-assembler.basearch'];
    if (basearch !== undefined && basearch !== arch) {
      throw new CosaError('COSA_SCHEMA_INVALID', `${file}: coreos-assembler.basearch is ${JSON.stringify(basearch)}, expected ${JSON.stringify(arch)}`);
    }
    return checked;
  }

  /**
   * Fetches a build from a store into this workdir (`cosa buildfetch`): @cosa/store downloads,
   * this class stages, moves into place and records builds.json. Same as {@link buildFetch}.
   */
  fetch(options: Omit<BuildFetchOptions, 'workdir'>): Promise<BuildFetchResult> {
    return fetchIntoBuildsDir(this, options);
  }

  /**
   * Uploads a build of this workdir to a store (`cosa buildupload`) and takes the merged remote
   * builds.json in locally. Same as {@link buildUpload}.
   */
  upload(options: Omit<BuildUploadOptions, 'workdir'>): Promise<BuildUploadResult> {
    return uploadFromBuildsDir(this, options);
  }

  /** Points `latest` at `id` (a relative symlink, replaced atomically), or removes it. */
  private async pointLatest(id: string | undefined): Promise<void> {
    let current: string | undefined;
    try {
      current = await readlink(this.latestLink);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EINVAL') throw e;
    }
    if (id === undefined) {
      if (current !== undefined) await rm(this.latestLink, { force: true });
      return;
    }
    if (current !== id) await symlinkAtomic(id, this.latestLink);
  }
}

/** The current time in ns since the epoch, as the original's `time.time_ns()`. */
export function metaStampNow(): number {
  return Date.now() * 1e6;
}

/**
 * Merges two meta.json documents with the original's `merge_meta` rules (see
 * {@link BuildsDir.mergeMeta}); `file` names the document in errors. Does not validate.
 */
export function mergeMetaDocuments(disk: Record<string, unknown>, fragment: Record<string, unknown>, file = 'meta.json'): Record<string, unknown> {
  for (const k of MERGE_IDENTITY_KEYS) {
    const a = disk[k];
    if (a !== undefined && a !== false && k in fragment && fragment[k] !== a) {
      throw new CosaError('COSA_META_MERGE_CONFLICT', `${file}: refusing to merge, ${k} differs (${String(a)} != ${String(fragment[k])})`);
    }
  }
  const gitKey = 'coreos-assembler.container-config-git';
  const aGit = (disk[gitKey] as { commit?: unknown } | undefined)?.commit;
  const bGit = (fragment[gitKey] as { commit?: unknown } | undefined)?.commit;
  if (aGit !== undefined && fragment[gitKey] !== undefined && aGit !== bGit) {
    throw new CosaError('COSA_META_MERGE_CONFLICT', `${file}: refusing to merge, ${gitKey}.commit differs (${String(aGit)} != ${String(bGit)})`);
  }
  const diskStamp = typeof disk[META_STAMP_KEY] === 'number' ? (disk[META_STAMP_KEY] as number) : 0;
  const fragStamp = typeof fragment[META_STAMP_KEY] === 'number' ? (fragment[META_STAMP_KEY] as number) : undefined;
  const fragmentNewer = fragStamp === undefined || fragStamp >= diskStamp;
  const merged = fragmentNewer ? mergeValues(fragment, disk) : mergeValues(disk, fragment);
  (merged as Record<string, unknown>)[META_STAMP_KEY] = Math.max(metaStampNow(), diskStamp, fragStamp ?? 0);
  return merged as Record<string, unknown>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `winner` takes precedence on scalar conflicts; objects merge recursively; lists union. */
function mergeValues(winner: unknown, other: unknown): unknown {
  if (isPlainObject(winner) && isPlainObject(other)) {
    const out: Record<string, unknown> = {};
    for (const k of new Set([...Object.keys(other), ...Object.keys(winner)])) {
      if (!(k in winner)) out[k] = other[k];
      else if (!(k in other)) out[k] = winner[k];
      else out[k] = mergeValues(winner[k], other[k]);
    }
    return out;
  }
  if (Array.isArray(winner) && Array.isArray(other)) {
    const seen = new Set(winner.map((v) => stableStringify(v)));
    return [...winner, ...other.filter((v) => !seen.has(stableStringify(v)))];
  }
  return winner;
}
