/**
 * A minimal GPT reader: enough to find a partition's byte range in a disk image file without
 * root, loop devices or a tool that guesses the sector size (sgdisk assumes 512 on files).
 */
import { open } from 'node:fs/promises';
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
