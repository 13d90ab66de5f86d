import { z } from 'zod';

const scalar = z.union([z.string(), z.number(), z.boolean()]);

/**
 * The Debian form of a manifest: present → the Debian (mmdebstrap) composer is used.
 * Everything else in the manifest keeps its rpm-ostree treefile meaning.
 */
export const debianSourceSchema = z.looseObject({
  /** Suite to bootstrap, e.g. `bookworm`. */
  suite: z.string().min(1),
  /** Archive components (default `[main]`). */
  components: z.array(z.string()).optional(),
  /** Mirror URL; default: the mirror the host's apt already uses. */
  mirror: z.string().optional(),
  /** Security mirror URL; default: `<mirror>-security` (bookworm-security suite). */
  'security-mirror': z.string().optional(),
  /** Extra suites such as `bookworm-updates` (default: `<suite>-updates` and `<suite>-security`). */
  'extra-suites': z.array(z.string()).optional(),
  /** mmdebstrap variant (default `minbase`). */
  variant: z.string().optional(),
  /** Shell snippets run by mmdebstrap `--customize-hook` ("$1" is the root). */
  'customize-hooks': z.array(z.string()).optional(),
  /** Hostname written to /etc/hostname. */
  hostname: z.string().optional(),
  /** Give root an empty password and mask systemd-firstboot so a serial login works unattended. */
  'unattended-login': z.boolean().optional(),
});
export type DebianSource = z.output<typeof debianSourceSchema>;

/**
 * A flattened manifest (rpm-ostree treefile keys the composers use, plus `debian`).
 * Unknown keys are kept (passed through); `--strict` reports them.
 */
export const manifestSchema = z.looseObject({
  ref: z.string().optional(),
  releasever: z.union([z.string(), z.number()]).optional(),
  'automatic-version-prefix': z.string().optional(),
  'mutate-os-release': z.string().optional(),
  rojig: z.looseObject({ name: z.string(), summary: z.string().optional(), license: z.string().optional() }).optional(),
  variables: z.record(z.string(), scalar).optional(),
  repos: z.array(z.string()).optional(),
  'lockfile-repos': z.array(z.string()).optional(),
  packages: z.array(z.string()).optional(),
  'exclude-packages': z.array(z.string()).optional(),
  'add-files': z.array(z.tuple([z.string(), z.string()])).optional(),
  'remove-files': z.array(z.string()).optional(),
  'remove-from-packages': z.array(z.array(z.string())).optional(),
  postprocess: z.array(z.string()).optional(),
  'postprocess-script': z.string().optional(),
  'ostree-layers': z.array(z.string()).optional(),
  'ostree-override-layers': z.array(z.string()).optional(),
  documentation: z.boolean().optional(),
  recommends: z.boolean().optional(),
  'install-langs': z.array(z.string()).optional(),
  'machineid-compat': z.boolean().optional(),
  'boot-location': z.string().optional(),
  tmpfiles: z.unknown().optional(),
  debian: debianSourceSchema.optional(),
  // Further rpm-ostree treefile keys (docs/treefile.md), typed so a wrong type is caught early.
  edition: z.union([z.string(), z.number()]).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  'gpg-key': z.string().optional(),
  selinux: z.boolean().optional(),
  'ignore-devices': z.boolean().optional(),
  ima: z.boolean().optional(),
  'etc-group-members': z.array(z.string()).optional(),
  'repo-packages': z.array(z.looseObject({ repo: z.string(), packages: z.array(z.string()) })).optional(),
  'container-cmd': z.array(z.string()).optional(),
  units: z.array(z.string()).optional(),
  'default-target': z.string().optional(),
  'initramfs-args': z.array(z.string()).optional(),
  rpmdb: z.string().optional(),
  'rpmdb-normalize': z.boolean().optional(),
  'selinux-label-version': z.number().int().optional(),
  cliwrap: z.boolean().optional(),
  'cliwrap-binaries': z.array(z.string()).optional(),
  'readonly-executables': z.boolean().optional(),
  'preserve-passwd': z.boolean().optional(),
  'check-passwd': z.looseObject({ type: z.string(), filename: z.string().optional() }).optional(),
  'check-groups': z.looseObject({ type: z.string(), filename: z.string().optional() }).optional(),
  'ignore-removed-users': z.array(z.string()).optional(),
  'ignore-removed-groups': z.array(z.string()).optional(),
  'automatic-version-suffix': z.string().optional(),
  'add-commit-metadata': z.record(z.string(), z.unknown()).optional(),
  container: z.boolean().optional(),
  'tmp-is-dir': z.boolean().optional(),
  'platform-module': z.string().optional(),
  repo_metadata: z.string().optional(),
  repovars: z.record(z.string(), z.string()).optional(),
  'opt-usrlocal': z.string().optional(),
});
export type Manifest = z.output<typeof manifestSchema>;

/** The OS name used in artifact names: `rojig.name`, else `cosa`. */
export function osName(m: Manifest): string {
  return m.rojig?.name ?? 'cosa';
}
