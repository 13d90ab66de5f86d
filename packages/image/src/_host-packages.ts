/**
 * The one place that names host packages: the tools each executor and step needs on the host,
 * the Debian package that ships each tool, and the package set of the supermin appliance.
 * scripts/setup.sh installs a superset of these.
 */
import { access, constants } from 'node:fs/promises';
import { CosaError } from '@cosa/schema';
import { hasTool } from '@cosa/ostree/internal';

/** Debian package providing each host tool we call (a path when the tool is not on PATH). */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ostree: 'ostree',
  sgdisk: 'gdisk',
  partprobe: 'parted',
  'mkfs.xfs': 'xfsprogs',
  'mkfs.ext4': 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  mmd: 'mtools',
  mcopy: 'mtools',
  'grub-mkimage': 'grub-common',
  '/usr/lib/grub/i386-pc/grub-bios-setup': 'grub-pc-bin',
  '/usr/lib/grub/i386-pc/boot.img': 'grub-pc-bin',
  '/usr/lib/grub/x86_64-efi/linux.mod': 'grub-efi-amd64-bin',
  losetup: 'mount',
  blockdev: 'util-linux',
  fstrim: 'util-linux',
  setsid: 'util-linux',
  unshare: 'util-linux',
  setpriv: 'util-linux',
  perl: 'perl-base',
  'qemu-img': 'qemu-utils',
  'qemu-system-x86_64': 'qemu-system-x86',
  supermin: 'supermin',
  cpio: 'cpio',
  '/bin/busybox': 'busybox-static',
  fakeroot: 'fakeroot',
};

/** Tools the disk script needs wherever it runs, plus what the host prepares (ESP, GRUB images). */
export const DISK_TOOLS = [
  'ostree', 'sgdisk', 'partprobe', 'mkfs.xfs', 'mkfs.ext4', 'mkfs.vfat', 'mmd', 'mcopy', 'grub-mkimage',
  '/usr/lib/grub/i386-pc/grub-bios-setup', '/usr/lib/grub/i386-pc/boot.img', '/usr/lib/grub/x86_64-efi/linux.mod',
  'blockdev', 'fstrim',
] as const;
/** Extra host tools of the direct executor. */
export const DIRECT_TOOLS = ['losetup', 'unshare', 'setpriv', 'perl'] as const;
/** Extra host tools of the VM executor (the guest kernel is the host's linux-image-amd64). */
export const VM_TOOLS = ['qemu-system-x86_64', 'supermin', 'cpio'] as const;
/** Host tools of format conversion and boot checks. */
export const QEMU_TOOLS = ['qemu-img', 'qemu-system-x86_64'] as const;

/**
 * Debian packages copied into the supermin appliance (they must be installed on the host: supermin
 * copies their files). Everything the disk script and the appliance init call.
 */
export const APPLIANCE_PACKAGES = [
  'bash', 'coreutils', 'util-linux', 'mount', 'kmod', 'procps', 'grep', 'sed', 'mawk', 'findutils',
  'ostree', 'gdisk', 'parted', 'xfsprogs', 'e2fsprogs', 'dosfstools', 'mtools',
  'grub-pc-bin', 'grub-efi-amd64-bin', 'grub2-common', 'grub-common',
  'tar',
] as const;

async function present(tool: string): Promise<boolean> {
  if (tool.startsWith('/')) return access(tool, constants.R_OK).then(() => true, () => false);
  return hasTool(tool);
}

/**
 * Throws one COSA_TOOLS_MISSING error naming every Debian package that is missing for `tools`
 * (plus the host kernel for the VM), with the setup command as the hint.
 */
export async function requireHostTools(tools: readonly string[], options: { kernel?: boolean } = {}): Promise<void> {
  const missing = new Set<string>();
  for (const t of tools) if (!(await present(t))) missing.add(TOOL_PACKAGES[t] ?? t);
  if (options.kernel && (await findHostKernel()) === undefined) missing.add('linux-image-amd64');
  if (missing.size === 0) return;
  const pkgs = [...missing].sort();
  throw new CosaError('COSA_TOOLS_MISSING', `missing host packages: ${pkgs.join(' ')}`, {
    hint: `run scripts/setup.sh (or: apt-get install ${pkgs.join(' ')})`,
  });
}

/** The newest /boot/vmlinuz-* of the host, the kernel the appliance and the KVM probe boot. */
export async function findHostKernel(): Promise<string | undefined> {
  const { readdir } = await import('node:fs/promises');
  const names = (await readdir('/boot').catch(() => [] as string[])).filter((n) => n.startsWith('vmlinuz-'));
  names.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const last = names.at(-1);
  return last === undefined ? undefined : `/boot/${last}`;
}
