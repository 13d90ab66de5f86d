import { join } from 'node:path';
import { z } from 'zod';
import { ConfigFileError, readConfigDocument } from './_config-io.js';
import { zodIssues } from './json.js';

/** One locked package: an exact `evra` (base lockfile) or an `evr` (overrides), optional digest. */
export const lockedPackageSchema = z
  .looseObject({
    /** `[epoch:]version-release.arch`, e.g. `1:1.46.2-1.fc40.x86_64`. */
    evra: z.string().min(1).optional(),
    /** `[epoch:]version-release` (any arch), used by override files. */
    evr: z.string().min(1).optional(),
    /** `sha256:<hex>` of the RPM payload, when pinned that tightly. */
    digest: z.string().optional(),
    /** Free-form data (`type: pin|fast-track`, `reason`, `bodhi`, `sourcerpm`). */
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((p) => p.evra !== undefined || p.evr !== undefined, { message: 'a locked package needs "evra" or "evr"' });
/** One entry of a lockfile's `packages` map. */
export type LockedPackage = z.output<typeof lockedPackageSchema>;

/** A lockfile as rpm-ostree reads it (`--ex-lockfile`): JSON for the base, YAML for overrides. */
export const lockfileSchema = z.looseObject({
  packages: z.record(z.string(), lockedPackageSchema).nullish().transform((v) => v ?? {}),
  metadata: z.looseObject({ generated: z.string().optional() }).optional(),
});
/** A parsed lockfile (`packages` is `{}` when the file lists none). */
export type Lockfile = z.output<typeof lockfileSchema>;

/** Options for {@link loadLockfiles}. */
export interface LoadLockfilesOptions {
  /** The config directory (`src/config`). */
  configDir: string;
  /** Base architecture. */
  arch: string;
}

/** The result of {@link loadLockfiles}. */
export interface LoadedLockfiles {
  /** Package name → the winning lock entry. */
  packages: Record<string, LockedPackage>;
  /** The lockfiles found, in the order applied (later ones win); pass them to rpm-ostree as `--ex-lockfile`. */
  files: string[];
}

/**
 * The lockfiles looked for, in the order applied (later wins), without extension: each may be
 * `.yaml` or `.json` (not both), as the original's `pick_yaml_or_else_json`.
 */
export function lockfileBases(arch: string): string[] {
  return [`manifest-lock.${arch}`, 'manifest-lock.overrides', `manifest-lock.overrides.${arch}`];
}

/** Parses one lockfile document (already read); throws a ConfigFileError naming the file and package. */
export function parseLockfile(data: unknown, file: string): Lockfile {
  const r = lockfileSchema.safeParse(data);
  if (!r.success) throw new ConfigFileError(file, zodIssues(r.error));
  return r.data;
}

/**
 * Reads `manifest-lock.<arch>.json`, `manifest-lock.overrides.yaml` and
 * `manifest-lock.overrides.<arch>.yaml` from the config dir (each may be spelled `.yaml` or
 * `.json`) and merges them as rpm-ostree does with repeated `--ex-lockfile`: a later file's entry
 * replaces an earlier one for the same package, so overrides win over the base lockfile and
 * arch-specific overrides win over generic ones. Missing files are skipped.
 *
 * @throws ConfigFileError naming the file and the `packages.<name>` path of a bad entry, or both
 *   spellings of one lockfile being present (as the original refuses).
 */
export async function loadLockfiles(options: LoadLockfilesOptions): Promise<LoadedLockfiles> {
  const packages: Record<string, LockedPackage> = {};
  const files: string[] = [];
  for (const base of lockfileBases(options.arch)) {
    const found: Array<{ file: string; doc: Record<string, unknown> }> = [];
    for (const ext of ['json', 'yaml']) {
      const file = join(options.configDir, `${base}.${ext}`);
      const doc = await readConfigDocument(file, [file], options.configDir);
      if (doc !== undefined) found.push({ file, doc });
    }
    if (found.length > 1) {
      throw new ConfigFileError(found[0]!.file, [{ path: '', message: `found both ${base}.json and ${base}.yaml; keep one` }]);
    }
    const one = found[0];
    if (!one) continue;
    files.push(one.file);
    Object.assign(packages, parseLockfile(one.doc, one.file).packages);
  }
  return { packages, files };
}

/** A package to record in a generated lockfile: its `evra`, or the NEVRA parts. */
export type GeneratedLockfileInput =
  | { name: string; evra: string }
  | { name: string; epoch?: string | number | null; version: string; release: string; arch: string };

/** The `manifest-lock.generated.<arch>.json` written into a build dir (exact NEVRAs, no digests). */
export interface GeneratedLockfile {
  packages: Record<string, { evra: string }>;
  metadata: { generated: string; rpmmd_repos?: Record<string, { generated: string }> };
}

/** `[epoch:]version-release.arch`, the epoch left out when it is absent or 0 (as rpm does). */
export function formatEvra(p: { epoch?: string | number | null; version: string; release: string; arch: string }): string {
  const e = p.epoch === undefined || p.epoch === null || String(p.epoch) === '' || String(p.epoch) === '0' ? '' : `${p.epoch}:`;
  return `${e}${p.version}-${p.release}.${p.arch}`;
}

/**
 * Builds the `manifest-lock.generated.<arch>.json` document for the packages of a commit:
 * `{packages: {name: {evra}}, metadata: {generated}}`, packages sorted by name so the same set
 * always serializes the same (use stableStringify to write it).
 */
export function generatedLockfile(
  packages: Iterable<GeneratedLockfileInput>,
  options: { generated?: Date | string; rpmmdRepos?: Record<string, { generated: string }> } = {},
): GeneratedLockfile {
  const entries = [...packages].map((p) => [p.name, 'evra' in p ? p.evra : formatEvra(p)] as const);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const out: Record<string, { evra: string }> = {};
  for (const [name, evra] of entries) out[name] = { evra };
  const g = options.generated ?? new Date();
  const generated = typeof g === 'string' ? g : `${g.toISOString().slice(0, 19)}Z`;
  return {
    packages: out,
    metadata: { generated, ...(options.rpmmdRepos ? { rpmmd_repos: options.rpmmdRepos } : {}) },
  };
}
