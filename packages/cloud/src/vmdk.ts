import { open } from 'node:fs/promises';
import { CosaError } from '@cosa/schema';

const GiB = 1024 ** 3;

/**
 * The virtual size in bytes of a sparse/stream-optimized VMDK (as `cosa buildextend-aws`
 * writes), read from its header: `capacity` sectors of 512 bytes. `COSA_AWS_IMAGE_INVALID`
 * when the file is not such a VMDK.
 */
export async function vmdkVirtualSize(file: string): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(20);
    const { bytesRead } = await fh.read(buf, 0, 20, 0);
    if (bytesRead < 20 || buf.toString('latin1', 0, 4) !== 'KDMV') {
      throw new CosaError('COSA_AWS_IMAGE_INVALID', `${file} is not a sparse VMDK (no KDMV header)`, { hint: 'cosa buildextend-aws --force writes it again' });
    }
    const sectors = buf.readBigUInt64LE(12);
    return Number(sectors) * 512;
  } finally {
    await fh.close();
  }
}

/** `bytes` in GiB, rounded up (the EBS volume size an image of that virtual size needs). */
export function gibRoundedUp(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / GiB));
}
