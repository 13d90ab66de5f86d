import { loadConfig, type OnProgress, withPhase, writeFileAtomic } from '@cosa/schema';
import { selectComposer } from '@cosa/ostree';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Workdir } from './workdir.js';
import { hostArch } from './arch.js';

/** Options of {@link fetchPackages}. */
export interface FetchOptions {
  workdir: string;
  arch?: string;
  strict?: boolean;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/**
 * `cosa fetch`: downloads the packages (and repo metadata) the manifest needs into cache/, so a
 * following `cosa build` works offline; touches cache/fetched-stamp as the original.
 */
export async function fetchPackages(options: FetchOptions): Promise<{ composer: string }> {
  const wd = await Workdir.open(options.workdir);
  const arch = options.arch ?? hostArch();
  const variant = await wd.configVariant();
  const cfg = await loadConfig({ configDir: wd.configDir, arch, ...(variant ? { variant } : {}), ...(options.strict ? { strict: true } : {}) });
  const composer = await selectComposer(cfg.manifest);
  await mkdir(wd.cacheDir, { recursive: true });
  await withPhase(options.onProgress, 'fetch', () =>
    composer.fetch({
      manifest: cfg.manifest,
      configDir: wd.configDir,
      files: cfg.manifestFiles,
      cacheDir: wd.cacheDir,
      tmpDir: wd.tmpDir,
      repo: wd.repo,
      arch,
      version: '',
      ref: cfg.manifest.ref ?? '',
      ...(cfg.lockfile ? { lockfile: cfg.lockfile } : {}),
      ...(options.strict ? { strict: true } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    }),
  );
  await writeFileAtomic(join(wd.cacheDir, 'fetched-stamp'), `${new Date().toISOString()}\n`);
  return { composer: composer.name };
}
