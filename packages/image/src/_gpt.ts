/**
 * A minimal GPT reader and writer for disk image files, with 512- or 4096-byte logical sectors,
 * without root, loop devices or a tool that guesses the sector size (sgdisk assumes 512 on files
 * and util-linux 2.38's sfdisk has no sector-size option).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { CosaError } from '@cosa/schema';

/** One used GPT partition entry. */
export interface GptPartition {
  /** 1-based partition number. */
  index: number;
  /** The GPT partition name (e.g. `boot`). */
  name: string;
  /** Partition type GUID, upper case. */
  typeGuid: string;
  /** Byte offset of the partition in the image. */
  start: number;
  /** Size in bytes. */
  size: number;
}

/** A disk's GPT: its logical sector size and used partitions. */
export interface GptTable {
  sectorSize: 512 | 4096;
  partitions: GptPartition[];
}

/** Encodes a GUID string in GPT's mixed-endian byte order. */
function guidBytes(g: string): Buffer {
  const h = g.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(h)) throw new CosaError('COSA_INTERNAL', `bad GUID: ${g}`);
  const b = Buffer.from(h, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

function guid(b: Buffer): string {
  const h = (x: Buffer) => x.toString('hex');
  const le = (x: Buffer) => h(Buffer.from(x).reverse());
  return `${le(b.subarray(0, 4))}-${le(b.subarray(4, 6))}-${le(b.subarray(6, 8))}-${h(b.subarray(8, 10))}-${h(b.subarray(10, 16))}`.toUpperCase();
}

/** Reads the primary GPT of the disk image at `path` (512- or 4096-byte logical sectors). */
export async function readGpt(path: string): Promise<GptTable> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(8192);
    await fh.read(head, 0, head.length, 0);
    let sectorSize: 512 | 4096 | undefined;
    for (const ss of [512, 4096] as const) {
      if (head.toString('latin1', ss, ss + 8) === 'EFI PART') {
        sectorSize = ss;
        break;
      }
    }
    if (sectorSize === undefined) throw new CosaError('COSA_IMAGE_FAILED', `${path}: no GPT header found`, { hint: 'is this a disk image written by cosa?' });
    const hdr = head.subarray(sectorSize, sectorSize + 92);
    const entriesLba = Number(hdr.readBigUInt64LE(72));
    const count = hdr.readUInt32LE(80);
    const entrySize = hdr.readUInt32LE(84);
    if (entrySize < 128 || count > 4096) throw new CosaError('COSA_IMAGE_FAILED', `${path}: implausible GPT header`);
    const table = Buffer.alloc(count * entrySize);
    await fh.read(table, 0, table.length, entriesLba * sectorSize);
    const partitions: GptPartition[] = [];
    for (let i = 0; i < count; i++) {
      const e = table.subarray(i * entrySize, (i + 1) * entrySize);
      const typeGuid = guid(e.subarray(0, 16));
      if (/^[0-]+$/.test(typeGuid)) continue;
      const first = Number(e.readBigUInt64LE(32));
      const last = Number(e.readBigUInt64LE(40));
      const name = e.subarray(56, 128).toString('utf16le').replace(/\0.*$/s, '');
      partitions.push({ index: i + 1, name, typeGuid, start: first * sectorSize, size: (last - first + 1) * sectorSize });
    }
    return { sectorSize, partitions };
  } finally {
    await fh.close();
  }
}

/** A partition to create with {@link writeGpt}. */
export interface GptPartitionSpec {
  name: string;
  typeGuid: string;
  /** Size in MiB; 0 = up to the last usable sector. Partitions follow each other from 1 MiB. */
  sizeMiB: number;
}

/** Options of {@link writeGpt}. */
export interface WriteGptOptions {
  sectorSize: 512 | 4096;
  diskGuid: string;
  partitions: GptPartitionSpec[];
}

const ENTRIES = 128;
const ENTRY_SIZE = 128;

/**
 * Writes a protective MBR and the primary and backup GPT (128 entries) into the existing image
 * file at `path`, partitions 1 MiB aligned in the order given, the last one of size 0 taking the
 * rest. Partition GUIDs are derived from the disk GUID, so the same inputs give the same bytes.
 * Returns the table as {@link readGpt} would read it.
 */
