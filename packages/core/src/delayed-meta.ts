/**
 * The original's delayed meta merge, compatible with its files: a build made with
 * `cosa build --delay-meta-merge` has `coreos-assembler.delayed-meta-merge: true`; then every
 * artifact writer (buildextend, `cosa meta --artifact-json`) leaves meta.json alone and writes
 * the whole document with its addition to `meta.<artifact>.json` beside it, so writers on a
 * shared volume never contend; `cosa meta --finalize` folds those files into meta.json.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CosaError, serializeMetaJson, validateMetaJson, withLock, writeFileAtomic, type MetaJson } from '@cosa/schema';
import { parseJsonText, safeSegment } from '@cosa/schema/internal';
import { mergeMetaDocuments } from './builds-dir.js';
import { readBuildMeta, type MetaTarget } from './meta-keys.js';
import { openWorkdir } from './workdir.js';

/** meta.json key that turns the delayed merge on (the original's). */
export const DELAYED_META_MERGE_KEY = 'coreos-assembler.delayed-meta-merge';

type Doc = Record<string, unknown>;

/** True when `meta` asks for the delayed merge. */
export function isDelayedMerge(meta: MetaJson | Doc): boolean {
  return (meta as Doc)[DELAYED_META_MERGE_KEY] === true;
}

/** `meta.<artifact>.json` beside a meta.json (the artifact name is one safe path segment). */
export function artifactMetaPath(buildDir: string, artifact: string): string {
  if (!safeSegment.safeParse(artifact).success) throw new CosaError('COSA_USAGE', `not an artifact name: ${JSON.stringify(artifact)}`);
  return join(buildDir, `meta.${artifact}.json`);
}

/**
 * Writes `meta.<artifact>.json`: `meta` with `fragment` merged in by the original's rules
 * (validated first; atomic). Returns the path and the document.
 */
export async function writeArtifactMeta(buildDir: string, artifact: string, meta: MetaJson, fragment: Doc): Promise<{ path: string; meta: MetaJson }> {
  const path = artifactMetaPath(buildDir, artifact);
  const merged = validateMetaJson(mergeMetaDocuments(meta as Doc, fragment, path), path);
  await withLock(path, () => writeFileAtomic(path, serializeMetaJson(merged, path), { mode: 0o644 }), { what: path });
  return { path, meta: merged };
}

/** Options of {@link mergeArtifactJson}. */
export interface MergeArtifactJsonOptions extends MetaTarget {
  /** JSON files to merge in (a whole meta.json or a fragment such as `{"images": {…}}`). */
  files: string[];
  /** With the delayed merge: the `<artifact>` of the file written (default: the time in ns, as the original). */
  artifact?: string;
}

/**
 * `cosa meta --artifact-json FILE [--artifact NAME]`: merges each file into the build's
 * meta.json under its lock with the original's merge rules (a different `ostree-commit` is an
 * error), or, with the delayed merge, into `meta.<NAME>.json`. Returns the files written.
 */
export async function mergeArtifactJson(options: MergeArtifactJsonOptions): Promise<string[]> {
  const target = await readBuildMeta(options);
  const wd = await openWorkdir(options.workdir);
  const dir = wd.builds.buildDir(target.id, target.arch);
  const written: string[] = [];
  for (const file of options.files) {
    const text = await readFile(file, 'utf8').catch((e: unknown) => {
      throw new CosaError('COSA_USAGE', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
    });
    const fragment = parseJsonText(text, file);
    if (fragment === null || typeof fragment !== 'object' || Array.isArray(fragment)) throw new CosaError('COSA_SCHEMA_INVALID', `${file}: not a JSON object`);
    const current = await wd.builds.getMeta(target.id, target.arch);
    if (isDelayedMerge(current)) {
      const r = await writeArtifactMeta(dir, options.artifact ?? String(BigInt(Date.now()) * 1_000_000n), current, fragment as Doc);
      written.push(r.path);
    } else {
      await wd.builds.mergeMeta(target.id, target.arch, fragment as Doc);
      written.push(target.path);
    }
  }
  return written;
}

/** Options of {@link finalizeMeta}. */
export interface FinalizeMetaOptions extends MetaTarget {
  /** Keep the `meta.<artifact>.json` files (the original's `--no-clean`). */
  noClean?: boolean;
}

/** What {@link finalizeMeta} did. */
export interface FinalizeMetaResult {
  /** False when the build does not use the delayed merge (nothing was done). */
  delayed: boolean;
  /** The meta.json written. */
  path: string;
  /** The `meta.<artifact>.json` files folded in, in order. */
  merged: string[];
}

/**
 * `cosa meta --finalize`: folds every `meta.<artifact>.json` of the build into meta.json with the
 * original's merge rules, writes meta.json once (validated, atomic, under its lock), then removes
 * the folded files unless `noClean`. A build without the delayed merge is left alone.
 */
export async function finalizeMeta(options: FinalizeMetaOptions): Promise<FinalizeMetaResult> {
  const target = await readBuildMeta(options);
  if (!isDelayedMerge(target.meta)) return { delayed: false, path: target.path, merged: [] };
  const wd = await openWorkdir(options.workdir);
  const dir = wd.builds.buildDir(target.id, target.arch);
  const candidates = (await readdir(dir)).filter((n) => /^meta\..+\.json$/.test(n)).sort().map((n) => join(dir, n));
  await wd.builds.updateMeta(target.id, target.arch, async (meta) => {
    let doc = meta as Doc;
    for (const c of candidates) {
      const part = parseJsonText(await readFile(c, 'utf8'), c);
      validateMetaJson(part, c);
      doc = mergeMetaDocuments(doc, part as Doc, basename(c));
    }
    return doc;
  });
  if (!options.noClean) for (const c of candidates) await rm(c, { force: true });
  return { delayed: true, path: target.path, merged: candidates };
}
