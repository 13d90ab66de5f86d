import { type OnProgress, withPhase, writeFileAtomic } from '@cosa/schema';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Workdir } from './workdir.js';
import { hostArch } from './arch.js';
import { loadComposeInput } from './_compose-input.js';

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
  const { composer, opts } = await loadComposeInput(wd, { arch, strict: options.strict, signal: options.signal, onProgress: options.onProgress });
  await mkdir(wd.cacheDir, { recursive: true });
  await withPhase(options.onProgress, 'fetch', () => composer.fetch(opts));
  await writeFileAtomic(join(wd.cacheDir, 'fetched-stamp'), `${new Date().toISOString()}\n`);
  return { composer: composer.name };
}
