/**
 * `cosa verify-reproducible`: rebuilds a build in a scratch workdir (same config, same version,
 * the same cache/, the same parent commit) and compares the result with the original: the commit
 * checksum, then every artifact byte for byte. A difference is located: the tar entry holding
 * the first differing byte, or the disk partition (and how many bytes differ in each); diffoscope
 * writes a report when it is installed.
 */
import { mkdtemp, open, readlink, rm, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CosaError, type MetaJson, type OnProgress } from '@cosa/schema';
import { importRepoTar, initRepo, pullLocal, revParse, setRef, showCommit } from '@cosa/ostree';
import { hasTool, run } from '@cosa/ostree/internal';
import { type ExecutorChoice } from '@cosa/image';
import { readGpt } from '@cosa/image/internal';
import { build } from './build.js';
import { initWorkdir } from './init.js';
import { openWorkdir, type Workdir, type WorkdirLike } from './workdir.js';
import { hostArch } from './arch.js';

/** Options of {@link verifyReproducible}. */
export interface VerifyReproducibleOptions {
  workdir: WorkdirLike;
  /** The build to rebuild (default: latest). */
  build?: string;
  arch?: string;
  executor?: ExecutorChoice;
  /** Keep the scratch workdir (its path is in the result) instead of removing it. */
  keepScratch?: boolean;
  /** Run diffoscope on differing non-disk artifacts when it is installed (default true). */
  diffoscope?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** Where two disk images differ: per partition (or the space outside every partition). */
export interface DiskRegionDifference {
  /** `p<N> <name>` or `outside partitions`. */
  region: string;
  /** Offset of the first differing byte in the disk. */
  firstOffset: number;
  /** Number of differing bytes in the region. */
  bytes: number;
  /** Size of the region in bytes. */
  size: number;
}

/** The comparison of one artifact. */
export interface ArtifactComparison {
  /** The meta.json `images` key. */
  key: string;
  path: string;
  identical: boolean;
  original: { sha256: string; size: number };
  rebuilt?: { sha256: string; size: number };
  /** Offset of the first differing byte (of the file; of the guest disk for qcow2). */
  firstDifference?: number;
  /** What holds the first differing byte: a tar entry name or a disk region. */
  where?: string;
  /** Raw disks: differing bytes per region. */
  regions?: DiskRegionDifference[];
  /** A diffoscope text report (in the scratch workdir; kept only with keepScratch). */
  diffoscopeReport?: string;
}

/** The result of {@link verifyReproducible}. */
export interface VerifyReproducibleResult {
  build: string;
  arch: string;
  /** True when the commit and every artifact are identical. */
  reproducible: boolean;
  commit: { original: string; rebuilt: string; identical: boolean };
  artifacts: ArtifactComparison[];
  /** Time of the rebuild alone, and of everything (ms). */
  rebuildMs: number;
  durationMs: number;
  /** The scratch workdir (removed unless keepScratch). */
  scratch: string;
}

/** Artifacts that are not images of their own (they follow from the commit). */
const NOT_TARGETS = new Set(['ostree', 'sbom']);

/**
 * Rebuilds `build` in a scratch workdir under `tmp/` and compares it with the original. Throws
 * COSA_BUILD_COMPRESSED when the original's artifacts are compressed (compare the uncompressed).
 */
export async function verifyReproducible(o: VerifyReproducibleOptions): Promise<VerifyReproducibleResult> {
  const t0 = performance.now();
  const wd = await openWorkdir(o.workdir);
  const arch = o.arch ?? hostArch();
  const id = await wd.builds.resolve(o.build ?? 'latest', arch);
  const meta = await wd.builds.getMeta(id, arch);
  for (const [k, v] of Object.entries(meta.images ?? {})) {
    const p = (v as { path: string }).path;
    if (/\.(gz|xz|zst|bz2)$/.test(p)) throw new CosaError('COSA_BUILD_COMPRESSED', `artifact ${k} of build ${id} is compressed (${p})`, { hint: 'run `cosa uncompress` first' });
  }
  const scratch = await mkdtemp(join(wd.tmpDir, `verify-${id}-`));
  try {
    await prepareScratch(wd, scratch, meta, o);
    const targets = ['qemu', ...Object.keys(meta.images ?? {}).filter((k) => !NOT_TARGETS.has(k) && k !== 'qemu')];
    const hasQemu = meta.images?.qemu !== undefined || targets.length > 1;
    const t1 = performance.now();
    const rebuilt = await build({
      workdir: scratch, version: id, arch, targets: hasQemu ? targets : ['ostree'], skipPrune: true,
      ...(o.executor ? { executor: o.executor } : {}), ...(o.signal ? { signal: o.signal } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    const rebuildMs = Math.round(performance.now() - t1);
    const artifacts: ArtifactComparison[] = [];
    for (const [key, v] of Object.entries(meta.images ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
      const a = v as { path: string; sha256: string; size?: number };
      const other = (rebuilt.meta.images as Record<string, { path: string; sha256: string; size?: number }> | undefined)?.[key];
      artifacts.push(
        await compareArtifact(key, join(wd.builds.buildDir(id, arch), a.path), a, other ? join(rebuilt.buildDir, other.path) : undefined, other, { ...o, scratch }),
      );
    }
    const commit = { original: meta['ostree-commit'], rebuilt: rebuilt.meta['ostree-commit'], identical: meta['ostree-commit'] === rebuilt.meta['ostree-commit'] };
    return {
      build: id, arch, reproducible: commit.identical && artifacts.every((x) => x.identical), commit, artifacts, rebuildMs,
      durationMs: Math.round(performance.now() - t0), scratch,
    };
  } finally {
    if (!o.keepScratch) await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * The scratch workdir: the same config (a link to the original's), the same cache/ (a link), and
 * the original commit's parent on its ref in tmp/repo so the rebuilt commit gets the same parent.
 */
async function prepareScratch(wd: Workdir, scratch: string, meta: MetaJson, o: VerifyReproducibleOptions): Promise<void> {
  const sig = o.signal ? { signal: o.signal } : {};
  const config = await readlink(wd.configDir).then((l) => resolve(join(wd.dir, 'src'), l), () => wd.configDir);
  const variant = await wd.configVariant();
  await initWorkdir({ dir: scratch, config, force: true, ...(variant ? { variant } : {}) });
  await rm(join(scratch, 'cache'), { recursive: true, force: true });
  await symlink(resolve(wd.cacheDir), join(scratch, 'cache'));
  const commit = meta['ostree-commit'];
  await initRepo({ path: wd.repo, mode: 'bare-user', ...sig });
  if (!(await revParse({ repo: wd.repo, ref: commit, ...sig }))) {
    const tar = meta.images?.ostree?.path;
    if (!tar) throw new CosaError('COSA_BUILD_NOT_FOUND', `commit ${commit} is not in ${wd.repo} and build ${meta.buildid} has no ostree artifact`);
    await importRepoTar({ tar: join(wd.builds.buildDir(meta.buildid, meta['coreos-assembler.basearch'] ?? hostArch()), tar), repo: wd.repo, tmpDir: wd.tmpDir, ...sig });
  }
  const parent = (await showCommit({ repo: wd.repo, rev: commit, ...sig })).parent;
  if (!parent || !meta.ref) return;
  const repo = join(scratch, 'tmp', 'repo');
  await initRepo({ path: repo, mode: 'bare-user', ...sig });
  if (!(await revParse({ repo: wd.repo, ref: parent, ...sig }))) {
    throw new CosaError('COSA_BUILD_NOT_FOUND', `the parent ${parent} of commit ${commit} is not in ${wd.repo}: the rebuild could not have the same parent`, {
      hint: 'verify a build whose parent commit is still in tmp/repo (the latest builds)',
    });
  }
  await pullLocal({ repo, srcRepo: wd.repo, revs: [parent], trusted: true, ...sig });
  await setRef({ repo, ref: meta.ref, rev: parent, ...sig });
}

async function compareArtifact(
  key: string,
  origPath: string,
  orig: { path: string; sha256: string; size?: number },
  newPath: string | undefined,
  rebuilt: { sha256: string; size?: number } | undefined,
  o: VerifyReproducibleOptions & { scratch: string },
): Promise<ArtifactComparison> {
  const base: ArtifactComparison = { key, path: orig.path, identical: false, original: { sha256: orig.sha256, size: orig.size ?? 0 } };
  if (!newPath || !rebuilt) return { ...base, where: 'missing from the rebuild' };
  base.rebuilt = { sha256: rebuilt.sha256, size: rebuilt.size ?? 0 };
  if (orig.sha256 === rebuilt.sha256) return { ...base, identical: true };
  if (orig.path.endsWith('.qcow2')) return { ...base, ...(await compareQcow2(origPath, newPath, o.signal)) };
  const isDisk = /\.(raw|img)$/.test(orig.path);
  const regions = isDisk ? await diskRegions(newPath) : undefined;
  const diff = await compareBytes(origPath, newPath, regions, o.signal);
  const out: ArtifactComparison = { ...base, ...(diff.first !== undefined ? { firstDifference: diff.first } : {}) };
  if (isDisk) {
    out.regions = diff.regions;
    out.where = diff.regions[0]?.region ?? 'size';
  } else if (orig.path.endsWith('.tar') && diff.first !== undefined) {
    out.where = await tarEntryAt(newPath, diff.first);
  }
  if (!isDisk && o.diffoscope !== false && (await hasTool('diffoscope'))) {
    const report = join(o.scratch, `diffoscope-${key}.txt`);
    const r = await run(['diffoscope', '--text', report, '--max-report-size', String(2 * 1024 * 1024), origPath, newPath], { okExitCodes: [0, 1], timeoutMs: 20 * 60_000, ...(o.signal ? { signal: o.signal } : {}) }).catch(() => undefined);
    if (r) out.diffoscopeReport = report;
  }
  return out;
}

/** The partitions of a raw disk as named regions (empty when it has no GPT). */
async function diskRegions(path: string): Promise<Array<{ name: string; start: number; end: number }>> {
  const gpt = await readGpt(path).catch(() => undefined);
  return (gpt?.partitions ?? []).map((p) => ({ name: `p${p.index} ${p.name}`, start: p.start, end: p.start + p.size }));
}

const CHUNK = 4 * 1024 * 1024;

/** Streams both files and counts differing bytes (per region when given); sizes that differ count as differences. */
async function compareBytes(a: string, b: string, regions: Array<{ name: string; start: number; end: number }> | undefined, signal?: AbortSignal): Promise<{ first?: number; regions: DiskRegionDifference[] }> {
  const fa = await open(a, 'r');
  const fb = await open(b, 'r');
  try {
    const [sa, sb] = [(await fa.stat()).size, (await fb.stat()).size];
    const size = Math.max(sa, sb);
    const ba = Buffer.alloc(CHUNK);
    const bb = Buffer.alloc(CHUNK);
    const byRegion = new Map<string, DiskRegionDifference>();
    const regionOf = (off: number) => regions?.find((r) => off >= r.start && off < r.end);
    let first: number | undefined;
    for (let off = 0; off < size; off += CHUNK) {
      signal?.throwIfAborted();
      ba.fill(0);
      bb.fill(0);
      const [ra, rb] = await Promise.all([fa.read(ba, 0, CHUNK, off), fb.read(bb, 0, CHUNK, off)]);
      const n = Math.max(ra.bytesRead, rb.bytesRead);
      if (ra.bytesRead === rb.bytesRead && ba.subarray(0, n).equals(bb.subarray(0, n))) continue;
      for (let i = 0; i < n; i++) {
        if (ba[i] === bb[i] && i < ra.bytesRead && i < rb.bytesRead) continue;
        const at = off + i;
        first ??= at;
        const r = regionOf(at);
        const name = r?.name ?? 'outside partitions';
        const e = byRegion.get(name) ?? { region: name, firstOffset: at, bytes: 0, size: r ? r.end - r.start : 0 };
        e.bytes++;
        byRegion.set(name, e);
      }
    }
    const list = [...byRegion.values()].sort((x, y) => x.firstOffset - y.firstOffset);
    return { ...(first !== undefined ? { first } : {}), regions: list };
  } finally {
    await fa.close();
    await fb.close();
  }
}

/** qcow2: `qemu-img compare` on the guest-visible content, the offset mapped to a partition. */
async function compareQcow2(a: string, b: string, signal?: AbortSignal): Promise<Partial<ArtifactComparison>> {
  const r = await run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2', a, b], { okExitCodes: [0, 1], ...(signal ? { signal } : {}) });
  if (r.exitCode === 0) return { where: 'same guest content, different qcow2 metadata' };
  const off = Number(/offset (\d+)/.exec(r.stdout + r.stderr)?.[1]);
  if (!Number.isFinite(off)) return { where: (r.stdout + r.stderr).trim() };
  // The partition table is in the first MiB of the guest disk.
  const head = join(resolve(b, '..'), `.verify-head-${process.pid}.raw`);
  try {
    await run(['qemu-img', 'dd', '-f', 'qcow2', '-O', 'raw', 'bs=1M', 'count=1', `if=${b}`, `of=${head}`], signal ? { signal } : {});
    const region = (await diskRegions(head)).find((p) => off >= p.start && off < p.end);
    return { firstDifference: off, where: region?.name ?? 'outside partitions' };
  } finally {
    await rm(head, { force: true });
  }
}

/** The name of the tar entry whose header or data holds byte `offset` (pax headers count for the entry they precede). */
export async function tarEntryAt(tar: string, offset: number): Promise<string> {
  const fh = await open(tar, 'r');
  try {
    const h = Buffer.alloc(512);
    let pos = 0;
    let paxName: string | undefined;
    for (;;) {
      const { bytesRead } = await fh.read(h, 0, 512, pos);
      if (bytesRead < 512 || h.every((x) => x === 0)) return `end of archive (offset ${offset})`;
      const size = parseInt(h.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
      const type = String.fromCharCode(h[156] ?? 48);
      const end = pos + 512 + Math.ceil(size / 512) * 512;
      if (type === 'x' || type === 'L') {
        const body = Buffer.alloc(size);
        await fh.read(body, 0, size, pos + 512);
        paxName = type === 'L' ? body.toString('utf8').replace(/\0.*$/s, '') : /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'))?.[1];
      } else {
        const prefix = h.toString('utf8', 345, 500).replace(/\0.*$/s, '');
        const name = paxName ?? (prefix ? `${prefix}/` : '') + h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
        if (offset < end) return offset < pos + 512 ? `${name} (header)` : name;
        paxName = undefined;
      }
      pos = end;
    }
  } finally {
    await fh.close();
  }
}
