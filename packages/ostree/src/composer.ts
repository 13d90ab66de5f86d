/**
 * The composer contract: a composer turns a manifest into an OSTree commit. core picks one with
 * {@link selectComposer}: the Debian composer for manifests with a `debian:` key, else rpm-ostree
 * when installed, else the dnf composer.
 */
import { CosaError, type Manifest, type OnProgress } from '@cosa/schema';
import { hasTool } from './_exec.js';
import type { ComposeInputs, FileHashCache, ResolvedInputs } from './inputs.js';

/** One package of a composed (or resolved) package set. */
export interface PackageInfo {
  name: string;
  epoch?: string;
  version: string;
  release?: string;
  arch: string;
  /** Repo-metadata checksum (`sha256:<hex>` style, or as the repo gives it). */
  checksum?: string;
  /** Source package (RPM: the source RPM; Debian: the source package). */
  source?: string;
}

/** What every composer verb receives. */
export interface ComposeOptions {
  /** The flattened manifest. */
  manifest: Manifest;
  /** The config directory (`src/config`): relative paths in the manifest resolve against it. */
  configDir: string;
  /** Every config file read to produce the manifest, absolute or relative to configDir (they feed the input hash). */
  files: string[];
  /**
   * The treefiles among `files` (the top-level one and its includes): their content is in
   * `manifest`, so the inputs description leaves their bytes out (comments and key order are not
   * inputs).
   */
  treefiles?: string[];
  /** Package cache (`cache/`), kept between builds; `fetch` fills it. */
  cacheDir: string;
  /** Scratch space (`tmp/`); composers create and remove their own subdirectories. */
  tmpDir: string;
  /** Bare-user repo to commit into. */
  repo: string;
  /** Base architecture, e.g. `x86_64`. */
  arch: string;
  /** Version written as commit metadata `version`. */
  version: string;
  /** Ref to commit on. */
  ref: string;
  /** Previous build's commit (parent for change detection). */
  parentCommit?: string;
  /** `overrides/rootfs`: overlaid onto the tree after the packages. */
  overridesRootfs?: string;
  /** `overrides/rpm`: RPMs that win over the repos' (RPM composers). */
  overridesRpm?: string;
  /** The config variant (recorded in the inputs description). */
  variant?: string;
  /**
   * The inputs description ({@link describeInputs}) when the caller already made it: the composer
   * then hashes and builds exactly this object instead of describing the inputs again.
   */
  inputs?: ComposeInputs;
  /** Content hashes of unchanged files, reused while describing the inputs. */
  fileCache?: FileHashCache;
  /** Use only what `fetch` put in `cacheDir`. */
  offline?: boolean;
  /** Fail on unlocked packages / unknown manifest keys. */
  strict?: boolean;
  /**
   * SOURCE_DATE_EPOCH (seconds): the commit's timestamp, and the time every tool of the compose
   * is told it is (default: now, and not reproducible).
   */
  sourceDateEpoch?: number;
  /** Parsed lockfile(s), composer-specific. */
  lockfile?: unknown;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** The result of {@link Composer.inputHash}. */
export interface InputHashResult {
  /** `sha256` hex over everything that decides the commit's content. */
  inputHash: string;
  /** The package set the composer would install. */
  packages: PackageInfo[];
  /** The description the hash is made of. */
  inputs?: ComposeInputs;
}

/** The result of {@link Composer.compose}. */
export interface ComposeResult {
  commit: string;
  ref: string;
  version: string;
  inputHash: string;
  packages: PackageInfo[];
  /** False when the commit equals the previous one (nothing written). */
  changed: boolean;
  /** Durations (`*-ms`), sizes (`*-bytes`) and `ostree-n-*` counts when known. */
  stats: Record<string, number>;
}

/**
 * Commit metadata key holding cosa's input hash ({@link InputHashResult.inputHash}); a composer
 * compares it with the parent commit's to skip an unchanged compose.
 */
export const INPUTHASH_KEY = 'cosa.inputhash';

/** Composer names. */
export type ComposerName = 'rpm-ostree' | 'dnf' | 'debian';

/** A composer: turns a manifest into an OSTree commit. */
export interface Composer {
  readonly name: ComposerName;
  /** The version of the underlying tool (feeds the input hash). */
  version(): Promise<string>;
  /** Resolves the package set (and composer-specific inputs) for the inputs description. */
  resolve(o: ComposeOptions): Promise<ResolvedInputs>;
  /** Computes the input hash and the resolved package set without composing anything. */
  inputHash(o: ComposeOptions): Promise<InputHashResult>;
  /** Composes and commits into `o.repo` on `o.ref`. */
  compose(o: ComposeOptions): Promise<ComposeResult>;
  /** Downloads packages into `o.cacheDir` so a later `compose` with `offline` works. */
  fetch(o: ComposeOptions): Promise<void>;
}

/** Creates a composer. */
export type ComposerFactory = () => Composer;

/** Composer factories by name. */
export type ComposerRegistry = Map<ComposerName, ComposerFactory>;

/**
 * The default registry. The RPM composers are built in; the Debian composer module registers
 * itself here with {@link registerComposer} (so this module never imports it).
 */
export const composerRegistry: ComposerRegistry = new Map();

/** Adds (or replaces) a composer factory in `registry` (default {@link composerRegistry}). */
export function registerComposer(name: ComposerName, factory: ComposerFactory, registry: ComposerRegistry = composerRegistry): void {
  registry.set(name, factory);
}

/** Options of {@link selectComposer}. */
export interface SelectComposerOptions {
  /** Where to look composers up (default {@link composerRegistry}, with the RPM ones built in). */
  registry?: ComposerRegistry;
  /** Overrides the probe for the `rpm-ostree` binary (tests). */
  hasRpmOstree?: boolean;
}

/** The composer kind a manifest calls for, before probing tools: `debian` or `rpm`. */
export function manifestKind(manifest: Manifest): 'debian' | 'rpm' {
  return manifest.debian !== undefined ? 'debian' : 'rpm';
}

/**
 * Picks the composer for a manifest: `debian:` → the registered Debian composer; otherwise
 * rpm-ostree when its binary is on PATH, else the dnf composer.
 */
export async function selectComposer(manifest: Manifest, o: SelectComposerOptions = {}): Promise<Composer> {
  const registry = o.registry ?? composerRegistry;
  const get = async (name: ComposerName): Promise<ComposerFactory | undefined> => {
    const f = registry.get(name);
    if (f) return f;
    // Lazy so that importing the contract doesn't load both RPM composers.
    if (name === 'rpm-ostree') return (await import('./rpm-ostree.js')).createRpmOstreeComposer;
    if (name === 'dnf') return (await import('./dnf.js')).createDnfComposer;
    if (name === 'debian') return (await import('./debian.js')).createDebianComposer;
    return undefined;
  };
  if (manifestKind(manifest) === 'debian') {
    const f = await get('debian');
    if (!f) {
      throw new CosaError('COSA_COMPOSE_FAILED', 'the manifest has a debian: section but no Debian composer is registered', {
        hint: 'import the Debian composer from @cosa/ostree (it registers itself) or pass a registry',
      });
    }
    return f();
  }
  const rpmOstree = o.hasRpmOstree ?? (await hasTool('rpm-ostree'));
  return (await get(rpmOstree ? 'rpm-ostree' : 'dnf'))!();
}
