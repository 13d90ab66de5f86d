import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { ConfigFileError, formatChain, isNotFound, isPlainObject, readConfigDocument, withChain, type PlainObject } from './_config-io.js';
import { stableStringify, zodIssues } from './json.js';
import { imageConfigSchema, type ImageConfig } from './image-config.js';

/** Options for {@link loadImageConfig}. */
export interface LoadImageConfigOptions {
  /** The top-level image config, e.g. `src/config/image.yaml` (or `image-<variant>.yaml`). */
  file: string;
}

/** The result of {@link loadImageConfig}. */
export interface LoadedImageConfig {
  /** The merged config with the original's defaults (image-default.yaml) applied. */
  config: ImageConfig;
  /** Every file read, outermost first (absolute paths). */
  files: string[];
  /**
   * `config` as stable JSON (sorted keys): the bytes of `tmp/image.json` whose sha256 is
   * `coreos-assembler.image-config-checksum`.
   */
  rendered: string;
  /** sha256 (hex) of `rendered`: meta.json's `coreos-assembler.image-config-checksum`. */
  checksum: string;
}

const MAX_DEPTH = 50;

/** Every key may be absent in one file of the chain; the types are still checked per file. */
const imageDocumentSchema = imageConfigSchema.partial();

/** The lists the original appends across an include chain; for any other key the including file wins. */
const APPENDED_LISTS = new Set(['extra-kargs', 'ignition-network-kcmdline']);

/**
 * Merges an included document under the including one, as the original's flatten_image_yaml:
 * `extra-kargs` and `ignition-network-kcmdline` are appended (the including file's entries
 * first), mappings merge recursively, and for anything else the including file wins.
 */
function mergeUnder(dest: PlainObject, src: PlainObject, top = true): PlainObject {
  // No prototype: a `__proto__:` key stays a key, never the merged object's prototype.
  const out: PlainObject = Object.assign(Object.create(null) as PlainObject, dest);
  for (const [k, v] of Object.entries(src)) {
    const cur = out[k];
    if (cur === undefined) out[k] = v;
    else if (top && APPENDED_LISTS.has(k) && Array.isArray(cur) && Array.isArray(v)) out[k] = [...cur, ...v];
    else if (isPlainObject(cur) && isPlainObject(v)) out[k] = mergeUnder(cur, v, false);
  }
  return out;
}

function checkTypes(file: string, chain: string[], base: string, doc: PlainObject, schema: z.ZodType): void {
  const r = schema.safeParse(doc);
  if (!r.success) {
    throw new ConfigFileError(
      file,
      zodIssues(r.error).map((i) => ({ path: i.path, message: withChain(i.message, chain, base) })),
      { chain },
    );
  }
}

/**
 * Keys of the original's schema whose feature cosa does not build: refused when set (to anything
 * but the original's default), so a config never silently gets less than it asked for.
 */
const UNSUPPORTED: readonly { key: string; refused: (v: unknown) => boolean; why: string }[] = [
  { key: 'deploy-via-container', refused: (v) => v === true, why: 'cosa deploys the OSTree commit itself and builds no container image to deploy from; remove the key or set it to false' },
  { key: 'container-imgref', refused: (v) => v !== undefined, why: 'it only applies with deploy-via-container, which cosa does not support; remove the key' },
  { key: 'bootc-install-to-fs', refused: (v) => v === true, why: 'cosa installs with ostree admin deploy, not bootc; remove the key or set it to false' },
  { key: 'ostree-format', refused: (v) => v !== 'oci-chunked-v1', why: 'cosa exports the commit as an ostree tar and writes no OCI archive; remove the key' },
  { key: 'ostree-container-inject-openshift-cvo-labels', refused: (v) => v === true, why: 'cosa builds no OCI container image; remove the key or set it to false' },
  { key: 'squashfs-compression', refused: (v) => v !== 'zstd', why: 'cosa builds no live ISO/PXE images; remove the key' },
];

/** Refuses the image.yaml keys cosa cannot honour (see {@link UNSUPPORTED}), naming file and key. */
function refuseUnsupported(file: string, config: PlainObject): void {
  const issues = UNSUPPORTED.filter((u) => u.refused(config[u.key])).map((u) => ({ path: u.key, message: `not supported by cosa: ${u.why}` }));
  if (issues.length > 0) throw new ConfigFileError(file, issues, { chain: [file] });
}

/**
 * Loads `image.yaml` with its `include:` chain (a string or a list, relative to the including
 * file), merges it as the original does (`extra-kargs` and `ignition-network-kcmdline` appended,
 * mappings merged, otherwise the including file wins) and applies the defaults.
 *
 * @throws ConfigFileError naming the file, the include chain and the key: `COSA_CONFIG_MISSING`
 *   (top-level file absent), `COSA_CONFIG_INCLUDE` (missing include or a cycle),
 *   `COSA_SCHEMA_INVALID` (a wrong type in any file of the chain, or a key of the original's
 *   schema whose feature cosa does not build, e.g. `deploy-via-container: true`), `COSA_SCHEMA_PARSE`.
 */
export async function loadImageConfig(options: LoadImageConfigOptions): Promise<LoadedImageConfig> {
  const top = resolve(options.file);
  const base = dirname(top);
  const files: string[] = [];
  const seen = new Set<string>();

  const load = async (file: string, chain: string[], via?: { includer: string; key: string }): Promise<PlainObject> => {
    const here = [...chain, file];
    let real: string;
    try {
      real = await realpath(file);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      if (!via) throw new ConfigFileError(file, [{ path: '', message: 'image config does not exist' }], { code: 'COSA_CONFIG_MISSING', chain: here });
      throw new ConfigFileError(via.includer, [{ path: via.key, message: `included file does not exist: ${formatChain(here, base)}` }], {
        code: 'COSA_CONFIG_INCLUDE',
        chain: here,
      });
    }
    if (via && (seen.has(real) || here.length > MAX_DEPTH + 1)) {
      throw new ConfigFileError(via.includer, [{ path: via.key, message: `include cycle: ${formatChain(here, base)}` }], {
        code: 'COSA_CONFIG_INCLUDE',
        chain: here,
      });
    }
    seen.add(real);
    const doc = await readConfigDocument(file, here, base);
    if (doc === undefined) throw new ConfigFileError(file, [{ path: '', message: 'image config does not exist' }], { code: 'COSA_CONFIG_MISSING', chain: here });
    files.push(file);
    const { include, ...own } = doc;
    if (include !== undefined && typeof include !== 'string' && !(Array.isArray(include) && include.every((i) => typeof i === 'string'))) {
      throw new ConfigFileError(file, [{ path: 'include', message: withChain('expected a file name or a list of file names', here, base) }], { chain: here });
    }
    checkTypes(file, here, base, own, imageDocumentSchema);
    let merged: PlainObject = own;
    const list = include === undefined ? [] : Array.isArray(include) ? (include as string[]) : [include];
    for (const [i, p] of list.entries()) {
      const child = await load(resolve(dirname(file), p), here, { includer: file, key: Array.isArray(include) ? `include[${i}]` : 'include' });
      merged = mergeUnder(merged, child);
    }
    // Visiting a file again through a different branch is fine; only a file inside its own chain is a cycle.
    seen.delete(real);
    return merged;
  };

  const merged = await load(top, []);
  const r = imageConfigSchema.safeParse(merged);
  if (!r.success) throw new ConfigFileError(top, zodIssues(r.error), { chain: [top] });
  refuseUnsupported(top, r.data);
  const rendered = stableStringify(r.data);
  return { config: r.data, files, rendered, checksum: createHash('sha256').update(rendered).digest('hex') };
}
