import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigFileError, readConfigDocument } from './_config-io.js';
import { zodIssues } from './json.js';

/** Console settings for one arch/platform pair (`platforms.yaml` → `/boot/coreos/platforms.json`). */
export const platformConfigSchema = z.looseObject({
  /** GRUB commands run before the menu, e.g. `serial --speed=115200`. */
  grub_commands: z.array(z.string()).default([]),
  /** Kernel arguments for this platform, e.g. `console=ttyS0,115200n8`. */
  kernel_arguments: z.array(z.string()).default([]),
});
/** Settings of one arch/platform pair, lists defaulted to `[]`. */
export type PlatformConfig = z.output<typeof platformConfigSchema>;

/** The whole `platforms.yaml`: arch → platform → settings (every level optional). */
export const platformsSchema = z.record(
  z.string(),
  z
    .record(z.string(), z.preprocess((v) => v ?? {}, platformConfigSchema))
    .nullable()
    .transform((v) => v ?? {}),
);
/** A parsed `platforms.yaml`: arch → platform → {@link PlatformConfig}. */
export type Platforms = z.output<typeof platformsSchema>;

/** Options for {@link loadPlatforms}. */
export interface LoadPlatformsOptions {
  /** Path of `platforms.yaml`. */
  file: string;
  /** Base architecture whose platforms are returned. */
  arch: string;
}

/**
 * Loads `platforms.yaml` (every arch is validated) and returns the platforms of `arch`, each with
 * `kernel_arguments` and `grub_commands` (empty lists when absent). An arch the file does not
 * mention has no platforms (`{}`).
 *
 * @throws ConfigFileError `COSA_CONFIG_MISSING` when the file does not exist, `COSA_SCHEMA_INVALID`
 *   naming the `arch.platform.key` path of a wrong value, `COSA_SCHEMA_PARSE` for bad YAML.
 */
export async function loadPlatforms(options: LoadPlatformsOptions): Promise<Record<string, PlatformConfig>> {
  const file = resolve(options.file);
  const doc = await readConfigDocument(file, [file], file);
  if (doc === undefined) throw new ConfigFileError(file, [{ path: '', message: 'platforms file does not exist' }], { code: 'COSA_CONFIG_MISSING' });
  const r = platformsSchema.safeParse(doc);
  if (!r.success) throw new ConfigFileError(file, zodIssues(r.error));
  return r.data[options.arch] ?? {};
}
