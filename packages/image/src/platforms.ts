/**
 * The platform table: every image cosa derives from the base disk, in one place. An entry says
 * which file a platform gets (format, options, packaging, extension), which Ignition platform id
 * and console settings it boots with, and whether `cosa compress` may touch it.
 */
import { CosaError } from '@cosa/schema';

/** Output formats `qemu-img convert -O` is asked for. */
export type DiskFormat = 'raw' | 'qcow2' | 'vmdk' | 'vpc' | 'vhdx';

/** How the converted disk is wrapped into the artifact. */
export type Packaging =
  /** The converted disk is the artifact. */
  | 'none'
  /** GCP: a gzip'd tar (GNU oldgnu format, sparse) holding `disk.raw`. */
  | 'gcp-tar'
  /** OVA: an ustar tar holding the OVF descriptor first, then `disk.vmdk`. */
  | 'ova';

/** The static description of one platform (arch independent). */
export interface PlatformSpec {
  /** The meta.json `images` key and the `<platform>` part of the file name, e.g. `aws`. */
  readonly key: string;
  /** Value of `ignition.platform.id=` on the kernel command line. */
  readonly ignitionId: string;
  /** File name extension of the artifact, e.g. `vmdk`, `tar.gz`. */
  readonly extension: string;
  /** Format passed to `qemu-img convert -O` (`raw`: no conversion). */
  readonly format: DiskFormat;
  /** Options passed to `qemu-img convert -o` (joined with commas). */
  readonly convertOptions: readonly string[];
  /** `qemu-img convert -c`: compressed clusters (qcow2 only). */
  readonly compressClusters: boolean;
  /** Wrapping of the converted disk. */
  readonly packaging: Packaging;
  /** `skip-compression` in meta.json: `cosa compress` leaves the artifact alone. */
  readonly skipCompression: boolean;
  /** Round the virtual size up to a whole MiB before converting (Azure requires it). */
  readonly roundUpToMiB: boolean;
  /**
   * The platform cannot be derived from the usual 512-byte-sector base disk: the disk writer has
   * to write a disk of its own with these properties, which is then passed as `baseRaw`.
   */
  readonly needsOwnDisk?: { readonly sectorSize: 4096; readonly biosBoot: false };
  /** Logical sector size of the base disk this platform derives from. */
  readonly sectorSize: 512 | 4096;
  /** OVF flavour for OVA packaging. */
  readonly ova?: 'vmware' | 'virtualbox';
}

/** The settings a platform gets in the original's `platforms.yaml`, per arch and platform id. */
export interface PlatformSettings {
  /** Kernel arguments added for this platform (console settings, mostly). */
  kernel_arguments?: string[];
  /** GRUB commands placed in grub.cfg's console block. */
  grub_commands?: string[];
}

/**
 * The original's `platforms.yaml`: `arch → ignition platform id → settings`. When given, it
 * replaces the built-in defaults entirely (an arch/platform pair it does not list gets no extra
 * kernel arguments and no GRUB console commands, as in the original).
 */
export type PlatformsConfig = Record<string, Record<string, PlatformSettings | undefined> | undefined>;

const VMDK_STREAM = ['adapter_type=lsilogic', 'subformat=streamOptimized', 'compat6'] as const;

