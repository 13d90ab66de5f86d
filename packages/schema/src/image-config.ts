import { z } from 'zod';

/**
 * image.yaml after `include:` merging and defaults (the original's image-default.yaml).
 * Unknown keys are kept.
 */
export const imageConfigSchema = z.looseObject({
  /** Cloud/qemu image size in GB. When absent, estimated from the commit size. */
  size: z.number().positive().optional(),
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
  /** Network kernel arguments for Ignition's first boot (`[]`: none); appended across includes. */
  'ignition-network-kcmdline': z.array(z.string()).optional(),
  /** Remote name prefixed to the deployed ostree ref (e.g. `fedora`). */
  'ostree-remote': z.string().optional(),
  /** Add OpenShift CVO labels to the ostree container (default false). */
  'ostree-container-inject-openshift-cvo-labels': z.boolean().default(false),
  /** Install with `bootc install to-filesystem` instead of ostree deployment. */
  'bootc-install-to-fs': z.boolean().optional(),
});
export type ImageConfig = z.output<typeof imageConfigSchema>;
