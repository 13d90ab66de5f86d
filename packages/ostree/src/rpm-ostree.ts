/**
 * The rpm-ostree composer: a wrapper over `rpm-ostree compose tree --unified-core`, as the
 * original cosa runs it (cmd-fetch / cmd-build).
 */
import { access, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CosaError, SchemaError, stableStringify, type SchemaIssue } from '@cosa/schema';
import { parseJsonText } from '@cosa/schema/internal';
import { run } from './_exec.js';
import { INPUTHASH_KEY, type ComposeOptions, type ComposeResult, type Composer, type PackageInfo } from './composer.js';
import { revParse, showCommit } from './repo.js';
import { resolveRpm } from './rpm.js';
import { composerInputHash, type ComposeInputs } from './inputs.js';
import { applyOverlay } from './postprocess.js';

/** Options of {@link rpmOstreeComposeArgv}. */
export interface RpmOstreeArgvOptions {
  /** The treefile (manifest) rpm-ostree reads; relative paths in it resolve against its directory. */
  treefile: string;
  repo: string;
  cacheDir: string;
  /** `--write-composejson-to`. */
  composeJson?: string;
  /** `--touch-if-changed`: created only when a new commit was written. */
  changedStamp?: string;
  /** Written as `--add-metadata-string=version=…`. */
  version?: string;
  /** Extra commit metadata strings. */
  metadata?: Record<string, string>;
  /** `--previous-commit`. */
  previousCommit?: string;
  /** `--download-only` (what `cosa fetch` runs). */
  downloadOnly?: boolean;
  /** `--cache-only` (build after fetch: no network). */
  cacheOnly?: boolean;
  /** `--force-nocache` (`cosa build --force`). */
  force?: boolean;
  /** Lockfiles, passed as `--ex-lockfile=` in order. */
  lockfiles?: string[];
  /** `--ex-lockfile-strict` (`--strict`). */
  strict?: boolean;
  /** `--workdir`. */
  workdir?: string;
  /** Appended before the treefile (RPMOSTREE_EXTRA_ARGS). */
  extraArgs?: string[];
}

/** Builds the `rpm-ostree compose tree` argv. */
export function rpmOstreeComposeArgv(o: RpmOstreeArgvOptions): string[] {
  const argv = ['rpm-ostree', 'compose', 'tree', '--unified-core', `--repo=${o.repo}`, `--cachedir=${o.cacheDir}`];
  if (o.downloadOnly) argv.push('--download-only');
  if (o.cacheOnly) argv.push('--cache-only');
  if (o.force) argv.push('--force-nocache');
  if (o.workdir) argv.push(`--workdir=${o.workdir}`);
  if (o.composeJson) argv.push(`--write-composejson-to=${o.composeJson}`);
  if (o.changedStamp) argv.push(`--touch-if-changed=${o.changedStamp}`);
  if (o.previousCommit) argv.push(`--previous-commit=${o.previousCommit}`);
  if (o.version) argv.push(`--add-metadata-string=version=${o.version}`);
  for (const [k, v] of Object.entries(o.metadata ?? {})) argv.push(`--add-metadata-string=${k}=${v}`);
  for (const l of o.lockfiles ?? []) argv.push(`--ex-lockfile=${l}`);
  if (o.strict) argv.push('--ex-lockfile-strict');
  argv.push(...(o.extraArgs ?? []), o.treefile);
  return argv;
}

/**
 * The lockfiles cosa passes for `arch`, those that exist in configDir, in order:
 * `manifest-lock.<arch>.json`, `manifest-lock.overrides.{yaml,json}`,
 * `manifest-lock.overrides.<arch>.{yaml,json}`.
 */
export async function findLockfiles(configDir: string, arch: string): Promise<string[]> {
  const names = [`manifest-lock.${arch}.json`, 'manifest-lock.overrides.yaml', 'manifest-lock.overrides.json', `manifest-lock.overrides.${arch}.yaml`, `manifest-lock.overrides.${arch}.json`];
  const out: string[] = [];
  for (const n of names) {
    const p = path.join(configDir, n);
    if (await access(p).then(() => true, () => false)) out.push(p);
  }
  return out;
}

