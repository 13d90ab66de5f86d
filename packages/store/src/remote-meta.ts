import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError } from '@cosa/schema';
import { readRegularFile } from '@cosa/schema/internal';

/**
 * Top-level meta.json keys a platform owns besides `images.<platform>`: what its publishing step
 * records (`amis` for aws, …). `buildupload --artifact P` carries these over with the image.
 */
export const PLATFORM_OWNED_KEYS: Readonly<Record<string, readonly string[]>> = {
  aws: ['amis', 'aws-winli'],
  gcp: ['gcp'],
  azure: ['azure'],
  aliyun: ['aliyun'],
  ibmcloud: ['ibmcloud'],
  powervs: ['powervs'],
  kubevirt: ['kubevirt'],
};

/** meta.json key that switches an artifact's metadata into `meta.<artifact>.json` (the original's). */
export const DELAYED_MERGE_KEY = 'coreos-assembler.delayed-meta-merge';
const STAMP_KEY = 'coreos-assembler.meta-stamp';
/** Keys that must be equal on both sides of a merge: one build is one content (the original's rules). */
const IDENTITY_KEYS = ['buildid', 'ostree-commit', 'ostree-content-checksum', 'coreos-assembler.image-config-checksum'] as const;

type Doc = Record<string, unknown>;

const isObject = (v: unknown): v is Doc => v !== null && typeof v === 'object' && !Array.isArray(v);
const imagesOf = (d: Doc): Doc => (isObject(d.images) ? d.images : {});

/** Throws COSA_META_MERGE_CONFLICT when `a` and `b` describe different content. */
export function checkSameContent(a: Doc, b: Doc, what: string): void {
  for (const k of IDENTITY_KEYS) {
    if (a[k] !== undefined && b[k] !== undefined && a[k] !== b[k]) {
      throw new CosaError('COSA_META_MERGE_CONFLICT', `${what}: refusing to merge, ${k} differs (${String(a[k])} remotely, ${String(b[k])} here)`, {
        hint: 'a build id names one content: upload a new build (cosa build) instead of rewriting this one',
      });
    }
  }
  const git = 'coreos-assembler.container-config-git';
  const ga = (a[git] as { commit?: unknown } | undefined)?.commit;
  const gb = (b[git] as { commit?: unknown } | undefined)?.commit;
  if (ga !== undefined && gb !== undefined && ga !== gb) {
    throw new CosaError('COSA_META_MERGE_CONFLICT', `${what}: refusing to merge, ${git}.commit differs (${String(ga)} remotely, ${String(gb)} here)`);
  }
}

/**
 * The meta.json to store when a runner uploads into a build that may already have one remotely.
 * With `artifacts`: the remote document plus `images.<P>` of each artifact and the keys the
 * platform owns ({@link PLATFORM_OWNED_KEYS}), taken from `local`. Without: `local`, plus every
 * image and key the remote has and `local` lacks (another runner's platforms survive). Either way
 * the build's identity (`buildid`, `ostree-commit`, `ostree-content-checksum`, image config,
 * config git commit) must be the same on both sides, and the result gets a new meta-stamp.
 */
export function mergeMetaForUpload(remote: Doc | undefined, local: Doc, options: { artifacts?: string[]; what: string; now?: number }): Doc {
  if (!remote) return local;
  checkSameContent(remote, local, options.what);
  let out: Doc;
  if (options.artifacts) {
    out = { ...remote, images: { ...imagesOf(remote) } };
    for (const p of options.artifacts) {
      const img = imagesOf(local)[p];
      if (img !== undefined) (out.images as Doc)[p] = img;
      for (const k of PLATFORM_OWNED_KEYS[p] ?? []) if (local[k] !== undefined) out[k] = local[k];
    }
  } else {
    out = { ...remote, ...local, images: { ...imagesOf(remote), ...imagesOf(local) } };
  }
  const stamps = [remote[STAMP_KEY], local[STAMP_KEY]].filter((s): s is number => typeof s === 'number');
  out[STAMP_KEY] = Math.max(options.now ?? Date.now() * 1e6, ...stamps);
  return out;
}

/**
 * A build arch dir's meta.json as an uploader sees it: with the original's delayed merge
 * (`coreos-assembler.delayed-meta-merge: true`), images and platform keys still waiting in
 * `meta.<artifact>.json` files are folded in (the file's own values win for its artifact).
 */
export async function readLocalMeta(dir: string): Promise<{ text: string; doc: Doc; pending: string[] }> {
  // Not through a symlink: a meta.json that points elsewhere must not publish that file's content.
  const text = await readRegularFile(join(dir, 'meta.json'));
  const doc = JSON.parse(text) as Doc;
  if (doc[DELAYED_MERGE_KEY] !== true) return { text, doc, pending: [] };
  const pending: string[] = [];
  const out: Doc = { ...doc, images: { ...imagesOf(doc) } };
  for (const name of (await readdir(dir)).sort()) {
    const m = /^meta\.(.+)\.json$/.exec(name);
    if (!m) continue;
    const file = join(dir, name);
    let part: Doc;
    try {
      part = JSON.parse(await readFile(file, 'utf8')) as Doc;
    } catch (e) {
      throw new CosaError('COSA_SCHEMA_INVALID', `${file} is not valid JSON`, { cause: e });
    }
    checkSameContent(doc, part, file);
    // meta.<artifact>.json holds the whole document as that artifact's writer saw it: take its
    // images the main document lacks, and the keys their platforms own.
    for (const [k, img] of Object.entries(imagesOf(part))) {
      if ((out.images as Doc)[k] !== undefined && k !== m[1]) continue;
      (out.images as Doc)[k] = img;
      pending.push(k);
      for (const key of PLATFORM_OWNED_KEYS[k] ?? []) if (part[key] !== undefined) out[key] = part[key];
    }
  }
  return { text, doc: out, pending: [...new Set(pending)] };
}
