import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CosaError } from '@cosa/schema';
import { parseJsonText } from '@cosa/schema/internal';
import { BuildsDir } from './builds-dir.js';
import { isDirectory, isFile } from './_paths.js';

/** The key of `src/config.json` that records the config variant chosen at `cosa init --variant`. */
export const CONFIG_VARIANT_KEY = 'coreos-assembler.config-variant';

/**
 * A cosa workdir: one config (`src/config`) and many builds (`builds/`), with `cache/` and
 * `tmp/` beside them. Open one with {@link Workdir.open}; create one with `initWorkdir()`.
 */
export class Workdir {
  /** Absolute path of the workdir. */
  readonly dir: string;
  /** `src/config`: the config repo (a clone, or a symlink to a local directory). */
  readonly configDir: string;
  /** `builds/`: builds.json, `latest` and one directory per build. */
  readonly buildsDir: string;
  /** `cache/`: caches that survive `cosa clean` (but not `clean --all`). */
  readonly cacheDir: string;
  /** `tmp/`: transient files, removed by `cosa clean`. */
  readonly tmpDir: string;
  /** `tmp/repo`: the OSTree repo holding the commits of recent builds. */
  readonly repo: string;
  /** `overrides/`: `rpm/` and `rootfs/` overrides. */
  readonly overridesDir: string;
  /** The build records of this workdir. */
  readonly builds: BuildsDir;

  private constructor(dir: string) {
    this.dir = dir;
    this.configDir = join(dir, 'src', 'config');
    this.buildsDir = join(dir, 'builds');
    this.cacheDir = join(dir, 'cache');
    this.tmpDir = join(dir, 'tmp');
    this.repo = join(dir, 'tmp', 'repo');
    this.overridesDir = join(dir, 'overrides');
    this.builds = new BuildsDir(this.buildsDir);
  }

  /**
   * Opens an existing workdir. Throws `COSA_WORKDIR_INVALID` naming `dir` when it has no
   * `src/config` directory or no `builds/` directory.
   */
  static async open(dir: string): Promise<Workdir> {
    const abs = resolve(dir);
    const missing: string[] = [];
    if (!(await isDirectory(join(abs, 'src', 'config')))) missing.push('src/config');
    if (!(await isDirectory(join(abs, 'builds')))) missing.push('builds/');
    if (missing.length > 0) {
      throw new CosaError('COSA_WORKDIR_INVALID', `${abs} is not a cosa workdir (missing ${missing.join(' and ')})`, {
        hint: 'run `cosa init CONFIG` in an empty directory, or pass --workdir',
      });
    }
    return new Workdir(abs);
  }

  /** The config variant recorded in `src/config.json` by `cosa init --variant`, if any. */
  async configVariant(): Promise<string | undefined> {
    const file = join(this.dir, 'src', 'config.json');
    if (!(await isFile(file))) return undefined;
    const data = parseJsonText(await readFile(file, 'utf8'), file);
    const v = (data as Record<string, unknown> | null)?.[CONFIG_VARIANT_KEY];
    return typeof v === 'string' ? v : undefined;
  }
}

/** A workdir given either as an opened {@link Workdir} or as a directory path. */
export type WorkdirLike = Workdir | string;

/** Opens `w` unless it is already a {@link Workdir}. */
export async function openWorkdir(w: WorkdirLike): Promise<Workdir> {
  return typeof w === 'string' ? Workdir.open(w) : w;
}