/** The JSON rpm-ostree writes with `--write-composejson-to` (its documented fields; others are kept). */
export interface RpmOstreeComposeJson {
  ref?: string;
  'ostree-commit': string;
  'ostree-content-checksum'?: string;
  'ostree-version'?: string;
  'ostree-timestamp'?: string;
  'rpm-ostree-inputhash'?: string;
  'ostree-n-metadata-total'?: number;
  'ostree-n-metadata-written'?: number;
  'ostree-n-content-total'?: number;
  'ostree-n-content-written'?: number;
  'ostree-n-cache-hits'?: number;
  'ostree-content-bytes-written'?: number;
  [key: string]: unknown;
}

const STRING_FIELDS = ['ref', 'ostree-content-checksum', 'ostree-version', 'ostree-timestamp', 'rpm-ostree-inputhash'];

/** Parses and validates a compose JSON document (SchemaError naming `file` and the field on bad input). */
export function parseComposeJson(text: string, file: string): RpmOstreeComposeJson {
  const data = parseJsonText(text, file);
  const issues: SchemaIssue[] = [];
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new SchemaError(file, [{ path: '', message: 'expected an object' }]);
  }
  const d = data as Record<string, unknown>;
  const commit = d['ostree-commit'];
  if (typeof commit !== 'string' || !/^[0-9a-f]{64}$/.test(commit)) issues.push({ path: 'ostree-commit', message: 'expected a 64-hex commit checksum' });
  for (const k of STRING_FIELDS) if (k in d && typeof d[k] !== 'string') issues.push({ path: k, message: 'expected a string' });
  for (const [k, v] of Object.entries(d)) {
    if ((k.startsWith('ostree-n-') || k === 'ostree-content-bytes-written') && !(typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
      issues.push({ path: k, message: 'expected a non-negative integer' });
    }
  }
  if (issues.length) throw new SchemaError(file, issues);
  return d as RpmOstreeComposeJson;
}

/** The numeric fields of a compose JSON (`ostree-n-*`, bytes written), for {@link ComposeResult.stats}. */
export function composeJsonStats(j: RpmOstreeComposeJson): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(j)) if (typeof v === 'number') out[k] = v;
  return out;
}

/** Reads the package list rpm-ostree stores in a commit (`rpmostree.rpmdb.pkglist`, a(sssss)). */
export function pkglistFromCommitMeta(meta: Record<string, unknown>): PackageInfo[] {
  const list = meta['rpmostree.rpmdb.pkglist'];
  if (!Array.isArray(list)) return [];
  return list
    .filter((e): e is string[] => Array.isArray(e) && e.length >= 5)
    .map(([name, epoch, version, release, arch]) => ({
      name: name!, version: version!, release: release!, arch: arch!, ...(epoch && epoch !== '0' ? { epoch } : {}),
    }));
}

/** Parses `rpm-ostree --version` output (`Version: '2024.3'`). */
export function parseRpmOstreeVersion(text: string): string {
  const m = /Version:\s*'?([^'\s]+)'?/.exec(text);
  if (!m) throw new CosaError('COSA_COMPOSE_FAILED', `cannot read the rpm-ostree version from: ${text.slice(0, 200)}`);
  return m[1]!;
}

let cachedVersion: Promise<string> | undefined;

/** Creates the rpm-ostree composer. */
export function createRpmOstreeComposer(): Composer {
  const composer: Composer = {
    name: 'rpm-ostree',
    version() {
      cachedVersion ??= run(['rpm-ostree', '--version']).then((r) => parseRpmOstreeVersion(r.stdout)).catch((e: unknown) => {
        cachedVersion = undefined;
        throw e;
      });
      return cachedVersion;
    },
    resolve: (o) => resolveRpm(o),
    inputHash: (o) => composerInputHash(o, composer),
    async fetch(o) {
      await composeTree(o, { downloadOnly: true }, composer);
    },
    async compose(o) {
      return composeTree(o, {}, composer);
    },
  };
  return composer;
}

