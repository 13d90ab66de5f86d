/**
 * The Debian-specific half of turning an installed root into an OSTree tree: the kernel and
 * initramfs under /usr/lib/modules/<kver>/, /boot and the pseudo filesystems emptied, apt's
 * caches and logs emptied, an fstab that mounts /boot. The generic layout (/etc → /usr/etc, /var →
 * factory, symlinks, the one tmpfiles.d file that recreates /var — dpkg and apt state included —
 * from the factory copy) is {@link prepareOstreeTree}'s job.
 */
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError } from '@cosa/schema';
import type { PackageInfo } from './composer.js';

/** Returns the kernel version installed in the tree (the only directory in /usr/lib/modules). */
export async function kernelVersion(tree: string): Promise<string> {
  const names = (await readdir(join(tree, 'usr/lib/modules')).catch(() => [] as string[])).sort();
  const kver = names.at(-1);
  if (!kver) {
    throw new CosaError('COSA_COMPOSE_FAILED', 'the tree has no kernel (/usr/lib/modules is empty)', {
      hint: 'add a kernel package such as linux-image-amd64 to the manifest packages',
    });
  }
  return kver;
}

async function emptyDir(dir: string): Promise<void> {
  for (const n of await readdir(dir).catch(() => [] as string[])) await rm(join(dir, n), { recursive: true, force: true });
}

/** Parses a dpkg status file into the installed packages. */
export function parseDpkgStatus(text: string): PackageInfo[] {
  const out: PackageInfo[] = [];
  for (const stanza of text.split(/\n\n+/)) {
    const f: Record<string, string> = {};
    for (const line of stanza.split('\n')) {
      const m = /^([A-Za-z-]+): (.*)$/.exec(line);
      if (m) f[m[1] ?? ''] = m[2] ?? '';
    }
    if (!f.Package || !f.Version || !/ installed$/.test(f.Status ?? '')) continue;
    const m = /^(?:(\d+):)?(.*)$/.exec(f.Version);
    const src = f.Source?.split(' ')[0];
    out.push({
      name: f.Package,
      ...(m?.[1] ? { epoch: m[1] } : {}),
      version: m?.[2] ?? f.Version,
      arch: f.Architecture ?? 'all',
      ...(src ? { source: src } : {}),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Reads the packages installed in `tree` from its dpkg status. */
export async function installedPackages(tree: string): Promise<PackageInfo[]> {
  return parseDpkgStatus(await readFile(join(tree, 'var/lib/dpkg/status'), 'utf8'));
}

/**
 * The Debian-specific tree work, run after the packages are installed and the initramfs is at
 * /usr/lib/modules/<kver>/initramfs.img: moves the kernel there too, empties /boot, /dev, /proc,
 * /sys, /run, /tmp and apt's caches, writes /etc/fstab (LABEL=boot on /boot, which `ostree admin`
 * needs). Returns the kernel version.
 */
export async function prepareDebianTree(o: { tree: string }): Promise<string> {
  const t = o.tree;
  const kver = await kernelVersion(t);
  const modDir = join(t, 'usr/lib/modules', kver);
  const vmlinuz = join(t, 'boot', `vmlinuz-${kver}`);
  if (await lstat(vmlinuz).catch(() => undefined)) {
    await rm(join(modDir, 'vmlinuz'), { force: true });
    await rename(vmlinuz, join(modDir, 'vmlinuz'));
  }
  if (!(await lstat(join(modDir, 'vmlinuz')).catch(() => undefined))) {
    throw new CosaError('COSA_COMPOSE_FAILED', `no kernel image for ${kver} in /boot or /usr/lib/modules/${kver}`);
  }
  if (!(await lstat(join(modDir, 'initramfs.img')).catch(() => undefined))) {
    throw new CosaError('COSA_COMPOSE_FAILED', `no initramfs at /usr/lib/modules/${kver}/initramfs.img`);
  }
  for (const d of ['boot', 'dev', 'proc', 'sys', 'run', 'tmp', 'var/tmp', 'var/log', 'var/cache/apt', 'var/lib/apt/lists']) {
    await mkdir(join(t, d), { recursive: true });
    await emptyDir(join(t, d));
  }
  for (const l of ['vmlinuz', 'vmlinuz.old', 'initrd.img', 'initrd.img.old']) await rm(join(t, l), { force: true });
  // A fresh file, never written in place: the tree may share inodes with a cached copy.
  await rm(join(t, 'etc/fstab'), { force: true });
  // /boot as an automount: mounted (and checked) at its first access, off the path to the login
  // prompt (on TCG the mount waits for udev's handling of the disk, then fsck: ~8 s); every
  // access, ostree's included, waits for the mount, so a deploy right after login is safe.
  // `nofail` too: systemd 252's fstab generator orders even an automounted boot.mount before
  // local-fs.target, and ostree-boot-complete.service (RequiresMountsFor=/boot) pulls it in at
  // every boot, so without it local-fs.target (and the login) waited for /boot all the same.
  // (An xfs /boot: the disk writer rewrites the type in the deployment's copy.)
  await writeFile(join(t, 'etc/fstab'), '# cosa: /boot holds the BLS entries ostree writes\nLABEL=boot /boot ext4 defaults,nofail,x-systemd.automount 0 2\n');
  return kver;
}
