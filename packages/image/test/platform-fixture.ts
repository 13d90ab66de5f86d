/**
 * A small synthetic base disk for the platform tests, made without root: a sparse raw file with
 * the cosa GPT layout (BIOS-BOOT, EFI-SYSTEM, boot, root), an ext4 boot partition made with
 * `mkfs.ext4 -d` from a directory holding an ostree-style /boot (loader -> loader.0 with a BLS
 * entry, grub/grub.cfg generated from it) and written at the partition offset with dd.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { run } from '@cosa/ostree/internal';
import { writeGpt } from '../src/_gpt.js';

export const MiB = 1024 * 1024;

export const BLS_OPTIONS =
  'root=LABEL=root rw console=ttyS0,115200n8 ignition.platform.id=qemu $ignition_firstboot ostree=/ostree/boot.1/debian/0123abcd/0';

export function blsEntry(options = BLS_OPTIONS): string {
  return [
    'title Debian GNU/Linux 12 (bookworm) (ostree:0)',
    'version 1',
    `options ${options}`,
    'linux /ostree/debian-0123abcd/vmlinuz-6.1.0-56-amd64',
    'initrd /ostree/debian-0123abcd/initramfs-6.1.0-56-amd64.img',
    '',
  ].join('\n');
}

export function grubCfg(options = BLS_OPTIONS): string {
  return [
    '# CONSOLE-SETTINGS-START',
    'serial --speed=115200',
    'terminal_input serial console',
    'terminal_output serial console',
    '# CONSOLE-SETTINGS-END',
    'set timeout=1',
    'search --no-floppy --label boot --set=root',
    "menuentry 'Debian GNU/Linux 12 (bookworm) (ostree:0)' {",
    `  linux /ostree/debian-0123abcd/vmlinuz-6.1.0-56-amd64 ${options}`,
    '  initrd /ostree/debian-0123abcd/initramfs-6.1.0-56-amd64.img',
    '}',
    '',
  ].join('\n');
}

// Layout in MiB: 1 BIOS-BOOT at 1, 127 EFI at 2, boot at 129, root after it.
const LAYOUT = [
  { name: 'BIOS-BOOT', type: '21686148-6449-6E6F-744E-656564454649', sizeMiB: 1 },
  { name: 'EFI-SYSTEM', type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', sizeMiB: 127 },
  { name: 'boot', type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', sizeMiB: 0 },
  { name: 'root', type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', sizeMiB: 0 },
];

/** Options of {@link makeBaseDisk}. */
export interface BaseDiskOptions {
  dir: string;
  /** Total size, MiB (default 1024). */
  sizeMiB?: number;
  /** Boot partition size, MiB (default 384). */
  bootMiB?: number;
  /** Logical sector size. */
  sectorSize?: 512 | 4096;
  /** BLS options line. */
  options?: string;
}

/** Makes the synthetic base disk `<dir>/base.raw` and returns its path. */
export async function makeBaseDisk(o: BaseDiskOptions): Promise<string> {
  const sizeMiB = o.sizeMiB ?? 1024;
  const bootMiB = o.bootMiB ?? 384;
  const ss = o.sectorSize ?? 512;
  const disk = join(o.dir, ss === 4096 ? 'base4k.raw' : 'base.raw');
  await run(['truncate', '-s', `${sizeMiB}M`, disk]);
  await writeGpt(disk, {
    sectorSize: ss,
    diskGuid: '00000000-0000-4000-A000-000000000001',
    partitions: LAYOUT.map((p, i) => ({ name: p.name, typeGuid: p.type, sizeMiB: i === 2 ? bootMiB : p.sizeMiB })),
  });
  const tree = await mkdtemp(join(tmpdir(), 'cosa-bootfs-'));
  try {
    await mkdir(join(tree, 'loader.0', 'entries'), { recursive: true });
    await symlink('loader.0', join(tree, 'loader'));
    await mkdir(join(tree, 'grub'));
    await writeFile(join(tree, 'loader.0', 'entries', 'ostree-1-debian.conf'), blsEntry(o.options));
    await writeFile(join(tree, 'grub', 'grub.cfg'), grubCfg(o.options));
    await writeFile(join(tree, 'ignition.firstboot'), '');
    const bootImg = join(o.dir, `boot-${ss}.img`);
    await run(['mkfs.ext4', '-q', '-F', '-L', 'boot', '-U', '96d15588-3596-4b3c-adca-a2ff7279ea63', '-d', tree, bootImg, `${bootMiB}M`]);
    await run(['dd', `if=${bootImg}`, `of=${disk}`, 'bs=1M', `seek=129`, 'conv=notrunc,sparse', 'status=none']);
    await rm(bootImg, { force: true });
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
  return disk;
}

/** Reads a file from the boot partition of `disk` with debugfs (at the partition's offset). */
export async function readBootFile(disk: string, path: string, offset: number): Promise<string> {
  const r = await run(['debugfs', '-R', `cat ${path}`, `${disk}?offset=${offset}`]);
  return r.stdout;
}