type Row = Partial<PlatformSpec> & Pick<PlatformSpec, 'extension' | 'format'>;
const rows: Record<string, Row> = {
  qemu: { extension: 'qcow2', format: 'qcow2' },
  metal: { extension: 'raw', format: 'raw' },
  metal4k: { extension: 'raw', format: 'raw', ignitionId: 'metal', sectorSize: 4096, needsOwnDisk: { sectorSize: 4096, biosBoot: false } },
  aws: { extension: 'vmdk', format: 'vmdk', convertOptions: VMDK_STREAM },
  azure: { extension: 'vhd', format: 'vpc', convertOptions: ['force_size', 'subformat=fixed'], roundUpToMiB: true },
  azurestack: { extension: 'vhd', format: 'vpc', convertOptions: ['force_size', 'subformat=fixed'], roundUpToMiB: true },
  gcp: { extension: 'tar.gz', format: 'raw', packaging: 'gcp-tar', skipCompression: true },
  openstack: { extension: 'qcow2', format: 'qcow2' },
  ibmcloud: { extension: 'qcow2', format: 'qcow2' },
  aliyun: { extension: 'qcow2', format: 'qcow2' },
  exoscale: { extension: 'qcow2', format: 'qcow2' },
  digitalocean: { extension: 'qcow2', format: 'qcow2' },
  oraclecloud: { extension: 'qcow2', format: 'qcow2' },
  proxmoxve: { extension: 'qcow2', format: 'qcow2' },
  nutanix: { extension: 'qcow2', format: 'qcow2', compressClusters: true, skipCompression: true },
  hetzner: { extension: 'raw', format: 'raw' },
  vultr: { extension: 'raw', format: 'raw' },
  applehv: { extension: 'raw', format: 'raw' },
  hyperv: { extension: 'vhdx', format: 'vhdx', convertOptions: ['subformat=dynamic'] },
  vmware: { extension: 'ova', format: 'vmdk', convertOptions: VMDK_STREAM, packaging: 'ova', ova: 'vmware', skipCompression: true },
  virtualbox: { extension: 'ova', format: 'vmdk', convertOptions: ['subformat=streamOptimized'], packaging: 'ova', ova: 'virtualbox', skipCompression: true },
};

/** Every platform cosa can derive from the base disk, keyed by its images key. */
export const PLATFORMS: Readonly<Record<string, PlatformSpec>> = Object.freeze(
  Object.fromEntries(
    Object.entries(rows).map(([key, r]) => [
      key,
      Object.freeze({
        key,
        ignitionId: r.ignitionId ?? key,
        extension: r.extension,
        format: r.format,
        convertOptions: r.convertOptions ?? [],
        compressClusters: r.compressClusters ?? false,
        packaging: r.packaging ?? 'none',
        skipCompression: r.skipCompression ?? false,
        roundUpToMiB: r.roundUpToMiB ?? false,
        sectorSize: r.sectorSize ?? 512,
        ...(r.needsOwnDisk ? { needsOwnDisk: r.needsOwnDisk } : {}),
        ...(r.ova ? { ova: r.ova } : {}),
      } satisfies PlatformSpec),
    ]),
  ),
);

/** The names of every known platform, sorted. */
export function listPlatforms(): string[] {
  return Object.keys(PLATFORMS).sort();
}

/** The spec of `platform`; throws `COSA_PLATFORM_UNKNOWN` (listing the known ones) otherwise. */
export function getPlatform(platform: string): PlatformSpec {
  const spec = Object.hasOwn(PLATFORMS, platform) ? PLATFORMS[platform] : undefined;
  if (!spec) {
    const known = listPlatforms();
    throw new CosaError('COSA_PLATFORM_UNKNOWN', `unknown platform "${platform}"; known platforms: ${known.join(', ')}`, {
      hint: `use one of: ${known.join(', ')}`,
    });
  }
  return spec;
}

/** The serial console of each architecture, as the original's defaults. */
export const ARCH_SERIAL_CONSOLE: Readonly<Record<string, string>> = Object.freeze({
  x86_64: 'ttyS0,115200n8',
  aarch64: 'ttyAMA0,115200n8',
  ppc64le: 'hvc0',
  s390x: 'ttysclp0',
  riscv64: 'ttyS0,115200n8',
});

const SERIAL_GRUB = ['serial --speed=115200', 'terminal_input serial console', 'terminal_output serial console'];

/**
 * The built-in platforms config for `arch`, used when the caller passes none. Serial first for
 * the local/bare-metal platforms (so a boot test sees the login prompt), graphical console
 * primary with serial logging on the clouds that show a screenshot or VNC console, and the
 * Azure and GCP specifics.
 */
