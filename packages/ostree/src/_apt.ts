/**
 * A private apt (config, lists, archives) under cache/, never touching the host's apt state:
 * `apt-get update` for the sources of a Debian manifest, resolution of the package set without
 * building a tree, and downloads into a shared .deb cache that mmdebstrap reuses.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CommandFailedError, CosaError, type OnProgress } from '@cosa/schema';
import { retry, retryWarning } from '@cosa/schema/internal';
import { run } from './_exec.js';

/** One apt source line (`deb [opts] uri suite components…`). */
export interface AptSource {
  uri: string;
  suite: string;
  components: string[];
  /** `[signed-by=…]`, `[trusted=yes]` options. */
  options: Record<string, string>;
}

/** Renders a source as a one-line `deb` entry. */
export function sourceLine(s: AptSource): string {
  const opts = Object.entries(s.options)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `deb ${opts ? `[${opts}] ` : ''}${s.uri} ${s.suite} ${s.components.join(' ')}`;
}

/** The private apt directories for one set of sources. */
export interface AptEnv {
  /** Root of the private apt (Dir). */
  root: string;
  /** The apt.conf to pass as APT_CONFIG. */
  config: string;
  /** Where apt keeps the downloaded indexes. */
  lists: string;
  /** Shared .deb cache (Dir::Cache::archives). */
  debs: string;
  sources: AptSource[];
  arch: string;
}

/** Options shared by the apt helpers. */
export interface AptRunOptions {
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

/** Maps an OSTree/rpm basearch to the dpkg architecture name. */
export function dpkgArch(basearch: string): string {
  const map: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', ppc64le: 'ppc64el', s390x: 's390x', riscv64: 'riscv64', i686: 'i386' };
  return map[basearch] ?? basearch;
}

function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Creates (idempotently) a private apt for `sources` under `<cacheDir>/debian/apt/<digest>`, with
 * an empty dpkg status so resolution answers "what a fresh root would get".
 */
export async function aptEnv(cacheDir: string, sources: AptSource[], arch: string): Promise<AptEnv> {
  const lines = sources.map(sourceLine);
  const root = join(cacheDir, 'debian', 'apt', sha256(`${arch}\n${lines.join('\n')}`).slice(0, 16));
  const debs = join(cacheDir, 'debian', 'debs');
  const lists = join(root, 'var/lib/apt/lists');
  for (const d of ['etc/apt/apt.conf.d', 'etc/apt/preferences.d', 'etc/apt/sources.list.d', 'var/lib/dpkg', 'var/cache/apt']) {
    await mkdir(join(root, d), { recursive: true });
  }
  await mkdir(join(lists, 'partial'), { recursive: true });
  await mkdir(join(debs, 'partial'), { recursive: true });
  const config = join(root, 'apt.conf');
  const conf = [
    `APT::Architecture "${arch}";`,
    `APT::Architectures "${arch}";`,
    `Dir "${root}/";`,
    `Dir::State::status "${root}/var/lib/dpkg/status";`,
    `Dir::Cache::archives "${debs}/";`,
    'Dir::Etc::Trusted "/etc/apt/trusted.gpg";',
    'Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d/";',
    'Debug::NoLocking "true";',
    'APT::Install-Recommends "false";',
    'APT::Install-Suggests "false";',
    'Acquire::Languages "none";',
    'Acquire::Retries "2";',
    'Acquire::http::Timeout "20";',
    'APT::Sandbox::User "root";',
    '',
  ].join('\n');
  await writeIfChanged(config, conf);
  await writeIfChanged(join(root, 'etc/apt/sources.list'), `${lines.join('\n')}\n`);
  await writeIfChanged(join(root, 'var/lib/dpkg/status'), '');
  return { root, config, lists, debs, sources, arch };
}

async function writeIfChanged(path: string, text: string): Promise<void> {
  const old = await readFile(path, 'utf8').catch(() => undefined);
  if (old !== text) await writeFile(path, text);
}

/** The Release/InRelease files apt keeps for the sources (empty before the first update). */
export async function releaseFiles(env: AptEnv): Promise<string[]> {
  const names = await readdir(env.lists).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('_InRelease') || n.endsWith('_Release')).sort();
}

