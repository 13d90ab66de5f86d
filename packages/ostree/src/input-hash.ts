/**
 * A flat input hash over a manifest, files and a package set. The composers no longer use it:
 * they hash the one inputs description of inputs.ts (`describeInputs`); this stays for
 * callers of the earlier API.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { stableStringify } from '@cosa/schema';

/** A package as resolved from repo metadata, reduced to what identifies its content. */
export interface InputHashPackage {
  name: string;
  epoch?: string | undefined;
  version: string;
  release?: string | undefined;
  arch: string;
  /** Repo-metadata checksum of the package file, when the repo publishes one. */
  checksum?: string | undefined;
}

/** Options of {@link computeInputHash}. */
export interface InputHashOptions {
  /** The flattened manifest (after `include:` and variable substitution). */
  manifest: unknown;
  /**
   * Files the manifest refers to (add-files sources, postprocess scripts, overlays), as absolute
   * paths or paths relative to `baseDir`. Each contributes its path as given and its bytes.
   */
  files: readonly string[];
  /** Directory relative file paths are read from (default: the process's cwd). */
  baseDir?: string;
  /** The resolved package set (order does not matter). */
  packages: readonly InputHashPackage[];
  /** Composer name, e.g. `debian`. */
  composer: string;
  /** Composer version string (tool versions and our own composer revision). */
  composerVersion: string;
  /** Anything else that changes the output (sources, assets digests, ...); stable-JSON hashed. */
  extra?: unknown;
}

/** Formats a package as `name=[epoch:]version[-release].arch[#checksum]` (the hashed form). */
export function packageKey(p: InputHashPackage): string {
  const v = `${p.epoch ? `${p.epoch}:` : ''}${p.version}${p.release ? `-${p.release}` : ''}`;
  return `${p.name}=${v}.${p.arch}${p.checksum ? `#${p.checksum}` : ''}`;
}

/**
 * Returns the sha256 (hex) over the stable JSON of the manifest, every referenced file (path +
 * bytes, sorted by path), the sorted package set, the composer name and
 * version, and `extra`. Same inputs give the same hash across runs and machines.
 */
export function computeInputHash(o: InputHashOptions): string {
  const h = createHash('sha256');
  const field = (name: string, value: string | Buffer): void => {
    const b = typeof value === 'string' ? Buffer.from(value) : value;
    h.update(`${name}\0${b.length}\0`);
    h.update(b);
  };
  field('composer', `${o.composer}\n${o.composerVersion}`);
  field('manifest', stableStringify(o.manifest ?? null));
  const files = [...new Set(o.files)].sort();
  for (const f of files) {
    const path = o.baseDir && !f.startsWith('/') ? `${o.baseDir}/${f}` : f;
    // Config files and scripts are small: read whole, synchronously (the hash is a pure function).
    field('file', `${f}\n${createHash('sha256').update(readFileSync(path)).digest('hex')}`);
  }
  field('packages', [...o.packages].map(packageKey).sort().join('\n'));
  if (o.extra !== undefined) field('extra', stableStringify(o.extra));
  return h.digest('hex');
}
