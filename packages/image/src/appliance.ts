/**
 * The supermin appliance of the VM executor: a small ext2 root built from host-installed Debian
 * packages (APPLIANCE_PACKAGES) with our /init, booted with the host kernel. Cached under
 * `<cacheDir>/supermin/<key>`, the key hashing the package names and versions, the init script,
 * the kernel and supermin's version, so a second run reuses it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm } from 'node:fs/promises';
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
    .update(JSON.stringify({ v: 1, packages: await packageVersions(signal), kernel, supermin }))
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
      });
      await rm(dir, { recursive: true, force: true });
      await rename(join(work, 'appliance.d'), dir);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    return result(false);
  }, { what: 'the supermin appliance cache' });
}