/** The Packages indexes apt keeps for the sources. */
export async function packagesFiles(env: AptEnv): Promise<string[]> {
  const names = await readdir(env.lists).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('_Packages')).sort();
}

/**
 * A digest over the Release files and Packages indexes' names and sizes: it changes whenever the
 * archive publishes a new Release, and costs a few milliseconds.
 */
export async function metadataDigest(env: AptEnv): Promise<string | undefined> {
  const rel = await releaseFiles(env);
  if (rel.length === 0) return undefined;
  const h = createHash('sha256');
  for (const n of rel) h.update(`${n}\0`).update(await readFile(join(env.lists, n)));
  for (const n of await packagesFiles(env)) h.update(`${n}\0${(await stat(join(env.lists, n))).size}\0`);
  return h.digest('hex');
}

const unreachable = /Could not connect|Failed to fetch|Temporary failure resolving|Could not resolve|Connection failed|Unable to connect|Connection refused|No route to host|Network is unreachable|timed out/i;

/**
 * Refreshes the indexes (`apt-get update`). A network failure is retried (apt retries each file,
 * then the whole update runs up to `attempts` times) and ends as COSA_COMPOSE_MIRROR_UNREACHABLE.
 */
export async function aptUpdate(env: AptEnv, o: AptRunOptions & { attempts?: number; retryDelayMs?: number } = {}): Promise<void> {
  const attempts = o.attempts ?? 3;
  const failed = (e: unknown): e is CommandFailedError => e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED';
  try {
    await retry(
      () =>
        run(['apt-get', 'update', '-q', '-o', 'APT::Update::Error-Mode=any'], {
          env: { APT_CONFIG: env.config, DEBIAN_FRONTEND: 'noninteractive' },
          signal: o.signal,
          onProgress: o.onProgress,
          phase: 'apt-update',
          timeoutMs: 10 * 60_000,
        }),
      {
        attempts,
        // Only an unreachable mirror is worth another try; a broken source list stays broken.
        retryIf: (e) => failed(e) && unreachable.test(e.stderr),
        delayMs: (n) => (o.retryDelayMs ?? 1000) * n,
        ...(o.signal ? { signal: o.signal } : {}),
        abortError: (cause) => (cause instanceof CosaError ? cause : new CosaError('COSA_EXEC_ABORTED', 'apt-get update aborted', { cause })),
        onRetry: retryWarning(o.onProgress, 'apt-get update'),
      },
    );
  } catch (e) {
    if (!failed(e)) throw e;
    const uris = [...new Set(env.sources.map((s) => s.uri))].join(', ');
    if (unreachable.test(e.stderr)) {
      throw new CosaError('COSA_COMPOSE_MIRROR_UNREACHABLE', `Debian mirror unreachable after ${attempts} attempts: ${uris}\n${tail(e.stderr)}`, {
        hint: 'check the network and the mirror in the manifest (debian.mirror), or run `cosa fetch` while online',
        cause: e,
      });
    }
    throw new CosaError('COSA_COMPOSE_FAILED', `apt-get update failed for ${uris}\n${tail(e.stderr)}`, { cause: e });
  }
}

function tail(s: string, n = 12): string {
  return s.trim().split('\n').slice(-n).join('\n');
}

/** A package as apt resolved it: name, full Debian version, arch, the .deb file name and its checksum. */
export interface ResolvedDeb {
  name: string;
  version: string;
  arch: string;
  file: string;
  size: number;
  checksum: string;
}

/**
 * The names mmdebstrap installs besides the requested ones: every `Essential: yes` package, with
 * `level: 'required'` (minbase and up) also every `Priority: required` one, plus `apt`.
 */
export async function minbaseNames(env: AptEnv, level: 'essential' | 'required' = 'required'): Promise<string[]> {
  const names = new Set<string>(['apt']);
  for (const f of await packagesFiles(env)) {
    let pkg = '';
    let take = false;
    const rl = createInterface({ input: createReadStream(join(env.lists, f)), crlfDelay: Infinity });
    for await (const line of rl) {
      if (line === '') {
        if (take && pkg) names.add(pkg);
        pkg = '';
        take = false;
      } else if (line.startsWith('Package: ')) pkg = line.slice(9).trim();
      else if (line === 'Essential: yes' || (level === 'required' && line === 'Priority: required')) take = true;
    }
    if (take && pkg) names.add(pkg);
  }
  return [...names].sort();
}

