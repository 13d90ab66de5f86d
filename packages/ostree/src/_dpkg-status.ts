/**
 * The installed versions of a few packages read from dpkg's database files instead of starting
 * `dpkg-query` (the no-op `cosa build` asks for the composer's tool versions on every run, and a
 * process start costs tens of milliseconds). Answers only where the result is the one
 * `dpkg-query -W -f '${Package} ${Version}\n' NAME…` prints; everywhere else it says so and the
 * caller runs dpkg-query.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** dpkg's database directory when neither `DPKG_ROOT` nor `DPKG_ADMINDIR` moves it. */
export const DPKG_ADMINDIR = '/var/lib/dpkg';

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The value of a simple (one-line) field of a deb822 stanza, or undefined. */
function field(stanza: string, name: string): string | undefined {
  return new RegExp(`^${name}:[ \\t]*(.*?)[ \\t]*$`, 'mi').exec(stanza)?.[1];
}

/**
 * The lines `NAME VERSION` dpkg-query would print for `names` (one per installed instance, in no
 * particular order), read from `adminDir`/status; undefined when this reader cannot be sure of
 * giving the same answer: the status file is unreadable, an update journal is pending in
 * `updates/` (dpkg-query would replay it), the `available` file names one of the packages (it can
 * add instances), a package has no stanza (dpkg-query reports it missing), or a stanza has no
 * plain version (not installed, or an explicit `0:` epoch dpkg-query would drop).
 */
export async function dpkgInstalledVersions(names: readonly string[], adminDir: string = DPKG_ADMINDIR): Promise<string[] | undefined> {
  if (names.length === 0) return undefined;
  const [status, updates, available] = await Promise.all([
    readFile(join(adminDir, 'status'), 'utf8').catch(() => undefined),
    readdir(join(adminDir, 'updates')).catch(() => [] as string[]),
    readFile(join(adminDir, 'available'), 'utf8').catch(() => ''),
  ]);
  if (status === undefined || updates.some((n) => /^\d+$/.test(n))) return undefined;
  const anyName = names.map(escapeRe).join('|');
  if (new RegExp(`^package:[ \\t]*(?:${anyName})[ \\t]*$`, 'mi').test(available)) return undefined;
  const found = new Set<string>();
  const lines: string[] = [];
  const start = new RegExp(`^package:[ \\t]*(${anyName})[ \\t]*$`, 'gmi');
  for (let m = start.exec(status); m; m = start.exec(status)) {
    // dpkg writes `Package:` and lower-case names; anything else is left to dpkg-query.
    if (!m[0].startsWith('Package:') || !names.includes(m[1]!)) return undefined;
    const from = status.lastIndexOf('\n\n', m.index) + 1;
    const end = status.indexOf('\n\n', m.index);
    const stanza = status.slice(from, end < 0 ? undefined : end);
    const version = field(stanza, 'version');
    if (!version || version.startsWith('0:') || /not-installed/.test(field(stanza, 'status') ?? '')) return undefined;
    found.add(m[1]!);
    lines.push(`${m[1]} ${version}`);
  }
  return names.every((n) => found.has(n)) ? lines : undefined;
}

/** The database directory dpkg-query uses here, or undefined when the environment moves it (`DPKG_ROOT`, `DPKG_ADMINDIR`). */
export function defaultDpkgAdminDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.DPKG_ROOT || env.DPKG_ADMINDIR ? undefined : DPKG_ADMINDIR;
}
