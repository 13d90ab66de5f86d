/**
 * Inputs of the disk script that are prepared on the host whatever the executor: the ESP image
 * (vfat, filled with mtools: the host kernel may not mount vfat) with a removable-path
 * BOOTX64.EFI, and the GRUB BIOS core image with its modules. Building them here keeps that work
 * out of the (emulated) VM.
 */
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@cosa/ostree/internal';
import type { OnProgress } from '@cosa/schema';
import { writeGpt, type GptPartitionSpec } from './_gpt.js';

/** Logical sector size of a disk: 512, or 4096 for metal4k (4Kn drives). */
export type SectorSize = 512 | 4096;

/** GRUB's first config: find the partition labelled `boot` and load its grub.cfg. */
const EARLY_CFG = `search --no-floppy --label boot --set=root
set prefix=($root)/grub
configfile $prefix/grub.cfg
`;
// xfs: /boot may be xfs (image.yaml bootfs); test + configfile (source): the first-boot block of grub.cfg.
const EFI_MODULES = ['part_gpt', 'ext2', 'xfs', 'test', 'fat', 'search', 'search_label', 'normal', 'linux', 'configfile', 'echo', 'serial', 'terminal', 'efi_gop', 'all_video'];
const BIOS_MODULES = ['biosdisk', 'part_gpt', 'ext2', 'xfs', 'test', 'search', 'search_label', 'normal', 'linux', 'configfile', 'echo', 'serial', 'terminal'];

/** The ESP's FAT volume id and file times (1980-01-01, the FAT epoch): the same in every build. */
const ESP_VOLUME_ID = 'C05AE5F1';
const FAT_TIME_ENV = { SOURCE_DATE_EPOCH: '315532800' };

/** ESP size: partition 2 of the layout. */
export const ESP_MIB = 127;

/**
 * Writes `esp.img` and `grub-bios/i386-pc/` (+ `grub-bios/x86_64-efi/`) into `workDir`. With
 * 4096-byte sectors the ESP is FAT16 with 4096-byte FAT sectors: 127 MiB of them are too few
 * clusters for a valid FAT32, and a FAT sector cannot be smaller than the disk's.
 */
export async function prepareBootInputs(workDir: string, options: { signal?: AbortSignal; onProgress?: OnProgress; sectorSize?: SectorSize } = {}): Promise<void> {
  const o = { signal: options.signal, onProgress: options.onProgress };
  const early = join(workDir, 'early.cfg');
  await writeFile(early, EARLY_CFG);
  const efi = join(workDir, 'BOOTX64.EFI');
  await run(['grub-mkimage', '-O', 'x86_64-efi', '-o', efi, '-p', '/grub', '-c', early, ...EFI_MODULES], o);
  const esp = join(workDir, 'esp.img');
  await run(['truncate', '-s', `${ESP_MIB}M`, esp], o);
  const fat = options.sectorSize === 4096 ? ['-F', '16', '-S', '4096'] : ['-F', '32'];
  // Reproducible ESP: it holds nothing build-specific, so a constant volume id and times.
  await run(['mkfs.vfat', ...fat, '--invariant', '-i', ESP_VOLUME_ID, '-n', 'EFI-SYSTEM', esp], o);
  await run(['mmd', '-i', esp, '::/EFI', '::/EFI/BOOT'], { ...o, env: FAT_TIME_ENV });
  await run(['mcopy', '-i', esp, efi, '::/EFI/BOOT/BOOTX64.EFI'], { ...o, env: FAT_TIME_ENV });

  const bios = join(workDir, 'grub-bios', 'i386-pc');
  await mkdir(bios, { recursive: true });
  for (const n of await readdir('/usr/lib/grub/i386-pc')) {
    if (/\.(mod|lst|img)$/.test(n)) await cp(join('/usr/lib/grub/i386-pc', n), join(bios, n));
  }
  await run(['grub-mkimage', '-O', 'i386-pc', '-o', join(bios, 'core.img'), '-p', '/grub', '-c', early, ...BIOS_MODULES], o);
  // The EFI image embeds what it needs; the module directory serves `insmod` from grub.cfg.
  await cp('/usr/lib/grub/x86_64-efi', join(workDir, 'grub-bios', 'x86_64-efi'), { recursive: true, filter: (s) => !/\.(module|efi)$/.test(s) });
}

