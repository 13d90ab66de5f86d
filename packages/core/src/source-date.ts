/**
 * SOURCE_DATE_EPOCH of a build: one timestamp derived from the inputs, used as the commit's
 * timestamp and handed to every tool of the compose that writes times (shadow's last-change date,
 * customize hooks, postprocess scripts). Two builds of the same config then agree on it, and it
 * grows as the config does (ostree refuses upgrades to an older commit timestamp).
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { CosaError } from '@cosa/schema';
import { run } from '@cosa/ostree/internal';

/** Where a build's SOURCE_DATE_EPOCH came from. */
export type SourceDateOrigin = 'env' | 'git' | 'mtime';

/**
 * The build's SOURCE_DATE_EPOCH (seconds): `$SOURCE_DATE_EPOCH` when set; else the committer time
 * of the config's git HEAD; else the newest mtime of the config files the manifest was read from.
 * A malformed `$SOURCE_DATE_EPOCH` is COSA_USAGE.
 */
export async function sourceDateEpoch(o: { configDir: string; files?: string[]; env?: NodeJS.ProcessEnv }): Promise<{ epoch: number; origin: SourceDateOrigin } | undefined> {
  const env = (o.env ?? process.env).SOURCE_DATE_EPOCH;
  if (env !== undefined && env !== '') {
    if (!/^\d{1,12}$/.test(env)) throw new CosaError('COSA_USAGE', `SOURCE_DATE_EPOCH must be a non-negative integer (seconds since 1970), not ${JSON.stringify(env)}`);
    return { epoch: Number(env), origin: 'env' };
  }
  const git = await run(['git', '-C', o.configDir, 'log', '-1', '--format=%ct'], { okExitCodes: [0, 128] }).catch(() => undefined);
  const ct = git?.exitCode === 0 ? git.stdout.trim() : '';
  if (/^\d+$/.test(ct)) return { epoch: Number(ct), origin: 'git' };
  let newest = -1;
  for (const f of o.files ?? []) {
    const st = await stat(isAbsolute(f) ? f : join(o.configDir, f)).catch(() => undefined);
    if (st) newest = Math.max(newest, Math.floor(st.mtimeMs / 1000));
  }
  return newest >= 0 ? { epoch: newest, origin: 'mtime' } : undefined;
}
