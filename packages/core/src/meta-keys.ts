import { join } from 'node:path';
import { CosaError, SchemaError, validateMetaJson, type MetaJson } from '@cosa/schema';
import { formatPath } from '@cosa/schema/internal';
import { openWorkdir, type WorkdirLike } from './workdir.js';
import { hostArch } from './_paths.js';

/** Top-level meta.json key prefixes whose keys contain a dot (`coreos-assembler.basearch`). */
const DOTTED_PREFIXES = ['coreos-assembler', 'fedora-coreos'];

/**
 * Splits a dotted key path as the original's `cosa meta` does: `images.qemu.path` →
 * `['images', 'qemu', 'path']`, but a key that itself contains a dot keeps its first dot:
 * `coreos-assembler.container-config-git.commit` → `['coreos-assembler.container-config-git', 'commit']`.
 */
export function splitMetaKey(key: string): string[] {
  const parts = key.split('.');
  // These would reach (and change) Object.prototype for the whole process.
  if (parts.some((p) => FORBIDDEN_SEGMENTS.has(p))) throw new CosaError('COSA_META_KEY', `invalid key ${JSON.stringify(key)}: ${[...FORBIDDEN_SEGMENTS].join(', ')} are not allowed`);
  if (parts.length >= 2 && DOTTED_PREFIXES.includes(parts[0]!)) {
    return [`${parts[0]}.${parts[1]}`, ...parts.slice(2)];
  }
  if (parts.some((p) => p === '')) throw new CosaError('COSA_META_KEY', `invalid key ${JSON.stringify(key)}`);
  return parts;
}

const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

/** The value at a key path, or `undefined`. */
export function getAtPath(doc: unknown, path: readonly string[]): unknown {
  let cur: unknown = doc;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, p)) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

/** A deep copy of `doc` with `value` at `path` (missing objects on the way are created). */
export function setAtPath(doc: Record<string, unknown>, path: readonly string[], value: unknown, key = path.join('.')): Record<string, unknown> {
  const out = structuredClone(doc);
  let cur: Record<string, unknown> = out;
  path.forEach((p, i) => {
    if (i === path.length - 1) {
      cur[p] = value;
      return;
    }
    if (FORBIDDEN_SEGMENTS.has(p)) throw new CosaError('COSA_META_KEY', `invalid key ${JSON.stringify(key)}`);
    const next = Object.hasOwn(cur, p) ? cur[p] : undefined;
    if (next === undefined) cur[p] = {};
    else if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throw new CosaError('COSA_META_KEY', `cannot set ${key}: ${path.slice(0, i + 1).join('.')} is not an object`);
    }
    cur = cur[p] as Record<string, unknown>;
  });
  return out;
}

/** Which build's meta.json a `cosa meta` operation works on. */
export interface MetaTarget {
  workdir: WorkdirLike;
  /** Build id or `latest` (default). */
  build?: string;
  /** Architecture (default: the host's). */
  arch?: string;
}

/** A resolved meta.json: its build, arch, file and content. */
export interface BuildMeta {
  id: string;
  arch: string;
  path: string;
  meta: MetaJson;
}

/** Reads (and validates) the meta.json of a build. */
export async function readBuildMeta(target: MetaTarget): Promise<BuildMeta> {
  const wd = await openWorkdir(target.workdir);
  const arch = target.arch ?? hostArch();
  const id = await wd.builds.resolve(target.build ?? 'latest', arch);
  const meta = await wd.builds.getMeta(id, arch);
  return { id, arch, path: wd.builds.metaPath(id, arch), meta };
}

/** Result of {@link getMetaValue}. */
export interface MetaValue {
  key: string;
  value: unknown;
}

/** `cosa meta --get KEY`: the value at a dotted key; `COSA_META_KEY` when it is not set. */
export async function getMetaValue(target: MetaTarget & { key: string }): Promise<MetaValue> {
  const { meta, path } = await readBuildMeta(target);
  const value = getAtPath(meta, splitMetaKey(target.key));
  if (value === undefined) throw new CosaError('COSA_META_KEY', `${path}: ${target.key} is not set`);
  return { key: target.key, value };
}

/**
 * `cosa meta --set KEY=VALUE…`: sets each key, validates the whole document and writes it
 * atomically under the meta.json lock. A value is stored as a string unless the schema needs
 * another type there and the text is JSON of that type (`--set coreos-assembler.image-genver=2`).
 * Nothing is written when any assignment is invalid.
 */
export async function setMetaValues(target: MetaTarget & { set: readonly string[] }): Promise<BuildMeta> {
  const assignments = target.set.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CosaError('COSA_USAGE', `--set expects KEY=VALUE, got ${JSON.stringify(item)}`);
    const key = item.slice(0, eq);
    return { key, path: splitMetaKey(key), text: item.slice(eq + 1) };
  });
  const wd = await openWorkdir(target.workdir);
  const arch = target.arch ?? hostArch();
  const id = await wd.builds.resolve(target.build ?? 'latest', arch);
  const file = wd.builds.metaPath(id, arch);
  const meta = await wd.builds.updateMeta(id, arch, (current) => {
    let doc = current as Record<string, unknown>;
    // Each value is a string unless the string is refused at that very key and its JSON form
    // is not; the whole document is validated once at the end (by updateMeta), so keys that
    // only make sense together (an object's required members) can be set in one call.
    for (const a of assignments) {
      const asString = setAtPath(doc, a.path, a.text, a.key);
      if (!hasIssueAt(asString, a.path)) {
        doc = asString;
        continue;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(a.text);
      } catch {
        parsed = undefined;
      }
      const typed = parsed !== undefined && typeof parsed !== 'string' ? setAtPath(doc, a.path, parsed, a.key) : undefined;
      doc = typed !== undefined && !hasIssueAt(typed, a.path) ? typed : asString;
    }
    return doc;
  });
  return { id, arch, path: file, meta };
}

/** True when validating `doc` reports a problem at `path` or inside it. */
function hasIssueAt(doc: unknown, path: readonly string[]): boolean {
  const at = formatPath(path);
  try {
    validateMetaJson(doc);
    return false;
  } catch (e) {
    if (!(e instanceof SchemaError)) throw e;
    return e.issues.some((i) => i.path === at || i.path.startsWith(`${at}.`) || i.path.startsWith(`${at}[`));
  }
}

/** `cosa meta --image-path NAME`: the absolute path of artifact `images.NAME`. */
export async function getImagePath(target: MetaTarget & { name: string }): Promise<string> {
  const { meta, path } = await readBuildMeta(target);
  const entry = (meta.images as Record<string, { path: string } | undefined> | undefined)?.[target.name];
  if (entry === undefined) throw new CosaError('COSA_META_KEY', `${path}: build has no image ${JSON.stringify(target.name)}`);
  return join(path, '..', entry.path);
}