export function defaultPlatformsConfig(arch: string): Record<string, PlatformSettings> {
  const serial = `console=${ARCH_SERIAL_CONSOLE[arch] ?? 'ttyS0,115200n8'}`;
  // petitboot (ppc64le) and zipl (s390x) read no GRUB commands.
  const grub = arch === 'x86_64' || arch === 'aarch64' || arch === 'riscv64' ? SERIAL_GRUB : undefined;
  const withGrub = (kernel_arguments: string[]): PlatformSettings => (grub ? { kernel_arguments, grub_commands: [...grub] } : { kernel_arguments });
  const out: Record<string, PlatformSettings> = {};
  for (const id of ['qemu', 'metal', 'hetzner', 'vultr', 'applehv', 'proxmoxve', 'nutanix']) out[id] = withGrub([serial]);
  // graphical console available: tty0 first, the serial console last (= /dev/console).
  for (const id of ['aws', 'openstack', 'ibmcloud', 'aliyun', 'exoscale', 'digitalocean', 'oraclecloud', 'hyperv', 'azurestack']) {
    out[id] = withGrub(['console=tty0', serial]);
  }
  // VMware and VirtualBox users look at the VM window: graphical console primary.
  for (const id of ['vmware', 'virtualbox']) out[id] = withGrub([serial, 'console=tty0']);
  const serialPort = (ARCH_SERIAL_CONSOLE[arch] ?? 'ttyS0,115200n8').split(',')[0] ?? 'ttyS0';
  // Azure: GRUB writes to the console only (copied to the serial port); the kernel logs early to it.
  out['azure'] = { kernel_arguments: [serial, `earlyprintk=${serialPort},115200`, 'rootdelay=300'] };
  out['gcp'] = withGrub([serial]);
  return out;
}

/** A platform with its settings resolved for one arch and platforms config. */
export interface ResolvedPlatform extends PlatformSpec {
  /** Kernel arguments this platform adds. */
  readonly kernelArguments: readonly string[];
  /** GRUB commands for grub.cfg's console block (empty: the block is emptied). */
  readonly grubCommands: readonly string[];
}

/** Options of {@link resolvePlatform}. */
export interface ResolvePlatformOptions {
  /** The build's architecture (default `x86_64`). */
  arch?: string;
  /** The config repo's `platforms.yaml`; the built-in defaults when absent. */
  platformsConfig?: PlatformsConfig | undefined;
}

/** The settings (kernel arguments, GRUB commands) of Ignition platform id `ignitionId`. */
export function platformSettings(ignitionId: string, options: ResolvePlatformOptions = {}): { kernelArguments: string[]; grubCommands: string[] } {
  const arch = options.arch ?? 'x86_64';
  const table = options.platformsConfig ? (options.platformsConfig[arch] ?? {}) : defaultPlatformsConfig(arch);
  const s = Object.hasOwn(table, ignitionId) ? table[ignitionId] : undefined;
  return { kernelArguments: [...(s?.kernel_arguments ?? [])], grubCommands: [...(s?.grub_commands ?? [])] };
}

/** The spec of `platform` with its kernel arguments and GRUB commands for `arch`. */
export function resolvePlatform(platform: string, options: ResolvePlatformOptions = {}): ResolvedPlatform {
  const spec = getPlatform(platform);
  const s = platformSettings(spec.ignitionId, options);
  return Object.freeze({ ...spec, kernelArguments: s.kernelArguments, grubCommands: s.grubCommands });
}

/** The artifact file name: `<name>-<buildId>-<platform>.<arch>.<ext>`. */
export function platformArtifactName(options: { name: string; buildId: string; platform: string; arch: string }): string {
  const spec = getPlatform(options.platform);
  for (const [k, v] of Object.entries({ name: options.name, buildId: options.buildId, arch: options.arch })) {
    if (!v || v.includes('/') || v === '.' || v === '..') throw new CosaError('COSA_PATH_UNSAFE', `invalid ${k} for an artifact name: "${v}"`);
  }
  return `${options.name}-${options.buildId}-${spec.key}.${options.arch}.${spec.extension}`;
}