/** GPT partitions of the layout: BIOS boot, ESP, /boot, / the rest (the original's numbering, also on 4Kn disks). */
const LAYOUT: GptPartitionSpec[] = [
  { name: 'BIOS-BOOT', typeGuid: '21686148-6449-6E6F-744E-656564454649', sizeMiB: 1 },
  { name: 'EFI-SYSTEM', typeGuid: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', sizeMiB: ESP_MIB },
  { name: 'boot', typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', sizeMiB: 384 },
  { name: 'root', typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', sizeMiB: 0 },
];
const DISK_GUID = '00000000-0000-4000-a000-000000000001';
/** Fixed filesystem UUID of the original's /boot (regenerated on first boot there). */
export const BOOT_UUID = '96d15588-3596-4b3c-adca-a2ff7279ea63';

/**
 * A UUID-shaped value derived from an OSTree commit and a purpose (e.g. `boot-hash-seed`): the
 * same commit gives the same value in every build, another commit another one.
 */
export function commitUuid(commit: string, purpose: string): string {
  const b = createHash('sha256').update(`cosa/${purpose}/${commit}`).digest();
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The mkfs.ext4 options of an ext4 /boot beyond label and UUID: 4096-byte blocks on a 4Kn disk
 * (mke2fs picks 1024 for a partition this small), `metadata_csum_seed` when image.yaml asks.
 * The host's empty /boot and the disk script's final one (made from the deployed files) share them.
 */
export function bootExt4Args(options: { sectorSize?: SectorSize; metadataCsumSeed?: boolean }): string[] {
  return [...(options.sectorSize === 4096 ? ['-b', '4096'] : []), ...(options.metadataCsumSeed ? ['-O', 'metadata_csum_seed'] : [])];
}

/**
 * Lays the disk out on the host, as a plain file (no root, no loop device): the GPT (512- or
 * 4096-byte sectors), the ESP (copied from `esp.img`) and the ext4 /boot (mke2fs at an offset).
 * Emulated in the VM these took most of its time before the deploy.
 */
export async function layoutDisk(
  raw: string,
  diskMiB: number,
  workDir: string,
  options: { signal?: AbortSignal; onProgress?: OnProgress; sectorSize?: SectorSize; bootfs?: 'ext4' | 'xfs'; metadataCsumSeed?: boolean } = {},
): Promise<{ rootMiB: number }> {
  const o = { signal: options.signal, onProgress: options.onProgress };
  const MiB = 1024 * 1024;
  await run(['truncate', '-s', `${diskMiB}M`, raw], o);
  const gpt = await writeGpt(raw, { sectorSize: options.sectorSize ?? 512, diskGuid: DISK_GUID, partitions: LAYOUT });
  const [, esp, boot, root] = gpt.partitions as [unknown, { start: number }, { start: number; size: number }, { size: number }];
  await run(['dd', `if=${join(workDir, 'esp.img')}`, `of=${raw}`, 'bs=1M', `seek=${esp.start / MiB}`, 'conv=sparse,notrunc', 'status=none'], o);
  // An xfs /boot is made by the disk script (mkfs.xfs has no offset option). This ext4 one is
  // where the deploy writes; the disk script remakes it offline from those files (reproducibly).
  if (options.bootfs !== 'xfs') {
    await run(['mkfs.ext4', '-q', '-F', ...bootExt4Args(options), '-L', 'boot', '-U', BOOT_UUID, '-E', `offset=${boot.start}`, raw, `${boot.size / 1024}k`], o);
  }
  // The xfs root is made by the disk script: mkfs.xfs has no offset option, and copying a
  // side image in costs more than the mkfs itself.
  return { rootMiB: Math.floor(root.size / MiB) };
}
