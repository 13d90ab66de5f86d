/**
 * Inputs of the disk script that are prepared on the host whatever the executor: the ESP image
 * (vfat, filled with mtools: the host kernel may not mount vfat) with a removable-path
 * BOOTX64.EFI, and the GRUB BIOS core image with its modules. Building them here keeps that work
 * out of the (emulated) VM.
 */
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@cosa/ostree';
import type { OnProgress } from '@cosa/schema';

/** GRUB's first config: find the partition labelled `boot` and load its grub.cfg. */
const EARLY_CFG = `search --no-floppy --label boot --set=root
set prefix=($root)/grub
configfile $prefix/grub.cfg
`;
const EFI_MODULES = ['part_gpt', 'ext2', 'fat', 'search', 'search_label', 'normal', 'linux', 'configfile', 'echo', 'serial', 'terminal', 'efi_gop', 'all_video'];
const BIOS_MODULES = ['biosdisk', 'part_gpt', 'ext2', 'search', 'search_label', 'normal', 'linux', 'configfile', 'echo', 'serial', 'terminal'];

/** ESP size: partition 2 of the layout. */
export const ESP_MIB = 127;

/** Writes `esp.img` and `grub-bios/i386-pc/` (+ `grub-bios/x86_64-efi/`) into `workDir`. */
export async function prepareBootInputs(workDir: string, options: { signal?: AbortSignal; onProgress?: OnProgress } = {}): Promise<void> {
  const o = { signal: options.signal, onProgress: options.onProgress };
  const early = join(workDir, 'early.cfg');
  await writeFile(early, EARLY_CFG);
  const efi = join(workDir, 'BOOTX64.EFI');
  await run(['grub-mkimage', '-O', 'x86_64-efi', '-o', efi, '-p', '/grub', '-c', early, ...EFI_MODULES], o);
  const esp = join(workDir, 'esp.img');
  await run(['truncate', '-s', `${ESP_MIB}M`, esp], o);
  await run(['mkfs.vfat', '-F', '32', '-n', 'EFI-SYSTEM', esp], o);
  await run(['mmd', '-i', esp, '::/EFI', '::/EFI/BOOT'], o);
  await run(['mcopy', '-i', esp, efi, '::/EFI/BOOT/BOOTX64.EFI'], o);

  const bios = join(workDir, 'grub-bios', 'i386-pc');
  await mkdir(bios, { recursive: true });
  for (const n of await readdir('/usr/lib/grub/i386-pc')) {
    if (/\.(mod|lst|img)$/.test(n)) await cp(join('/usr/lib/grub/i386-pc', n), join(bios, n));
  }
  await run(['grub-mkimage', '-O', 'i386-pc', '-o', join(bios, 'core.img'), '-p', '/grub', '-c', early, ...BIOS_MODULES], o);
  // The EFI image embeds what it needs; the module directory serves `insmod` from grub.cfg.
  await cp('/usr/lib/grub/x86_64-efi', join(workDir, 'grub-bios', 'x86_64-efi'), { recursive: true, filter: (s) => !/\.(module|efi)$/.test(s) });
}
