import { open } from 'node:fs/promises';
import { readGpt } from '../src/_gpt.ts';

/** The sector size recorded in the superblock of the xfs root (partition 4): what mkfs.xfs saw on the device. */
export async function rootXfsSectorSize(raw: string): Promise<number> {
  const root = (await readGpt(raw)).partitions.find((p) => p.index === 4);
  if (!root) throw new Error(`${raw}: no partition 4`);
  const fh = await open(raw, 'r');
  try {
    const sb = Buffer.alloc(512);
    await fh.read(sb, 0, 512, root.start);
    if (sb.toString('latin1', 0, 4) !== 'XFSB') throw new Error(`${raw}: partition 4 holds no xfs`);
    return sb.readUInt16BE(102);
  } finally {
    await fh.close();
  }
}
