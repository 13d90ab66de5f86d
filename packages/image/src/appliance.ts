/**
 * The supermin appliance of the VM executor: a small ext2 root built from host-installed Debian
 * packages (APPLIANCE_PACKAGES) with our /init, booted with the host kernel. Cached under
 * `<cacheDir>/supermin/<key>`, the key hashing the package names and versions, the init script,
 * the kernel and supermin's version, so a second run reuses it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@cosa/ostree/internal';
import { CosaError, withLock, withPhase, type OnProgress } from '@cosa/schema';
import { assetPath } from './_assets.js';
import { APPLIANCE_PACKAGES, findHostKernel, requireHostTools, VM_TOOLS } from './_host-packages.js';

/** A built appliance: what qemu boots. */
export interface Appliance {
  /** Directory holding `kernel`, `initrd` and `root`. */
  dir: string;
  kernel: string;
  initrd: string;
  /** The ext2 root image (boot it with `snapshot=on`: it is shared by every run). */
  root: string;
  /**
   * The kernel uncompressed to an ELF with a PVH entry point (`vmlinux`), when the host kernel
   * allows it: qemu enters it directly, skipping firmware and the kernel's self-decompression
   * (seconds under TCG). Undefined when the kernel could not be unpacked; boot `kernel` then.
   */
  vmlinux?: string;
  /** The cache key (hex). */
  key: string;
  /** True when it came from the cache. */
  cached: boolean;
}

/** Options of {@link prepareAppliance}. */
export interface PrepareApplianceOptions {
  cacheDir: string;
  /** Rebuild even when cached. */
  force?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** Package name=version lines for the appliance set, as dpkg reports them (missing ones throw). */
async function packageVersions(signal?: AbortSignal): Promise<string[]> {
  const r = await run(['dpkg-query', '-W', '-f', '${Package}=${Version} ${db:Status-Status}\n', ...APPLIANCE_PACKAGES], {
    signal,
    okExitCodes: [0, 1],
  });
  const found = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+?)=(\S+) installed$/.exec(line.trim());
    if (m?.[1] && m[2]) found.set(m[1], m[2]);
  }
  const missing = APPLIANCE_PACKAGES.filter((p) => !found.has(p));
  if (missing.length > 0) {
    throw new CosaError('COSA_TOOLS_MISSING', `missing host packages for the VM appliance: ${missing.join(' ')}`, {
      hint: `run scripts/setup.sh (or: apt-get install ${missing.join(' ')})`,
    });
  }
  return APPLIANCE_PACKAGES.map((p) => `${p}=${found.get(p)}`);
}

/** Returns the cache key of the appliance this host would build now. */
export async function applianceKey(signal?: AbortSignal): Promise<string> {
  const kernel = await findHostKernel();
  const supermin = (await run(['supermin', '--version'], { signal })).stdout.trim();
  const init = await readFile(assetPath('appliance-init.sh'));
  return createHash('sha256')
    .update(JSON.stringify({ v: 2, packages: await packageVersions(signal), kernel, supermin }))
    .update(init)
    .digest('hex')
    .slice(0, 24);
}

/**
 * Returns the cached appliance for this host's packages, building it (supermin --prepare +
 * --build, a few seconds) when absent. Safe to call from concurrent processes.
 */
