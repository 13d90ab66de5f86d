/**
 * A build's inputs record (`builds/<id>/<arch>/inputs.json`): the compose inputs description
 * that `rpm-ostree-inputhash` is the hash of, plus the image config. "What changed" between two
 * builds is {@link diffInputs} of their records.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { stableStringify, writeFileAtomic } from '@cosa/schema';
import type { ComposeInputs, DescribedPackage, TreeDescription, TreeEntry } from '@cosa/ostree';

/** The file name of the record in a build directory. */
export const INPUTS_FILE = 'inputs.json';

/** What `inputs.json` holds. */
export interface InputsRecord {
  /** sha256 over the canonical JSON of `compose` (= meta.json `rpm-ostree-inputhash`). */
  inputhash: string;
  /** The compose inputs description. */
  compose: ComposeInputs;
  /** The image config (image.yaml merged, as rendered) and its checksum. */
  image: { checksum: string; config: unknown };
}

/** Reads a build's inputs record; undefined for builds made before it existed (or unreadable). */
export async function readInputsRecord(buildDir: string): Promise<InputsRecord | undefined> {
  const text = await readFile(join(buildDir, INPUTS_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as InputsRecord;
    return typeof r.inputhash === 'string' && r.compose && r.image ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Writes `inputs.json` into `dir` (atomic). */
export async function writeInputsRecord(dir: string, r: InputsRecord): Promise<void> {
  await writeFileAtomic(join(dir, INPUTS_FILE), stableStringify(r));
}

/** At most this many items per category in a change line. */
const MAX_ITEMS = 8;

function capped(items: string[]): string {
  return items.length > MAX_ITEMS ? `${items.slice(0, MAX_ITEMS).join(', ')}, … (${items.length - MAX_ITEMS} more)` : items.join(', ');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

/** The paths where two JSON values differ (`postprocess[2] changed`, `packages +jq -vim`, `ref changed`). */
export function diffJson(a: unknown, b: unknown, path = ''): string[] {
  if (isDeepStrictEqual(a, b)) return [];
  if (isObject(a) && isObject(b)) {
    const out: string[] = [];
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in a)) out.push(`${p} added`);
      else if (!(k in b)) out.push(`${p} removed`);
      else out.push(...diffJson(a[k], b[k], p));
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const prim = (x: unknown[]) => x.every((v) => typeof v !== 'object' || v === null);
    // Lists of names (packages, repos) read best as +/-; lists of scripts by position.
    const scripts = [...a, ...b].some((v) => typeof v === 'string' && /\s/.test(v));
    if (prim(a) && prim(b) && !(scripts && a.length === b.length)) {
      const sa = new Set(a.map(show));
      const sb = new Set(b.map(show));
      const plus = [...sb].filter((x) => !sa.has(x)).map((x) => `+${x}`);
      const minus = [...sa].filter((x) => !sb.has(x)).map((x) => `-${x}`);
      if (plus.length + minus.length > 0) return [`${path} ${[...plus, ...minus].join(' ')}`];
      return [`${path} reordered`];
    }
    if (a.length === b.length) return a.flatMap((v, i) => diffJson(v, b[i], `${path}[${i}]`));
    return [`${path} changed (${a.length} → ${b.length} items)`];
  }
  return [`${path || '(value)'} changed`];
}

function entryChange(a: TreeEntry, b: TreeEntry): string {
  if (a.type !== b.type) return `${a.type} → ${b.type}`;
  if (a.type === 'symlink' && b.type === 'symlink') return `link → ${b.target}`;
  const parts: string[] = [];
  if (a.type === 'file' && b.type === 'file' && a.sha256 !== b.sha256) parts.push('changed');
  if ('mode' in a && 'mode' in b && a.mode !== b.mode) parts.push(`mode ${a.mode} → ${b.mode}`);
  return parts.join(', ') || 'changed';
}

/** `path added`, `path removed`, `path changed`, `path mode 0644 → 0755`, `path link → target`. */
export function diffTrees(a: TreeDescription, b: TreeDescription): string[] {
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const x = a[k];
    const y = b[k];
    if (!x) out.push(`${k} added`);
    else if (!y) out.push(`${k} removed`);
    else if (!isDeepStrictEqual(x, y)) out.push(`${k} ${entryChange(x, y)}`);
  }
  return out;
}

/** `+jq 1.6-2.1`, `-vim 9.0`, `bash 5.1 → 5.2`, `bash 5.2 rebuilt` (same version, new checksum). */
export function diffPackageSets(a: DescribedPackage[], b: DescribedPackage[]): string[] {
  const key = (p: DescribedPackage) => `${p.name}.${p.arch}`;
  const am = new Map(a.map((p) => [key(p), p]));
  const bm = new Map(b.map((p) => [key(p), p]));
  const out: string[] = [];
  for (const k of [...new Set([...am.keys(), ...bm.keys()])].sort()) {
    const x = am.get(k);
    const y = bm.get(k);
    if (!x && y) out.push(`+${y.name} ${y.evr}`);
    else if (x && !y) out.push(`-${x.name} ${x.evr}`);
    else if (x && y && x.evr !== y.evr) out.push(`${y.name} ${x.evr} → ${y.evr}`);
    else if (x && y && x.checksum !== y.checksum) out.push(`${y.name} ${y.evr} rebuilt`);
  }
  return out;
}

/**
 * What changed between two inputs records, one string per category:
 * `packages: +jq 1.6-2.1`, `overrides/rootfs: usr/share/x added`, `manifest: postprocess[2] changed`,
 * `config: post.sh changed`, `overlay.d/10x: etc/y added`, `image.yaml: size changed`, …
 * Empty when they are the same.
 */
export function diffInputs(prev: InputsRecord, next: InputsRecord): string[] {
  const a = prev.compose;
  const b = next.compose;
  const out: string[] = [];
  const add = (label: string, items: string[]) => {
    if (items.length > 0) out.push(`${label}: ${capped(items)}`);
  };
  if (a.schema !== b.schema) out.push(`inputs description: format ${a.schema} → ${b.schema}`);
  if (a.composer.name !== b.composer.name || a.composer.version !== b.composer.version) {
    out.push(`composer: ${a.composer.name} ${a.composer.version} → ${b.composer.name} ${b.composer.version}`);
  }
  if (a.arch !== b.arch) out.push(`arch: ${a.arch} → ${b.arch}`);
  if (a.variant !== b.variant) out.push(`variant: ${a.variant ?? '(none)'} → ${b.variant ?? '(none)'}`);
  add('manifest', diffJson(a.manifest, b.manifest));
  add('config', diffTrees(a.files ?? {}, b.files ?? {}));
  const al = (a.overlays ?? []).map((l) => l.name);
  const bl = (b.overlays ?? []).map((l) => l.name);
  if (!isDeepStrictEqual(al, bl)) out.push(`overlay.d: layers ${al.join(' ') || '(none)'} → ${bl.join(' ') || '(none)'}`);
  for (const l of b.overlays ?? []) {
    const old = (a.overlays ?? []).find((x) => x.name === l.name);
    if (old) add(`overlay.d/${l.name}`, diffTrees(old.tree, l.tree));
  }
  add('overrides/rootfs', diffTrees(a.overrides?.rootfs ?? {}, b.overrides?.rootfs ?? {}));
  add('overrides/rpm', diffTrees(a.overrides?.rpm ?? {}, b.overrides?.rpm ?? {}));
  add('packages', diffPackageSets(a.packages ?? [], b.packages ?? []));
  add('composer inputs', diffJson(a.extra ?? {}, b.extra ?? {}));
  add('image.yaml', diffJson(prev.image.config, next.image.config));
  if (out.length === 0 && prev.inputhash !== next.inputhash) out.push('inputs: hash differs');
  return out;
}