/** The treefile to hand rpm-ostree: the config's manifest file when it is among `files`, else the flattened manifest. */
async function treefileFor(o: ComposeOptions, work: string): Promise<string> {
  const main = o.files.find((f) => /^manifest(-[^/]+)?\.(ya?ml|json)$/.test(path.basename(f)) && path.dirname(path.resolve(o.configDir, f)) === path.resolve(o.configDir));
  if (main) return path.resolve(o.configDir, main);
  // Relative paths in the flattened manifest would resolve against `work`; the caller passes the file normally.
  const file = path.join(work, 'manifest.json');
  await writeFile(file, stableStringify(o.manifest));
  return file;
}

function lockfilesFrom(o: ComposeOptions): string[] | undefined {
  if (typeof o.lockfile === 'string') return [o.lockfile];
  if (Array.isArray(o.lockfile) && o.lockfile.every((x) => typeof x === 'string')) return o.lockfile as string[];
  return undefined;
}

async function composeTree(o: ComposeOptions, mode: { downloadOnly?: boolean }, composer: Composer): Promise<ComposeResult> {
  const stats: Record<string, number> = {};
  const t0 = performance.now();
  await mkdir(o.tmpDir, { recursive: true });
  const work = await mkdtemp(path.join(o.tmpDir, 'rpm-ostree-'));
  try {
    const hash = mode.downloadOnly ? undefined : await composerInputHash(o, composer);
    const inputs = hash?.inputs;
    if (hash) stats['input-hash-ms'] = Math.round(performance.now() - t0);
    const parent = o.parentCommit ? await revParse({ repo: o.repo, ref: o.parentCommit }) : undefined;
    const composeJson = path.join(work, 'compose.json');
    const changedStamp = path.join(work, 'changed');
    const argv = rpmOstreeComposeArgv({
      treefile: inputs ? await layeredTreefile(o, inputs, work) : await treefileFor(o, work),
      repo: o.repo,
      cacheDir: path.join(o.cacheDir),
      composeJson,
      changedStamp,
      version: o.version,
      ...(hash ? { metadata: { [INPUTHASH_KEY]: hash.inputHash } } : {}),
      ...(parent ? { previousCommit: parent } : {}),
      ...(mode.downloadOnly ? { downloadOnly: true } : {}),
      ...(o.offline && !mode.downloadOnly ? { cacheOnly: true } : {}),
      lockfiles: lockfilesFrom(o) ?? (await findLockfiles(o.configDir, o.arch)),
      ...(o.strict ? { strict: true } : {}),
      workdir: work,
    });
    const t1 = performance.now();
    await run(argv, { ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}), phase: mode.downloadOnly ? 'fetch' : 'compose' }).catch((e: unknown) => {
      if (e instanceof CosaError && e.code === 'COSA_EXEC_FAILED') {
        const stderr = (e as { stderr?: string }).stderr ?? '';
        const pkg = /(?:Packages not found|No match for argument|Unable to find a match):?\s*(.+)/.exec(stderr);
        if (pkg) throw new CosaError('COSA_COMPOSE_PACKAGE_NOT_FOUND', `packages not found: ${pkg[1]!.trim()} (repos searched: ${(o.manifest.repos ?? []).join(', ')})`, { cause: e });
        throw new CosaError('COSA_COMPOSE_FAILED', `rpm-ostree compose failed: ${stderr.trim().split('\n').slice(-10).join('\n')}`, { cause: e });
      }
      throw e;
    });
    stats[mode.downloadOnly ? 'fetch-ms' : 'compose-ms'] = Math.round(performance.now() - t1);
    if (mode.downloadOnly) return { commit: '', ref: o.ref, version: o.version, inputHash: '', packages: [], changed: false, stats };

    const changed = await access(changedStamp).then(() => true, () => false);
    const json = await readFile(composeJson, 'utf8').then((t) => parseComposeJson(t, composeJson), () => undefined);
    let commit = json?.['ostree-commit'];
    if (!commit) commit = parent ?? (await revParse({ repo: o.repo, ref: o.ref }));
    if (!commit) throw new CosaError('COSA_COMPOSE_FAILED', 'rpm-ostree wrote no commit and there is no previous one');
    if (json) Object.assign(stats, composeJsonStats(json));
    const info = await showCommit({ repo: o.repo, rev: commit });
    return {
      commit,
      ref: json?.ref ?? o.ref,
      version: json?.['ostree-version'] ?? info.version ?? o.version,
      inputHash: hash!.inputHash,
      packages: pkglistFromCommitMeta(info.metadata).length ? pkglistFromCommitMeta(info.metadata) : hash!.packages,
      changed,
      stats,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Options of {@link overlayCommitArgv}. */
export interface OverlayCommitOptions {
  repo: string;
  /** The ref is `overlay/<name>`. */
  name: string;
  /** The prepared layer directory. */
  tree: string;
}

/**
 * The `ostree commit` of an overlay layer as the original's cmdlib makes it: ref `overlay/NAME`,
 * owner 0:0, no xattrs, no parent, read-only executables, a fixed timestamp (the commit depends
 * only on the content).
 */
export function overlayCommitArgv(o: OverlayCommitOptions): string[] {
  return [
    'ostree', 'commit', `--repo=${o.repo}`, `--tree=dir=${o.tree}`, '-b', `overlay/${o.name}`,
    '--owner-uid=0', '--owner-gid=0', '--no-xattrs', '--no-bindings', '--parent=none', '--mode-ro-executables',
    '--timestamp=1970-01-01 00:00:00 +0000',
  ];
}

/**
 * Commits a layer directory as `overlay/NAME` into `repo`: the files are first laid out with
 * the overlay rules ({@link applyOverlay}: modes, statoverride), then committed.
 */
export async function commitOverlay(o: { repo: string; name: string; layer: string; tmpDir: string; signal?: AbortSignal | undefined }): Promise<string> {
  const tree = await mkdtemp(path.join(o.tmpDir, `overlay-${o.name}-`));
  try {
    await applyOverlay(tree, o.layer);
    const r = await run(overlayCommitArgv({ repo: o.repo, name: o.name, tree }), o.signal ? { signal: o.signal } : {});
    return r.stdout.trim();
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

/**
 * The treefile rpm-ostree composes when the config has overlay.d layers or overrides/rootfs, as
 * the original writes it: it includes the config's treefile, lists the committed layers in
 * `ostree-layers` (those the manifest does not list already) and overrides/rootfs in
 * `ostree-override-layers`; the config's .repo files are copied beside it. Returns the treefile to
 * compose (the config's own when there is nothing to layer). `work` is a scratch directory.
 */
export async function layeredTreefile(o: ComposeOptions, inputs: ComposeInputs, work: string): Promise<string> {
  const base = await treefileFor(o, work);
  const listed = new Set(o.manifest['ostree-layers'] ?? []);
  const layers: string[] = [];
  for (const l of inputs.overlays) {
    await commitOverlay({ repo: o.repo, name: l.name, layer: path.join(o.configDir, 'overlay.d', l.name), tmpDir: work, signal: o.signal });
    if (!listed.has(`overlay/${l.name}`)) layers.push(`overlay/${l.name}`);
  }
  const overrideLayers: string[] = [];
  if (o.overridesRootfs && Object.keys(inputs.overrides.rootfs).length > 0) {
    await commitOverlay({ repo: o.repo, name: 'cosa-overrides-rootfs', layer: o.overridesRootfs, tmpDir: work, signal: o.signal });
    overrideLayers.push('overlay/cosa-overrides-rootfs');
  }
  if (layers.length === 0 && overrideLayers.length === 0) return base;
  const dir = path.join(work, 'treefile');
  await mkdir(dir, { recursive: true });
  for (const f of (await readdir(o.configDir)).filter((x) => x.endsWith('.repo'))) await copyFile(path.join(o.configDir, f), path.join(dir, f));
  const file = path.join(dir, 'cosa-override-manifest.json');
  await writeFile(file, stableStringify({ include: base, ...(layers.length ? { 'ostree-layers': layers } : {}), ...(overrideLayers.length ? { 'ostree-override-layers': overrideLayers } : {}) }));
  return file;
}
