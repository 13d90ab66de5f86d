import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { isCosaError, parseMetaJson, serializeMetaJson, type MetaJson } from '@cosa/schema';
import { compressBuild, decompressBuild, type Compressor } from '../src/index.js';

let dir: string;
let buildDir: string;
const ARCH = 'x86_64';

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

const payloads = new Map<number, Buffer>();
/** Compressible but not trivial content: text lines with random tokens (made once per size). */
function payload(kib: number): Buffer {
  const cached = payloads.get(kib);
  if (cached) return cached;
  const lines: string[] = [];
  let n = 0;
  while (n < kib * 1024) {
    const l = `line ${lines.length} ${randomBytes(8).toString('hex')} the quick brown fox jumps over the lazy dog\n`;
    lines.push(l);
    n += l.length;
  }
  const b = Buffer.from(lines.join(''));
  payloads.set(kib, b);
  return b;
}

const files: Record<string, Buffer> = {};

async function writeBuild(arch = ARCH): Promise<void> {
  const archDir = join(buildDir, arch);
  await mkdir(archDir, { recursive: true });
  const art = async (key: string, file: string, data: Buffer, extra: Record<string, unknown> = {}) => {
    await writeFile(join(archDir, file), data);
    files[`${arch}/${file}`] = data;
    return { [key]: { path: file, sha256: sha(data), size: data.length, ...extra } };
  };
  const meta = {
    buildid: '1.0',
    name: 'testos',
    'ostree-commit': 'a'.repeat(64),
    'ostree-timestamp': '2026-11-25T00:00:00Z',
    'ostree-version': '1.0',
    images: {
      ...(await art('ostree', `testos-1.0-ostree.${arch}.tar`, payload(256), { 'skip-compression': true })),
      ...(await art('qemu', `testos-1.0-qemu.${arch}.qcow2`, payload(1536))),
      ...(await art('metal', `testos-1.0-metal.${arch}.raw`, payload(1024))),
      ...(await art('gcp', `testos-1.0-gcp.${arch}.tar.gz`, payload(256), { 'skip-compression': true })),
    },
  };
  await writeFile(join(archDir, 'meta.json'), serializeMetaJson(meta as MetaJson));
}