export async function writeGpt(path: string, options: WriteGptOptions): Promise<GptTable> {
  const ss = options.sectorSize;
  const fh = await open(path, 'r+');
  try {
    const bytes = (await fh.stat()).size;
    if (bytes % ss !== 0) throw new CosaError('COSA_INTERNAL', `${path}: size ${bytes} is not a multiple of ${ss}`);
    const sectors = bytes / ss;
    const entrySectors = (ENTRIES * ENTRY_SIZE) / ss;
    const firstUsable = 2 + entrySectors;
    const lastUsable = sectors - 2 - entrySectors;
    const align = (1024 * 1024) / ss;
    const table = Buffer.alloc(ENTRIES * ENTRY_SIZE);
    const partitions: GptPartition[] = [];
    let next = align;
    options.partitions.forEach((p, i) => {
      const first = next;
      const last = p.sizeMiB === 0 ? lastUsable : first + p.sizeMiB * align - 1;
      if (first < firstUsable || last > lastUsable || last < first) {
        throw new CosaError('COSA_IMAGE_TOO_SMALL', `${path}: partition ${i + 1} (${p.name}) does not fit on a ${Math.floor(bytes / 1048576)} MiB disk`);
      }
      const e = table.subarray(i * ENTRY_SIZE, (i + 1) * ENTRY_SIZE);
      guidBytes(p.typeGuid).copy(e, 0);
      const unique = createHash('sha256').update(`${options.diskGuid}/${i + 1}`).digest();
      unique[6] = (unique[6]! & 0x0f) | 0x40; // a version 4 style GUID
      unique[8] = (unique[8]! & 0x3f) | 0x80;
      unique.copy(e, 16, 0, 16);
      e.writeBigUInt64LE(BigInt(first), 32);
      e.writeBigUInt64LE(BigInt(last), 40);
      e.write(p.name.slice(0, 36), 56, 'utf16le');
      partitions.push({ index: i + 1, name: p.name, typeGuid: p.typeGuid.toUpperCase(), start: first * ss, size: (last - first + 1) * ss });
      next = Math.ceil((last + 1) / align) * align;
    });
    const header = (myLba: number, altLba: number, entriesLba: number): Buffer => {
      const h = Buffer.alloc(ss);
      h.write('EFI PART', 0, 'latin1');
      h.writeUInt32LE(0x00010000, 8);
      h.writeUInt32LE(92, 12);
      h.writeBigUInt64LE(BigInt(myLba), 24);
      h.writeBigUInt64LE(BigInt(altLba), 32);
      h.writeBigUInt64LE(BigInt(firstUsable), 40);
      h.writeBigUInt64LE(BigInt(lastUsable), 48);
      guidBytes(options.diskGuid).copy(h, 56);
      h.writeBigUInt64LE(BigInt(entriesLba), 72);
      h.writeUInt32LE(ENTRIES, 80);
      h.writeUInt32LE(ENTRY_SIZE, 84);
      h.writeUInt32LE(crc32(table), 88);
      h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
      return h;
    };
    // Protective MBR: one 0xEE partition covering the disk (in logical sectors).
    const mbr = Buffer.alloc(ss);
    const m = 446;
    mbr.writeUInt8(0x00, m);
    mbr.writeUInt8(0x00, m + 1);
    mbr.writeUInt8(0x02, m + 2);
    mbr.writeUInt8(0x00, m + 3);
    mbr.writeUInt8(0xee, m + 4);
    mbr.writeUInt8(0xff, m + 5);
    mbr.writeUInt8(0xff, m + 6);
    mbr.writeUInt8(0xff, m + 7);
    mbr.writeUInt32LE(1, m + 8);
    mbr.writeUInt32LE(Math.min(sectors - 1, 0xffffffff), m + 12);
    mbr.writeUInt16LE(0xaa55, 510);
    await fh.write(mbr, 0, ss, 0);
    await fh.write(header(1, sectors - 1, 2), 0, ss, ss);
    await fh.write(table, 0, table.length, 2 * ss);
    await fh.write(table, 0, table.length, (lastUsable + 1) * ss);
    await fh.write(header(sectors - 1, 1, lastUsable + 1), 0, ss, (sectors - 1) * ss);
    return { sectorSize: ss, partitions };
  } finally {
    await fh.close();
  }
}
