import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hasPvhEntry } from '../src/appliance.ts';
import { APPLIANCE_KARGS, vmCpuArgs } from '../src/executor.ts';

/** A minimal ELF64 little-endian file with one PT_NOTE segment holding the given notes. */
function elfWithNotes(notes: Array<{ name: string; type: number; desc: Buffer }>): Buffer {
  const pad4 = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const body = Buffer.concat(notes.map(({ name, type, desc }) => {
    const n = Buffer.from(`${name}\0`, 'latin1');
    const h = Buffer.alloc(12);
    h.writeUInt32LE(n.length, 0);
    h.writeUInt32LE(desc.length, 4);
    h.writeUInt32LE(type, 8);
    return Buffer.concat([h, pad4(n), pad4(desc)]);
  }));
  const ehdr = Buffer.alloc(64);
  ehdr.writeUInt32BE(0x7f454c46, 0);
  ehdr[4] = 2; // ELFCLASS64
  ehdr[5] = 1; // little endian
  ehdr.writeBigUInt64LE(64n, 32); // e_phoff
  ehdr.writeUInt16LE(56, 54); // e_phentsize
  ehdr.writeUInt16LE(2, 56); // e_phnum
  const load = Buffer.alloc(56);
  load.writeUInt32LE(1, 0); // PT_LOAD, ignored
  const note = Buffer.alloc(56);
  note.writeUInt32LE(4, 0); // PT_NOTE
  note.writeBigUInt64LE(BigInt(64 + 2 * 56), 8); // p_offset
  note.writeBigUInt64LE(BigInt(body.length), 32); // p_filesz
  return Buffer.concat([ehdr, load, note, body]);
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cosa-pvh-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the appliance kernel', () => {
  it('boots an unpacked vmlinux only when it carries the Xen PVH entry note', async () => {
    const entry = Buffer.alloc(8);
    const pvh = join(dir, 'pvh');
    await writeFile(pvh, elfWithNotes([{ name: 'GNU', type: 3, desc: Buffer.alloc(20) }, { name: 'Xen', type: 18, desc: entry }]));
    expect(await hasPvhEntry(pvh)).toBe(true);
    const otherXenNotes = join(dir, 'no-entry');
    await writeFile(otherXenNotes, elfWithNotes([{ name: 'Xen', type: 6, desc: Buffer.from('linux\0') }, { name: 'GNU', type: 18, desc: entry }]));
    expect(await hasPvhEntry(otherXenNotes)).toBe(false);
    const bzImage = join(dir, 'bzImage');
    await writeFile(bzImage, Buffer.concat([Buffer.alloc(0x202), Buffer.from('HdrS')]));
    expect(await hasPvhEntry(bzImage)).toBe(false);
    expect(await hasPvhEntry(join(dir, 'missing'))).toBe(false);
  });

  it('runs on the CPU model that emulates crc32c under TCG, without mitigations', () => {
    expect(vmCpuArgs('tcg')).toEqual(['-cpu', 'max']);
    expect(vmCpuArgs('kvm')).toEqual(['-cpu', 'host']);
    expect(APPLIANCE_KARGS.split(' ')).toEqual(expect.arrayContaining(['console=ttyS0', 'root=/dev/vda', 'mitigations=off', 'quiet']));
  });
});