/**
 * Resolves `names` against the indexes as a fresh root would (empty dpkg status), without
 * building a tree: `apt-get install --print-uris` into an empty archives dir lists every package
 * to fetch. An unknown name becomes COSA_COMPOSE_PACKAGE_NOT_FOUND naming the sources searched.
 */
export async function aptResolve(env: AptEnv, names: readonly string[], o: AptRunOptions = {}): Promise<ResolvedDeb[]> {
  const empty = join(env.root, 'resolve-archives');
  await rm(empty, { recursive: true, force: true });
  await mkdir(join(empty, 'partial'), { recursive: true });
  let out: string;
  try {
    const r = await run(['apt-get', '-qq', '--print-uris', '-o', `Dir::Cache::archives=${empty}/`, 'install', '--', ...names], {
      env: { APT_CONFIG: env.config, DEBIAN_FRONTEND: 'noninteractive' },
      signal: o.signal,
      timeoutMs: 5 * 60_000,
    });
    out = r.stdout;
  } catch (e) {
    if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
      const missing = [...e.stderr.matchAll(/Unable to locate package (\S+)|Package '?([^' ]+)'? has no installation candidate|Couldn't find any package by \S+ '([^']+)'/g)]
        .map((m) => m[1] ?? m[2] ?? m[3])
        .filter((x): x is string => !!x);
      const where = env.sources.map((s) => `${s.uri} ${s.suite}`).join(', ');
      if (missing.length > 0) {
        throw new CosaError('COSA_COMPOSE_PACKAGE_NOT_FOUND', `package not found: ${[...new Set(missing)].join(', ')} (searched ${where})`, {
          hint: 'check the package name in manifest.yaml and the suite/components/mirror in its debian: section',
          cause: e,
        });
      }
      throw new CosaError('COSA_COMPOSE_FAILED', `apt could not resolve the package set from ${where}:\n${tail(e.stderr)}`, { cause: e });
    }
    throw e;
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
  const debs: ResolvedDeb[] = [];
  for (const line of out.split('\n')) {
    // `'URI' FILE SIZE HASH`; the hash is empty for archives whose index apt has no MD5 for.
    const m = /^'([^']+)' (\S+) (\d+) ?(\S*)/.exec(line);
    if (!m) continue;
    const file = m[2] ?? '';
    const [name = '', ver = '', archDeb = ''] = file.split('_');
    debs.push({ name, version: decodeURIComponent(ver), arch: archDeb.replace(/\.deb$/, ''), file, size: Number(m[3]), checksum: m[4] ?? '' });
  }
  return debs.sort((a, b) => a.name.localeCompare(b.name));
}

/** Downloads the packages `names` resolve to into the shared .deb cache (already cached ones are kept). */
export async function aptDownload(env: AptEnv, names: readonly string[], o: AptRunOptions = {}): Promise<void> {
  try {
    await run(['apt-get', '-y', '-q', '--download-only', 'install', '--', ...names], {
      env: { APT_CONFIG: env.config, DEBIAN_FRONTEND: 'noninteractive' },
      signal: o.signal,
      onProgress: o.onProgress,
      phase: 'download',
      timeoutMs: 30 * 60_000,
    });
  } catch (e) {
    if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED' && unreachable.test(e.stderr)) {
      throw new CosaError('COSA_COMPOSE_MIRROR_UNREACHABLE', `could not download packages from ${[...new Set(env.sources.map((s) => s.uri))].join(', ')}\n${tail(e.stderr)}`, { cause: e });
    }
    throw e;
  }
}

/** True when every resolved .deb is in the cache with its size. */
export async function allCached(env: AptEnv, debs: readonly ResolvedDeb[]): Promise<boolean> {
  for (const d of debs) {
    const st = await stat(join(env.debs, d.file)).catch(() => undefined);
    if (!st || st.size !== d.size) return false;
  }
  return true;
}
