import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { deleteRef, prune as pruneRepo } from '@cosa/ostree';
import { CosaError, parseMetaJson, type BuildsJson, type OnProgress } from '@cosa/schema';
import { openWorkdir, type WorkdirLike } from './workdir.js';
import { assertSegment, isDirectory, isFile } from './_paths.js';

/** How many untagged builds `prune` keeps by default (as the original). */
export const DEFAULT_KEEP_LAST_N = 3;

/** Options of {@link prune}. */
export interface PruneOptions {
  workdir: WorkdirLike;
  /** Untagged builds to keep, newest first (default 3; 0 keeps every build). */
  keepLastN?: number;
  /** Delete exactly these builds instead (each must exist and be untagged). */
  builds?: readonly string[];
  /** Only report what would be deleted. */
  dryRun?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** A build found on disk by {@link prune}. */
export interface ScannedBuild {
  id: string;
  arches: string[];
  /** Newest `coreos-assembler.build-timestamp` (else `ostree-timestamp`) over its arches. */
  timestamp: string;
}

/** What {@link prune} did (or, with `dryRun`, would do). */
export interface PruneResult {
  /** Builds kept, newest first. */
  kept: string[];
  /** Builds deleted (or that would be). */
  deleted: string[];
  /** Tagged builds kept regardless of `keepLastN`, with their tags. */
  tagged: { id: string; tags: string[] }[];
  dryRun: boolean;
}

/**
 * `cosa prune`: scans `builds/*\/<arch>/meta.json` (not builds.json), keeps tagged builds and
 * the newest `keepLastN` untagged ones (or deletes exactly `builds`), rewrites builds.json from
 * the kept builds, repoints `latest`, deletes each pruned build's ref in `tmp/repo` (when that
 * repo exists) and removes its directory. Every meta.json is validated before anything changes.
 */
export async function prune(options: PruneOptions): Promise<PruneResult> {
  const emit = options.onProgress ?? (() => {});
  const wd = await openWorkdir(options.workdir);
  const explicit = options.builds ?? [];
  if (explicit.length > 0 && options.keepLastN !== undefined) {
    throw new CosaError('COSA_USAGE', '--keep-last-n and --build cannot be used together');
  }
  const keepLastN = options.keepLastN ?? DEFAULT_KEEP_LAST_N;
  if (!Number.isInteger(keepLastN) || keepLastN < 0) throw new CosaError('COSA_USAGE', `--keep-last-n must be a non-negative integer, got ${keepLastN}`);
  for (const id of explicit) assertSegment(id, 'build id');

  const plan = async (data: BuildsJson) => {
    const tagsOf = new Map<string, string[]>();
    for (const t of data.tags ?? []) tagsOf.set(t.target, [...(tagsOf.get(t.target) ?? []), t.name]);
    const scanned = await scanBuilds(wd.buildsDir, emit);
    scanned.sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0));
    const kept: ScannedBuild[] = [];
    const deleted: ScannedBuild[] = [];
    const tagged: { id: string; tags: string[] }[] = [];
    if (explicit.length > 0) {
      const byId = new Map(scanned.map((b) => [b.id, b]));
      for (const id of explicit) {
        if (!byId.has(id)) throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${id} is not in ${wd.buildsDir}`);
        const t = tagsOf.get(id);
        if (t) throw new CosaError('COSA_PRUNE_TAGGED', `build ${id} is tagged (${t.join(', ')})`, { hint: `remove the tag first: cosa tag delete --tag ${t[0]}` });
      }
      for (const b of scanned) (explicit.includes(b.id) ? deleted : kept).push(b);
    } else {
      let n = keepLastN;
      for (const b of scanned) {
        const t = tagsOf.get(b.id);
        if (t) {
          tagged.push({ id: b.id, tags: t });
          kept.push(b);
        } else if (keepLastN === 0 || n > 0) {
          kept.push(b);
          n--;
        } else deleted.push(b);
      }
    }
    return { kept, deleted, tagged };
  };

  if (options.dryRun) {
    const p = await plan(await wd.builds.read());
    for (const b of p.deleted) emit({ type: 'info', message: `Would prune build ${b.id}` });
    return { kept: p.kept.map((b) => b.id), deleted: p.deleted.map((b) => b.id), tagged: p.tagged, dryRun: true };
  }

  const { result: p } = await wd.builds.update(async (data) => {
    const r = await plan(data);
    // Oldest first through insert-at-front gives newest first, as the original rebuilds it.
    data.builds = [...r.kept].reverse().reduce<BuildsJson['builds']>((acc, b) => {
      const old = data.builds.find((e) => e.id === b.id);
      acc.unshift({ ...(old ?? {}), id: b.id, arches: mergeArches(old?.arches ?? [], b.arches) });
      return acc;
    }, []);
    return r;
  });
  for (const t of p.tagged) emit({ type: 'info', message: `Skipping tagged build ${t.id} (${t.tags.join(', ')})` });
  const repoExists = await isDirectory(wd.repo);
  const failures: string[] = [];
  for (const b of p.deleted) {
    emit({ type: 'info', message: `Pruning build ${b.id}` });
    // builds.json is already rewritten: keep going so one failure does not strand the others.
    if (repoExists) {
      try {
        await deleteRef({ repo: wd.repo, ref: b.id, signal: options.signal, onProgress: options.onProgress });
      } catch (e) {
        if (options.signal?.aborted) throw e;
        failures.push(`${b.id}: deleting its ref in ${wd.repo}: ${(e as Error).message}`);
      }
    }
    try {
      await rm(join(wd.buildsDir, b.id), { recursive: true, force: true });
    } catch (e) {
      failures.push(`${b.id}: ${(e as Error).message}`);
    }
  }
  // The archive cache (tmp/repo-archive, see build) keeps a ref per build too; drop the pruned
  // builds' refs and the objects no ref reaches any more, in both repos.
  const archive = join(wd.tmpDir, 'repo-archive');
  if (p.deleted.length > 0 && (await isDirectory(archive))) {
    for (const b of p.deleted) {
      await deleteRef({ repo: archive, ref: b.id, signal: options.signal }).catch(() => undefined);
    }
    for (const repo of [archive, ...(repoExists ? [wd.repo] : [])]) {
      await pruneRepo({ repo, refsOnly: true, signal: options.signal, onProgress: options.onProgress }).catch((e: unknown) => {
        failures.push(`pruning objects in ${repo}: ${(e as Error).message}`);
      });
    }
  }
  if (failures.length > 0) throw new CosaError('COSA_OSTREE_FAILED', `pruned builds.json, but cleaning up failed for ${failures.join('; ')}`);
  return { kept: p.kept.map((b) => b.id), deleted: p.deleted.map((b) => b.id), tagged: p.tagged, dryRun: false };
}

function mergeArches(listed: string[], scanned: string[]): string[] {
  return [...scanned.filter((a) => listed.includes(a)).sort((a, b) => listed.indexOf(a) - listed.indexOf(b)), ...scanned.filter((a) => !listed.includes(a))];
}

/** Builds on disk: `builds/<id>/<arch>/meta.json`, each validated. */
async function scanBuilds(buildsDir: string, emit: OnProgress): Promise<ScannedBuild[]> {
  const out: ScannedBuild[] = [];
  let names: string[];
  try {
    names = await readdir(buildsDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw e;
  }
  for (const id of names.sort()) {
    if (id.startsWith('.') || id === 'builds.json' || id === 'latest') continue;
    const dir = join(buildsDir, id);
    if (!(await lstat(dir)).isDirectory()) {
      emit({ type: 'warning', message: `ignoring ${dir}: not a build directory` });
      continue;
    }
    const arches: string[] = [];
    let timestamp = '';
    for (const arch of (await readdir(dir)).sort()) {
      const file = join(dir, arch, 'meta.json');
      if (arch.startsWith('.') || !(await isFile(file))) continue;
      const meta = parseMetaJson(await readFile(file, 'utf8'), file);
      if (meta.buildid !== id) throw new CosaError('COSA_BUILD_ID_INVALID', `${file}: buildid is ${JSON.stringify(meta.buildid)}, expected ${JSON.stringify(id)}`);
      arches.push(arch);
      const ts = meta['coreos-assembler.build-timestamp'] ?? meta['ostree-timestamp'];
      if (ts > timestamp) timestamp = ts;
    }
    if (arches.length > 0) out.push({ id, arches, timestamp });
  }
  return out;
}
