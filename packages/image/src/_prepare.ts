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

/** GPT partitions of the layout (sgdisk syntax): BIOS boot, ESP, /boot, / the rest. */
const SGDISK_LAYOUT = [
  '-U', '00000000-0000-4000-a000-000000000001',
  '-n', '1:0:+1M', '-t', '1:21686148-6449-6E6F-744E-656564454649', '-c', '1:BIOS-BOOT',
  '-n', `2:0:+${ESP_MIB}M`, '-t', '2:C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '-c', '2:EFI-SYSTEM',
  '-n', '3:0:+384M', '-t', '3:0FC63DAF-8483-4772-8E79-3D69D8477DE4', '-c', '3:boot',
  '-n', '4:0:0', '-t', '4:0FC63DAF-8483-4772-8E79-3D69D8477DE4', '-c', '4:root',
];
/** Fixed filesystem UUID of the original's /boot (regenerated on first boot there). */
const BOOT_UUID = '96d15588-3596-4b3c-adca-a2ff7279ea63';

async function partition(raw: string, n: number, o: { signal?: AbortSignal | undefined }): Promise<{ offset: number; size: number }> {
  const info = (await run(['sgdisk', '-i', String(n), raw], o)).stdout;
  const first = Number(/First sector: (\d+)/.exec(info)?.[1]);
  const last = Number(/Last sector: (\d+)/.exec(info)?.[1]);
  if (!Number.isFinite(first) || !Number.isFinite(last)) throw new Error(`cannot read partition ${n} of ${raw}`);
  return { offset: first * 512, size: (last - first + 1) * 512 };
}

/**
 * Lays the disk out on the host, as a plain file (no root, no loop device): the GPT, the ESP
 * (copied from `esp.img`) and the ext4 /boot (mke2fs at an offset). Emulated in the VM these
 * took most of its time before the deploy.
 */
export async function layoutDisk(raw: string, diskMiB: number, workDir: string, options: { signal?: AbortSignal; onProgress?: OnProgress } = {}): Promise<{ rootMiB: number }> {
  const o = { signal: options.signal, onProgress: options.onProgress };
  await run(['truncate', '-s', `${diskMiB}M`, raw], o);
  await run(['sgdisk', '-Z', raw], { ...o, okExitCodes: [0, 2] });
  await run(['sgdisk', ...SGDISK_LAYOUT, raw], o);
  const [esp, boot, root] = [await partition(raw, 2, o), await partition(raw, 3, o), await partition(raw, 4, o)];
  const MiB = 1024 * 1024;
  const ddInto = (src: string, offset: number) =>
    run(['dd', `if=${src}`, `of=${raw}`, 'bs=1M', `seek=${offset / MiB}`, 'conv=sparse,notrunc', 'status=none'], o);
  await ddInto(join(workDir, 'esp.img'), esp.offset);
  await run(['mkfs.ext4', '-q', '-F', '-L', 'boot', '-U', BOOT_UUID, '-E', `offset=${boot.offset}`, raw, `${boot.size / 1024}k`], o);
  // The xfs root is made by the disk script: mkfs.xfs has no offset option, and copying a
  // side image in costs more than the mkfs itself.
  return { rootMiB: Math.floor(root.size / MiB) };
}