export async function prepareAppliance(options: PrepareApplianceOptions): Promise<Appliance> {
  await requireHostTools(VM_TOOLS, { kernel: true });
  const key = await applianceKey(options.signal);
  const base = join(options.cacheDir, 'supermin');
  const dir = join(base, key);
  const result = (cached: boolean): Appliance => ({
    dir, key, cached, kernel: join(dir, 'kernel'), initrd: join(dir, 'initrd'), root: join(dir, 'root'),
    ...(existsSync(join(dir, 'vmlinux')) ? { vmlinux: join(dir, 'vmlinux') } : {}),
  });
  const ready = () => existsSync(join(dir, 'root')) && existsSync(join(dir, 'initrd')) && existsSync(join(dir, 'kernel'));
  if (!options.force && ready()) return result(true);
  await mkdir(base, { recursive: true });
  return withLock(dir, async () => {
    if (!options.force && ready()) return result(true);
    const work = `${dir}.tmp-${process.pid}`;
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    try {
      const o = { signal: options.signal, onProgress: options.onProgress };
      await withPhase(options.onProgress, 'appliance-prepare', async () => {
        await run(['supermin', '--prepare', '-o', join(work, 'prepare.d'), ...APPLIANCE_PACKAGES], o);
        const initDir = join(work, 'initdir');
        await mkdir(initDir, { recursive: true });
        await copyFile(assetPath('appliance-init.sh'), join(initDir, 'init'));
        await chmod(join(initDir, 'init'), 0o755);
        await run(['tar', '-C', initDir, '-czf', join(work, 'prepare.d', 'init.tar.gz'), './init'], o);
      });
      await withPhase(options.onProgress, 'appliance-build', async () => {
        await run(['supermin', '--build', '-f', 'ext2', '--size', '2G', '-o', join(work, 'appliance.d'), join(work, 'prepare.d')], o);
        await unpackKernel(join(work, 'appliance.d', 'kernel'), join(work, 'appliance.d', 'vmlinux'), o);
      });
      await rm(dir, { recursive: true, force: true });
      await rename(join(work, 'appliance.d'), dir);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    return result(false);
  }, { what: 'the supermin appliance cache' });
}

/** Compressed payloads of an x86 bzImage we can unpack: magic, and the decompressor reading stdin. */
const PAYLOADS: Array<{ magic: Buffer; cmd: string }> = [
  { magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), cmd: 'xz -dc --single-stream' },
  { magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), cmd: 'zstd -dcq' },
];

/**
 * True when `file` is a 64-bit ELF carrying the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY),
 * the one qemu's `-kernel` needs to boot an uncompressed vmlinux.
 */
export async function hasPvhEntry(file: string): Promise<boolean> {
  const fh = await open(file, 'r').catch(() => undefined);
  if (!fh) return false;
  try {
    const head = Buffer.alloc(64);
    await fh.read(head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return false;
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    await fh.read(ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const p = ph.subarray(i * phentsize);
      if (p.readUInt32LE(0) !== 4) continue; // PT_NOTE
      const notes = Buffer.alloc(Number(p.readBigUInt64LE(32)));
      await fh.read(notes, 0, notes.length, Number(p.readBigUInt64LE(8)));
      for (let off = 0; off + 12 <= notes.length;) {
        const namesz = notes.readUInt32LE(off);
        const descsz = notes.readUInt32LE(off + 4);
        const type = notes.readUInt32LE(off + 8);
        const name = notes.subarray(off + 12, off + 12 + namesz).toString('latin1').replace(/\0+$/, '');
        if (name === 'Xen' && type === 18) return true;
        off += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
      }
    }
    return false;
  } finally {
    await fh.close();
  }
}

/**
 * Unpacks the compressed kernel inside a bzImage into `out` (xz or zstd payloads), keeping it only
 * when it is a PVH-bootable ELF. Best effort: any failure leaves no `out` and the appliance
 * boots the bzImage as before.
 */
async function unpackKernel(bzImage: string, out: string, o: { signal?: AbortSignal }): Promise<void> {
  try {
    const image = await readFile(bzImage);
    for (const { magic, cmd } of PAYLOADS) {
      const at = image.indexOf(magic);
      if (at < 0) continue;
      // No pipefail: the decompressor stops after the payload and tail dies of SIGPIPE; the
      // result is judged by hasPvhEntry.
      await run(['bash', '-c', `tail -c +${at + 1} "$1" | ${cmd} > "$2"`, 'unpack-kernel', bzImage, out], { signal: o.signal, okExitCodes: [0, 1, 2] });
      if (await hasPvhEntry(out)) return;
      await rm(out, { force: true });
    }
  } catch (e) {
    await rm(out, { force: true });
    if (o.signal?.aborted) throw e;
  }
}
