/**
 * A small synthetic base disk for the platform tests, made without root: a sparse raw file with
 * the cosa GPT layout (BIOS-BOOT, EFI-SYSTEM, boot, root), an ext4 boot partition made with
 * `mkfs.ext4 -d` from a directory holding an ostree-style /boot (loader -> loader.0 with a BLS
 * entry, grub/grub.cfg generated from it) and written at the partition offset with dd.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { run } from '@cosa/ostree';

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
  { name: 'BIOS-BOOT', type: '21686148-6449-6E6F-744E-656564454649', startMiB: 1, sizeMiB: 1 },
  { name: 'EFI-SYSTEM', type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', startMiB: 2, sizeMiB: 127 },
  { name: 'boot', type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', startMiB: 129, sizeMiB: 0 },
  { name: 'root', type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', startMiB: 0, sizeMiB: 0 },
];

/** Options of {@link makeBaseDisk}. */
export interface BaseDiskOptions {
  dir: string;
  /** Total size, MiB (default 1024). */
  sizeMiB?: number;
  /** Boot partition size, MiB (default 384). */
  bootMiB?: number;
  /** Logical sector size (4096: GPT written by hand, as sgdisk assumes 512 on files). */
  sectorSize?: 512 | 4096;
  /** BLS options line. */
  options?: string;
}

let crcTable: Uint32Array | undefined;
function crc32(buf: Buffer): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of buf) c = (crcTable[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function guidBytes(g: string): Buffer {
  const h = g.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** Writes primary + backup GPT for `parts` (LBAs in `ss`-byte sectors) into the image file. */
async function writeGpt(path: string, ss: number, totalBytes: number, parts: { name: string; type: string; first: number; last: number }[]): Promise<void> {
  const lbas = totalBytes / ss;
  const entries = Buffer.alloc(128 * 128);
  parts.forEach((p, i) => {
    const e = entries.subarray(i * 128, (i + 1) * 128);
    guidBytes(p.type).copy(e, 0);
    guidBytes(`${(i + 1).toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`).copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.first), 32);
    e.writeBigUInt64LE(BigInt(p.last), 40);
    e.write(p.name, 56, 'utf16le');
  });
  const entriesCrc = crc32(entries);
  const entrySectors = Math.ceil(entries.length / ss);
  const header = (current: number, backup: number, entriesLba: number) => {
    const h = Buffer.alloc(ss);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(current), 24);
    h.writeBigUInt64LE(BigInt(backup), 32);
    h.writeBigUInt64LE(BigInt(2 + entrySectors), 40);
    h.writeBigUInt64LE(BigInt(lbas - 2 - entrySectors), 48);
    guidBytes('00000000-0000-4000-A000-000000000001').copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(128, 80);
    h.writeUInt32LE(128, 84);
    h.writeUInt32LE(entriesCrc, 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  // Protective MBR.
  const mbr = Buffer.alloc(512);
  mbr.writeUInt8(0xee, 446 + 4);
  mbr.writeUInt32LE(1, 446 + 8);
  mbr.writeUInt32LE(Math.min(lbas - 1, 0xffffffff), 446 + 12);
  mbr.writeUInt16LE(0xaa55, 510);
  const fh = await open(path, 'r+');
  try {
    await fh.write(mbr, 0, 512, 0);
    await fh.write(header(1, lbas - 1, 2), 0, ss, ss);
    await fh.write(entries, 0, entries.length, 2 * ss);
    await fh.write(entries, 0, entries.length, (lbas - 1 - entrySectors) * ss);
    await fh.write(header(lbas - 1, 1, lbas - 1 - entrySectors), 0, ss, (lbas - 1) * ss);
  } finally {
    await fh.close();
  }
}

/** Makes the synthetic base disk `<dir>/base.raw` and returns its path. */
export async function makeBaseDisk(o: BaseDiskOptions): Promise<string> {
  const sizeMiB = o.sizeMiB ?? 1024;
  const bootMiB = o.bootMiB ?? 384;
  const ss = o.sectorSize ?? 512;
  const disk = join(o.dir, ss === 4096 ? 'base4k.raw' : 'base.raw');
  await run(['truncate', '-s', `${sizeMiB}M`, disk]);
  const layout = LAYOUT.map((p) => ({ ...p }));
  layout[2]!.sizeMiB = bootMiB;
  layout[3]!.startMiB = 129 + bootMiB;
  layout[3]!.sizeMiB = sizeMiB - 129 - bootMiB - 1;
  if (ss === 512) {
    const argv = ['sgdisk', '-Z', disk];
    await run(argv).catch(() => undefined);
    const args: string[] = [];
    layout.forEach((p, i) => {
      const n = i + 1;
      const start = (p.startMiB * MiB) / 512;
      const end = start + (p.sizeMiB * MiB) / 512 - 1;
      args.push(`-n${n}:${start}:${end}`, `-t${n}:${p.type}`, `-c${n}:${p.name}`);
    });
    await run(['sgdisk', ...args, disk]);
  } else {
    await writeGpt(
      disk,
      ss,
      sizeMiB * MiB,
      layout.map((p) => ({ name: p.name, type: p.type, first: (p.startMiB * MiB) / ss, last: ((p.startMiB + p.sizeMiB) * MiB) / ss - 1 })),
    );
  }
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
