import { join } from 'node:path';
import { loadConfig, type LoadedConfig, type OnProgress } from '@cosa/schema';
import { osName } from '@cosa/schema/internal';
import { selectComposer, type ComposeOptions, type Composer, type FileHashCache } from '@cosa/ostree';
import type { Workdir } from './workdir.js';

/** What build and fetch both need before composing: the loaded config, its composer, the options. */
export interface ComposeInput {
  cfg: LoadedConfig;
  composer: Composer;
  /** Compose options with `version` still empty (the caller decides it). */
  opts: ComposeOptions;
}

/**
 * Loads the workdir's config (with its variant) and prepares the composer and its options: the one
 * place compose options are assembled, so the inputs described for change detection are those the
 * compose gets (overrides/rootfs and overrides/rpm included).
 */
export async function loadComposeInput(
  wd: Workdir,
  o: { arch: string; strict?: boolean | undefined; signal?: AbortSignal | undefined; onProgress?: OnProgress | undefined; fileCache?: FileHashCache | undefined },
): Promise<ComposeInput> {
  const variant = await wd.configVariant();
  const cfg = await loadConfig({ configDir: wd.configDir, arch: o.arch, ...(variant ? { variant } : {}), ...(o.strict ? { strict: true } : {}) });
  const composer = await selectComposer(cfg.manifest);
  const notTreefiles = new Set([...cfg.manifestExternals, ...(cfg.lockfile?.files ?? [])]);
  const opts: ComposeOptions = {
    manifest: cfg.manifest,
    configDir: wd.configDir,
    files: cfg.manifestFiles,
    treefiles: cfg.manifestFiles.filter((f) => !notTreefiles.has(f)),
    cacheDir: wd.cacheDir,
    tmpDir: wd.tmpDir,
    repo: wd.repo,
    arch: o.arch,
    version: '',
    ref: cfg.manifest.ref ?? `${osName(cfg.manifest)}/${o.arch}/default`,
    overridesRootfs: join(wd.overridesDir, 'rootfs'),
    overridesRpm: join(wd.overridesDir, 'rpm'),
    ...(variant ? { variant } : {}),
    ...(o.fileCache ? { fileCache: o.fileCache } : {}),
    ...(o.strict ? { strict: true } : {}),
    ...(cfg.lockfile ? { lockfile: cfg.lockfile } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  };
  return { cfg, composer, opts };
}
