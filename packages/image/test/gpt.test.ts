/**
 * The GPT writer: what it writes is read back by our reader, by sgdisk (512-byte sectors) and by
 * fdisk with the sector size given (4096), and a damaged CRC is noticed by them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGpt, writeGpt } from '../src/_gpt.js';

const MiB = 1024 * 1024;
const PARTS = [
  { name: 'BIOS-BOOT', typeGuid: '21686148-6449-6E6F-744E-656564454649', sizeMiB: 1 },
  { name: 'EFI-SYSTEM', typeGuid: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', sizeMiB: 127 },
  { name: 'boot', typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', sizeMiB: 384 },
  { name: 'root', typeGuid: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', sizeMiB: 0 },
];
const DISK_GUID = '00000000-0000-4000-A000-000000000001';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cosa-gpt-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function disk(name: string, mib: number): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, '');
  await truncate(p, mib * MiB);
  return p;
}

describe('writeGpt', () => {
  it('writes a 512-byte-sector table that sgdisk verifies and reads the same', async () => {
    const p = await disk('d512.raw', 1024);
    const written = await writeGpt(p, { sectorSize: 512, diskGuid: DISK_GUID, partitions: PARTS });
    expect(await readGpt(p)).toEqual(written);
    expect(written.partitions.map((x) => [x.start / MiB, x.size / MiB])).toEqual([[1, 1], [2, 127], [129, 384], [513, 1024 - 513 - (33 * 512) / MiB]]);
    const verify = execFileSync('sgdisk', ['-v', p], { encoding: 'utf8' });
    expect(verify).toContain('No problems found');
    expect(verify).not.toMatch(/corrupt/i);
    const info = execFileSync('sgdisk', ['-i', '2', p], { encoding: 'utf8' });
    expect(info).toMatch(/First sector: 4096 /);
    expect(info).toMatch(/Partition name: 'EFI-SYSTEM'/);
    expect(info).toMatch(/C12A7328-F81F-11D2-BA4B-00A0C93EC93B/);
    expect(execFileSync('sgdisk', ['-p', p], { encoding: 'utf8' })).toMatch(/Disk identifier \(GUID\): 00000000-0000-4000-A000-000000000001/);
  });

  it('writes a 4096-byte-sector table that fdisk -b 4096 reads', async () => {
    const p = await disk('d4k.raw', 1024);
    const written = await writeGpt(p, { sectorSize: 4096, diskGuid: DISK_GUID, partitions: PARTS });
    expect(await readGpt(p)).toEqual(written);
    expect(written.sectorSize).toBe(4096);
    const out = execFileSync('fdisk', ['-b', '4096', '-l', p], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    expect(out).toContain('Sector size (logical/physical): 4096 bytes');
    expect(out).toMatch(/d4k\.raw2\s+512\s+33023\s+32512\s+127M EFI System/);
    expect(out).toMatch(/d4k\.raw4\s+131328\s+262138\s+/);
    expect(out).not.toMatch(/corrupt|invalid|mismatch/i);
  });

  it('gives the same bytes for the same inputs', async () => {
    const a = await disk('a.raw', 600);
    const b = await disk('b.raw', 600);
    await writeGpt(a, { sectorSize: 512, diskGuid: DISK_GUID, partitions: PARTS });
    await writeGpt(b, { sectorSize: 512, diskGuid: DISK_GUID, partitions: PARTS });
    // The tables live in the first and last MiB; the rest is untouched (a hole).
    const ends = async (f: string) => {
      const fh = await open(f, 'r');
      const buf = Buffer.alloc(2 * MiB);
      await fh.read(buf, 0, MiB, 0);
      await fh.read(buf, MiB, MiB, 599 * MiB);
      await fh.close();
      return buf;
    };
    const [ea, eb] = [await ends(a), await ends(b)];
    expect(ea.some((x) => x !== 0)).toBe(true);
    expect(ea.equals(eb)).toBe(true);
  });

  it('refuses a layout that does not fit', async () => {
    const p = await disk('small.raw', 256);
    await expect(writeGpt(p, { sectorSize: 512, diskGuid: DISK_GUID, partitions: PARTS })).rejects.toThrow(/partition 3 \(boot\) does not fit on a 256 MiB disk/);
  });

  it('writes a header CRC that sgdisk checks', async () => {
    const p = await disk('crc.raw', 1024);
    await writeGpt(p, { sectorSize: 512, diskGuid: DISK_GUID, partitions: PARTS });
    const fh = await open(p, 'r+');
    await fh.write(Buffer.from([0xff]), 0, 1, 512 + 40); // first usable LBA, without fixing the CRC
    await fh.close();
    const out = execFileSync('sgdisk', ['-v', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toContain('corrupt GPT');
  });
});
