/**
 * The boot inputs createDisk derives from image.yaml: the Ignition first-boot stamp, /boot's
 * grub.cfg (cosa's, or image.yaml `grub-script`), and the root/boot file system choices the
 * disk script applies. Pure functions: the disk script only copies what they return.
 */
import { CosaError, type ImageConfig } from '@cosa/schema';
import { GRUB_CONSOLE_END, GRUB_CONSOLE_START } from './set-platform.js';

/**
 * The first-boot network arguments when image.yaml has no `ignition-network-kcmdline`: the
 * original's legacy default (its create_disk.sh era, before the key moved to the config repo).
 */
export const DEFAULT_FIRSTBOOT_NETWORK_KARGS: readonly string[] = ['rd.neednet=1', 'ip=dhcp,dhcp6'];

/** The GRUB variable every boot entry carries; GRUB expands it from the stamp on /boot. */
export const IGNITION_FIRSTBOOT_KARG = '$ignition_firstboot';

/** GRUB console commands of the base (qemu) disk: the serial console, as the qemu platform. */
const BASE_CONSOLE = ['serial --unit=0 --speed=115200', 'terminal_input serial console', 'terminal_output serial console'];

/** `ignition-network-kcmdline` resolved: absent = {@link DEFAULT_FIRSTBOOT_NETWORK_KARGS}, `[]` = none. */
export function firstbootNetworkKargs(imageConfig: Partial<ImageConfig> | undefined): readonly string[] {
  return imageConfig?.['ignition-network-kcmdline'] ?? DEFAULT_FIRSTBOOT_NETWORK_KARGS;
}

/**
 * The content of `/boot/ignition.firstboot`: empty (GRUB keeps no network arguments), or one GRUB
 * `set` of `ignition_network_kcmdline`, as the original wrote it.
 */
export function firstbootStamp(networkKargs: readonly string[]): string {
  for (const k of networkKargs) {
    if (!/^[^\s'"\\$;]+$/.test(k)) throw new CosaError('COSA_SCHEMA_INVALID', `image.yaml ignition-network-kcmdline: "${k}" is not a single kernel argument`);
  }
  return networkKargs.length === 0 ? '' : `set ignition_network_kcmdline='${networkKargs.join(' ')}'\n`;
}

/**
 * cosa's /boot grub.cfg (the role of the original's static grub.cfg): find /boot by label, the
 * console block between the markers set-platform rewrites, and the first-boot contract: when
 * `/ignition.firstboot` exists on /boot, `$ignition_firstboot` becomes `ignition.firstboot` plus
 * the network arguments the stamp sets. The last line, `blscfg`, loads ostree's BLS entries
 * (the disk script replaces it by a menuentry where GRUB has no blscfg module).
 */
function defaultGrubScript(): string {
  return [
    'search --no-floppy --label boot --set=root',
    '',
    '# Console settings for this platform (replaced when the image is switched to another platform).',
    GRUB_CONSOLE_START,
    GRUB_CONSOLE_END,
    '',
    'set timeout=1',
    '',
    '# Ignition first boot: /boot/ignition.firstboot exists until the OS has been provisioned.',
    'set ignition_firstboot=""',
    'if [ -f "/ignition.firstboot" ]; then',
    "  set ignition_network_kcmdline=''",
    '  # The stamp may set ignition_network_kcmdline (image.yaml ignition-network-kcmdline).',
    '  source "/ignition.firstboot"',
    '  set ignition_firstboot="ignition.firstboot ${ignition_network_kcmdline}"',
    'fi',
    '',
    'blscfg',
    '',
  ].join('\n');
}

/**
 * /boot's grub.cfg: image.yaml `grub-script` when set (else cosa's), with `consoleCommands`
 * inserted after its `# CONSOLE-SETTINGS-START` line, as the original did with the platform's
 * `grub_commands`.
 */
export function grubConfig(imageConfig: Partial<ImageConfig> | undefined, consoleCommands: readonly string[] = BASE_CONSOLE): string {
  const script = imageConfig?.['grub-script'] ?? defaultGrubScript();
  const lines = script.split('\n');
  const at = lines.indexOf(GRUB_CONSOLE_START);
  if (at >= 0) lines.splice(at + 1, 0, ...consoleCommands);
  const out = lines.join('\n');
  return out.endsWith('\n') ? out : `${out}\n`;
}

/** Root file systems the disk script makes, and the mkfs each needs. */
const ROOT_MKFS: Record<string, string> = { xfs: 'mkfs.xfs', ext4: 'mkfs.ext4', ext4verity: 'mkfs.ext4', btrfs: 'mkfs.btrfs' };

/** The mkfs a `rootfs` value needs (throws for a value the disk script does not know). */
export function rootMkfs(rootfs: string): string {
  const tool = ROOT_MKFS[rootfs];
  if (!tool) throw new CosaError('COSA_SCHEMA_INVALID', `image.yaml rootfs: "${rootfs}" is not one of ${Object.keys(ROOT_MKFS).join(', ')}`);
  return tool;
}

/**
 * `rootfs-args` split into mkfs arguments (whitespace separated, as the original's unquoted
 * expansion). Refuses what could make mkfs write elsewhere or lose the label/UUID cosa sets.
 */
export function rootfsArgs(imageConfig: Partial<ImageConfig> | undefined): string[] {
  const raw = imageConfig?.['rootfs-args'] ?? '';
  const args = raw.split(/\s+/).filter((a) => a !== '');
  for (const a of args) {
    if (!/^-[A-Za-z0-9=,._:^+-]*$/.test(a) && !/^[A-Za-z0-9=,._:^+-]+$/.test(a)) {
      throw new CosaError('COSA_SCHEMA_INVALID', `image.yaml rootfs-args: "${a}" is not an mkfs option (letters, digits and = , . _ : ^ + - only)`);
    }
  }
  return args;
}
