import { z } from 'zod';

/**
 * image.yaml after `include:` merging and defaults (the original's image-default.yaml).
 * Unknown keys are kept.
 */
export const imageConfigSchema = z.looseObject({
  /** Cloud/qemu image size in GiB. When absent, estimated from the commit size. */
  size: z.number({ error: 'must be the disk size in GiB (a number)' }).positive({ error: 'must be the disk size in GiB, greater than 0' }).optional(),
  bootfs: z.enum(['ext4', 'xfs']).default('ext4'),
  rootfs: z.enum(['xfs', 'ext4', 'ext4verity', 'btrfs']).default('xfs'),
  'rootfs-args': z.string().default(''),
  composefs: z.boolean().default(false),
  'extra-kargs': z.array(z.string()).default([]),
  'ostree-format': z.string().default('oci-chunked-v1'),
  'deploy-via-container': z.boolean().default(false),
  'container-imgref': z.string().optional(),
  'squashfs-compression': z.string().default('zstd'),
  'vmware-hw-version': z.number().int().default(13),
  'vmware-os-type': z.string().default('rhel7_64Guest'),
  'vmware-secure-boot': z.boolean().default(true),
  'aws-imdsv2-only': z.boolean().default(true),
  'aws-volume-type': z.string().default('gp3'),
  'aws-x86-boot-mode': z.string().default('uefi-preferred'),
  compressor: z.enum(['xz', 'gzip', 'zstd']).optional(),
  'bootfs_metadata_csum_seed': z.boolean().optional(),
  /** The console(s) on the kernel command line (default per arch, e.g. ttyS0,115200n8). */
  console: z.array(z.string()).optional(),
  /**
   * Network kernel arguments for Ignition's first boot (absent: the original's default,
   * `[]`: none); appended across includes. One argument per entry, no quotes or spaces.
   */
  'ignition-network-kcmdline': z.array(z.string().regex(/^[^\s'"\\$;]+$/, 'one kernel argument per entry, without spaces, quotes, "\\", "$" or ";"')).optional(),
  /** Remote name prefixed to the deployed ostree ref (e.g. `fedora`): origin `<remote>:<ref>`. */
  'ostree-remote': z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'an ostree remote name (letters, digits, ".", "_", "-")').optional(),
  /** cosa: the URL of `ostree-remote`, configured in the disk's sysroot repo (no GPG check unless `ostree-remote-gpg-verify`). */
  'ostree-remote-url': z.url({ protocol: /^(https?|file)$/, error: 'an http(s):// or file:// URL' }).optional(),
  /** cosa: verify GPG signatures when pulling from `ostree-remote-url` (default false). */
  'ostree-remote-gpg-verify': z.boolean().optional(),
  /** The GRUB config written as /boot's grub.cfg instead of cosa's (the original's grub.cfg). */
  'grub-script': z.string().optional(),
  /** Add OpenShift CVO labels to the ostree container (default false). */
  'ostree-container-inject-openshift-cvo-labels': z.boolean().default(false),
  /** Install with `bootc install to-filesystem` instead of ostree deployment. */
  'bootc-install-to-fs': z.boolean().optional(),
});
export type ImageConfig = z.output<typeof imageConfigSchema>;
