import { z } from 'zod';
import { parseJsonText, stableStringify, validate } from './json.js';
import { safeSegment } from './builds.js';

/** An artifact file name inside the build dir: a single path segment. */
const artifactPath = safeSegment;

/** One entry of meta.json `images`. */
export const artifactSchema = z.looseObject({
  path: artifactPath,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex sha256'),
  size: z.number().int().nonnegative().optional(),
  'skip-compression': z.boolean().optional(),
  'uncompressed-sha256': z.string().regex(/^[0-9a-f]{64}$/).optional(),
  'uncompressed-size': z.number().int().nonnegative().optional(),
});
export type Artifact = z.output<typeof artifactSchema>;

/** The image keys the original schema allows under `images`. */
export const IMAGE_KEYS = [
  'ostree', 'oci-manifest', 'qemu', 'qemu-secex', 'ignition-gpg-key', 'metal', 'metal4k', 'dasd', 'iso',
  'kernel', 'initramfs', 'live-iso', 'live-kernel', 'live-initramfs', 'live-rootfs', 'aliyun', 'applehv',
  'aws', 'azure', 'azurestack', 'digitalocean', 'exoscale', 'gcp', 'hetzner', 'hyperv', 'ibmcloud',
  'powervs', 'kubevirt', 'nutanix', 'nvidiabluefield', 'openstack', 'oraclecloud', 'proxmoxve',
  'virtualbox', 'vmware', 'vultr', 'extensions-container', 'legacy-oscontainer',
  // Not in the original's list (its schema allows extra image keys): the build's SPDX SBOM.
  'sbom',
] as const;
export type ImageKey = (typeof IMAGE_KEYS)[number];

const imagesShape = Object.fromEntries(IMAGE_KEYS.map((k) => [k, k === 'ostree' ? artifactSchema : artifactSchema.optional()])) as {
  [K in ImageKey]: K extends 'ostree' ? typeof artifactSchema : z.ZodOptional<typeof artifactSchema>;
};
/**
 * meta.json `images`: `ostree` required. A key this version does not know (a newer cosa's
 * platform) is kept as it is, as the original schema allows; like every entry it must still be an
 * artifact (a `path` inside the build dir and a `sha256`), so nothing reads or writes outside it.
 */
export const imagesSchema = z.object(imagesShape).catchall(artifactSchema);

const gitSchema = z.looseObject({
  commit: z.string().min(5),
  origin: z.string(),
  branch: z.string().optional(),
  dirty: z.string().min(1).optional(),
});
const imageRef = z.looseObject({ image: z.string(), digest: z.string().optional(), tags: z.array(z.string()).optional(), comment: z.string().optional() });
const primaryImage = imageRef.extend({ 'manifest-list-digest': z.string().optional(), 'additional-images': z.array(z.unknown()).optional() });
const cloudArtifact = z.looseObject({ url: z.string(), image: z.string().optional(), object: z.string().optional(), bucket: z.string().optional(), region: z.string().optional() });
const ami = z.looseObject({ name: z.string(), hvm: z.string(), snapshot: z.string() });
const rfc3339 = z.string().regex(/\d{4}-\d{2}-\d{2}T.*Z$/, 'must be an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SSZ)');

/**
 * builds/<id>/<arch>/meta.json, as the original's v1 JSON schema: the top level is closed
 * (unknown keys are errors), nested objects are open.
 */
export const metaJsonSchema = z.strictObject({
  buildid: safeSegment,
  name: z.string(),
  'ostree-commit': z.string().min(64),
  'ostree-timestamp': rfc3339,
  'ostree-version': z.string(),
  ref: z.string().optional(),
  'build-url': z.string().optional(),
  summary: z.string().optional(),
  s3: z.looseObject({ bucket: z.string().optional(), key: z.string().optional(), 'public-url': z.string().optional() }).optional(),
  koji: z.looseObject({ build_id: z.number().optional(), token: z.string().optional(), release: z.string().optional() }).optional(),
  'coreos-assembler.basearch': z.string().optional(),
  'coreos-assembler.build-timestamp': z.string().min(1).optional(),
  'coreos-assembler.oci-imported': z.boolean().optional(),
  'coreos-assembler.oci-imported-labels': z.record(z.string(), z.string()).optional(),
  'coreos-assembler.code-source': z.string().optional(),
  'coreos-assembler.config-dirty': z.string().min(1).optional(),
  'coreos-assembler.config-gitrev': z.string().optional(),
  'coreos-assembler.config-variant': z.string().optional(),
  'coreos-assembler.container-config-git': gitSchema.optional(),
  'coreos-assembler.container-image-git': gitSchema.optional(),
  'coreos-assembler.delayed-meta-merge': z.boolean().optional(),
  'coreos-assembler.yumrepos-git': gitSchema.optional(),
  'coreos-assembler.meta-stamp': z.number().optional(),
  'fedora-coreos.parent-version': z.string().optional(),
  'fedora-coreos.parent-commit': z.string().optional(),
  'coreos-assembler.image-config-checksum': z.string().optional(),
  'coreos-assembler.image-genver': z.number().int().optional(),
  'coreos-assembler.image-input-checksum': z.string().optional(),
  'coreos-assembler.overrides-active': z.boolean().optional(),
  images: imagesSchema.optional(),
  oscontainer: imageRef.optional(),
  extensions: z.looseObject({ manifest: z.record(z.string(), z.unknown()), path: z.string().optional(), sha256: z.string().optional(), 'rpm-ostree-state': z.string().optional() }).optional(),
  'ostree-content-bytes-written': z.number().int().optional(),
  'ostree-content-checksum': z.string().optional(),
  'ostree-n-cache-hits': z.number().int().optional(),
  'ostree-n-content-total': z.number().int().optional(),
  'ostree-n-content-written': z.number().int().optional(),
  'ostree-n-metadata-total': z.number().int().optional(),
  'ostree-n-metadata-written': z.number().int().optional(),
  pkgdiff: z.array(z.unknown()).optional(),
  'parent-pkgdiff': z.array(z.unknown()).optional(),
  'advisories-diff': z.array(z.unknown()).optional(),
  'parent-advisories-diff': z.array(z.unknown()).optional(),
  'rpm-ostree-inputhash': z.string().optional(),
  aliyun: z.array(z.looseObject({ name: z.string(), id: z.string() })).optional(),
  amis: z.array(ami).optional(),
  'aws-winli': z.array(ami).optional(),
  azure: cloudArtifact.optional(),
  'base-oscontainer': imageRef.optional(),
  'extensions-container': primaryImage.optional(),
  gcp: z.looseObject({ image: z.string(), url: z.string(), project: z.string().optional(), family: z.string().optional() }).optional(),
  kubevirt: primaryImage.optional(),
  ibmcloud: z.array(cloudArtifact).optional(),
  powervs: z.array(cloudArtifact).optional(),
  'release-payload': imageRef.optional(),
});
export type MetaJson = z.output<typeof metaJsonSchema>;

/** Parses and validates meta.json text; errors name the file and the JSON path. */
export function parseMetaJson(text: string, file = 'meta.json'): MetaJson {
  return validate(metaJsonSchema, parseJsonText(text, file), file);
}

/** Validates a meta.json object (e.g. before writing it). */
export function validateMetaJson(data: unknown, file = 'meta.json'): MetaJson {
  return validate(metaJsonSchema, data, file);
}

/** Serializes meta.json (validated; stable key order; 4-space indent; trailing newline). */
export function serializeMetaJson(meta: MetaJson, file = 'meta.json'): string {
  return stableStringify(validateMetaJson(meta, file));
}