async function meta(arch = ARCH): Promise<MetaJson> {
  return parseMetaJson(await readFile(join(buildDir, arch, 'meta.json'), 'utf8'));
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cosa-compress-test-'));
  buildDir = join(dir, 'builds', '1.0');
  await writeBuild();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('compressBuild and decompressBuild', () => {
  for (const compressor of ['xz', 'gzip', 'zstd'] as Compressor[]) {
    it(`compresses with ${compressor} and decompressing restores the original sha256`, async () => {
      const before = await meta();
      const r = await compressBuild({ buildDir, compressor });
      const suffix = { xz: '.xz', gzip: '.gz', zstd: '.zst' }[compressor];
      expect(r.done.map((d) => d.artifact).sort()).toEqual(['metal', 'qemu']);
      expect(r.skipped.filter((s) => s.reason === 'skip-compression').map((s) => s.artifact).sort()).toEqual(['gcp', 'ostree']);
      const m = await meta();
      const qemu = m.images?.qemu;
      expect(qemu?.path).toBe(`testos-1.0-qemu.x86_64.qcow2${suffix}`);
      expect(qemu?.['uncompressed-sha256']).toBe(before.images?.qemu?.sha256);
      expect(qemu?.['uncompressed-size']).toBe(before.images?.qemu?.size);
      const onDisk = await readFile(join(buildDir, ARCH, qemu!.path));
      expect(qemu?.sha256).toBe(sha(onDisk));
      expect(qemu?.size).toBe(onDisk.length);
      expect(onDisk.length).toBeLessThan(before.images!.qemu!.size!);
      // skip-compression entries untouched, uncompressed originals gone, no scratch left
      expect(m.images?.gcp).toEqual(before.images?.gcp);
      expect(m.images?.ostree).toEqual(before.images?.ostree);
      const names = await readdir(join(buildDir, ARCH));
      expect(names).not.toContain('testos-1.0-qemu.x86_64.qcow2');
      expect(names.filter((n) => n.startsWith('.cosa-compress-'))).toEqual([]);

      const d = await decompressBuild({ buildDir });
      expect(d.done.map((x) => x.artifact).sort()).toEqual(['metal', 'qemu']);
      const after = await meta();
      expect(after).toEqual(before);
      for (const key of ['qemu', 'metal'] as const) {
        const img = after.images![key]!;
        expect(sha(await readFile(join(buildDir, ARCH, img.path)))).toBe(before.images![key]!.sha256);
      }
      expect((await readdir(join(buildDir, ARCH))).filter((n) => /\.(xz|gz|zst)$/.test(n) && !n.includes('gcp'))).toEqual([]);
    }, 60_000);
  }

  it('hashes the source it compresses and refuses one that does not match meta.json', async () => {
    const qemu = join(buildDir, ARCH, `testos-1.0-qemu.${ARCH}.qcow2`);
    const data = await readFile(qemu);
    data[10] = data[10]! ^ 0xff;
    await writeFile(qemu, data);
    const before = await readFile(join(buildDir, ARCH, 'meta.json'), 'utf8');
    const e = await compressBuild({ buildDir, artifacts: ['qemu'], compressor: 'gzip' }).catch((x: unknown) => x);
    expect(isCosaError(e, 'COSA_COMPRESS_CHECKSUM_MISMATCH')).toBe(true);
    expect((e as Error).message).toContain('qemu');
    // Nothing changed: meta.json, the artifact, no compressed file, no scratch dir.
    expect(await readFile(join(buildDir, ARCH, 'meta.json'), 'utf8')).toBe(before);
    expect((await readFile(qemu)).equals(data)).toBe(true);
    expect((await readdir(join(buildDir, ARCH))).filter((n) => n.endsWith('.gz') && n.includes('qemu') || n.startsWith('.cosa-compress'))).toEqual([]);
  });

  it('compresses only the selected artifacts and arches', async () => {
    await writeBuild('aarch64');
    const r = await compressBuild({ buildDir, compressor: 'xz', fast: true, artifacts: ['metal'], arches: ['aarch64'] });
    expect(r.done.map((d) => `${d.arch}/${d.artifact}`)).toEqual(['aarch64/metal']);
    expect((await meta('aarch64')).images?.qemu?.path).toBe('testos-1.0-qemu.aarch64.qcow2');
    expect((await meta(ARCH)).images?.metal?.path).toBe('testos-1.0-metal.x86_64.raw');
  });

  it('resumes an interrupted compress: finished artifacts stay, the rest get compressed', async () => {
    const controller = new AbortController();
    const phases: string[] = [];
    const err = await compressBuild({
      buildDir,
      compressor: 'xz',
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type !== 'phase' || e.status !== 'start') return;
        phases.push(e.phase);
        if (phases.length === 2) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(isCosaError(err, 'COSA_EXEC_ABORTED')).toBe(true);
    const mid = await meta();
    const first = phases[0]!.split('/')[1] as 'qemu' | 'metal';
    const second = phases[1]!.split('/')[1] as 'qemu' | 'metal';
    expect(mid.images?.[first]?.path.endsWith('.xz')).toBe(true);
    expect(mid.images?.[second]?.path.endsWith('.xz')).toBe(false);
    const firstStat = await stat(join(buildDir, ARCH, mid.images![first]!.path));

    const r = await compressBuild({ buildDir, compressor: 'xz' });
    expect(r.done.map((d) => d.artifact)).toEqual([second]);
    expect(r.skipped).toContainEqual({ arch: ARCH, artifact: first, reason: 'already-compressed' });
    // the first one was not recompressed
    expect((await stat(join(buildDir, ARCH, mid.images![first]!.path))).mtimeMs).toBe(firstStat.mtimeMs);
    expect((await readdir(join(buildDir, ARCH))).filter((n) => n.startsWith('.cosa-compress-'))).toEqual([]);
    const d = await decompressBuild({ buildDir });
    expect(d.done).toHaveLength(2);
    const m = await meta();
    expect(sha(await readFile(join(buildDir, ARCH, m.images!.qemu!.path)))).toBe(sha(files[`${ARCH}/testos-1.0-qemu.x86_64.qcow2`]!));
  }, 60_000);

  it('cleans up the uncompressed file a run killed after writing meta.json left behind', async () => {
    await compressBuild({ buildDir, compressor: 'gzip', fast: true });
    // as if killed between the meta.json write and the delete of the original
    await writeFile(join(buildDir, ARCH, 'testos-1.0-metal.x86_64.raw'), 'leftover');
    const r = await compressBuild({ buildDir, compressor: 'gzip' });
    expect(r.done).toEqual([]);
    expect(await readdir(join(buildDir, ARCH))).not.toContain('testos-1.0-metal.x86_64.raw');
  });

  it('refuses to decompress an artifact whose content does not match uncompressed-sha256', async () => {
    await compressBuild({ buildDir, compressor: 'zstd', fast: true });
    const m = await meta();
    m.images!.qemu!['uncompressed-sha256'] = 'b'.repeat(64);
    await writeFile(join(buildDir, ARCH, 'meta.json'), serializeMetaJson(m));
    const err = await decompressBuild({ buildDir, artifacts: ['qemu'] }).catch((e: unknown) => e);
    expect(isCosaError(err, 'COSA_COMPRESS_CHECKSUM_MISMATCH')).toBe(true);
    // nothing changed: still compressed, no plain file
    expect((await meta()).images?.qemu?.path).toBe('testos-1.0-qemu.x86_64.qcow2.zst');
    expect(await readdir(join(buildDir, ARCH))).not.toContain('testos-1.0-qemu.x86_64.qcow2');
  });

  it('leaves artifacts that already carry a compression suffix alone and names a missing artifact file', async () => {
    const m = await meta();
    const img = m.images!.metal!;
    await writeFile(join(buildDir, ARCH, `${img.path}.gz`), 'born compressed');
    await rm(join(buildDir, ARCH, img.path));
    img.path = `${img.path}.gz`;
    await writeFile(join(buildDir, ARCH, 'meta.json'), serializeMetaJson(m));
    await rm(join(buildDir, ARCH, m.images!.qemu!.path));
    const err = await compressBuild({ buildDir, compressor: 'gzip', fast: true }).catch((e: unknown) => e);
    expect(isCosaError(err, 'COSA_BUILD_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain('testos-1.0-qemu.x86_64.qcow2');
    const r = await compressBuild({ buildDir, compressor: 'gzip', fast: true, artifacts: ['metal'] });
    expect(r.done).toEqual([]);
    expect(r.skipped).toContainEqual({ arch: ARCH, artifact: 'metal', reason: 'already-compressed' });
  });

  it('fails clearly on a missing build directory', async () => {
    const err = await compressBuild({ buildDir: join(dir, 'builds', 'nope'), compressor: 'xz' }).catch((e: unknown) => e);
    expect(isCosaError(err, 'COSA_BUILD_NOT_FOUND')).toBe(true);
  });
});
