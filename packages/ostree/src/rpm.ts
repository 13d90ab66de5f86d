/**
 * What the two RPM composers share: the dnf invocation (private HOME whose `.rpmmacros` puts the
 * rpmdb where rpm-ostree has it), package resolution against repo metadata, and the input hash.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { CommandFailedError, CosaError, hostBasearch, stableStringify, writeFileAtomic, type Manifest } from '@cosa/schema';
import { run } from './_exec.js';
import type { ComposeOptions, ComposerName, InputHashResult, PackageInfo } from './composer.js';
import { composerInputHash, type ResolvedInputs } from './inputs.js';

/** Where the rpmdb lives in composed trees (rpm-ostree's location). */
export const RPMDB_PATH = '/usr/lib/sysimage/rpm';

/** The repo id under which the package cache filled by `fetch` is offered to dnf. */
export const CACHE_REPO_ID = 'cosa-cache';

/** Directory of downloaded RPMs (a local repo) inside the cache dir. */
export function rpmCacheRepo(cacheDir: string, arch: string): string {
  return path.join(cacheDir, 'rpms', arch);
}

/** `name-[epoch:]version-release.arch`. */
export function nevra(p: PackageInfo): string {
  const e = p.epoch && p.epoch !== '0' ? `${p.epoch}:` : '';
  return `${p.name}-${e}${p.version}${p.release ? `-${p.release}` : ''}.${p.arch}`;
}

/** Creates a private HOME whose `.rpmmacros` sets `%_dbpath` (Debian's rpm defaults to ~/.rpmdb). */
export async function privateRpmHome(tmpDir: string): Promise<string> {
  await mkdir(tmpDir, { recursive: true });
  const home = await mkdtemp(path.join(tmpDir, 'rpm-home-'));
  await writeFile(path.join(home, '.rpmmacros'), `%_dbpath ${RPMDB_PATH}\n`);
  return home;
}

/** Options of {@link dnfArgv}. */
export interface DnfArgvOptions {
  manifest: Manifest;
  configDir: string;
  installroot: string;
  cacheDir: string;
  arch: string;
  /** Use only the local package cache repo (what `fetch` downloaded). */
  offline?: boolean;
  /** The `overrides/rpm` repo ({@link prepareOverridesRepo}): enabled with the highest priority. */
  overridesRepo?: string | undefined;
}

/** The repo id of `overrides/rpm`. */
export const OVERRIDES_REPO_ID = 'cosa-overrides';


/**
 * The dnf options every call shares: installroot, repos (the manifest's repo ids from the `.repo`
 * files in configDir, or only the package cache when offline), release version, excludes, weak
 * dependencies and documentation as the manifest says.
 */
export function dnfArgv(o: DnfArgvOptions): string[] {
  const m = o.manifest;
  const argv = [
    'dnf', '-y', `--installroot=${o.installroot}`, `--releasever=${String(m.releasever ?? '1')}`,
    `--setopt=cachedir=${path.join(o.cacheDir, 'dnf')}`, '--setopt=keepcache=True',
    '--setopt=install_weak_deps=' + (m.recommends === false ? 'False' : 'True'),
    '--disablerepo=*',
    // dnf dates a local repo's cached metadata by the repo's own files, so metadata rewritten a
    // moment before (a package bumped, `cosa fetch` re-indexing its cache) can count as fresh
    // even with metadata_expire=0, and the old package set is answered. --refresh makes every call
    // compare repomd.xml first (one small read per repo).
    '--refresh',
  ];
  if (o.arch !== hostBasearch()) argv.push(`--forcearch=${o.arch}`);
  if (o.offline) {
    argv.push('--setopt=reposdir=/dev/null', `--repofrompath=${CACHE_REPO_ID},${rpmCacheRepo(o.cacheDir, o.arch)}`, `--enablerepo=${CACHE_REPO_ID}`, `--setopt=${CACHE_REPO_ID}.gpgcheck=False`, `--setopt=${CACHE_REPO_ID}.metadata_expire=0`);
  } else {
    argv.push(`--setopt=reposdir=${o.configDir}`);
    for (const r of m.repos ?? []) argv.push(`--enablerepo=${r}`);
  }
  if (o.overridesRepo) {
    // priority=1 wins over every other repo, whatever the versions (as the original's override lockfile).
    const id = OVERRIDES_REPO_ID;
    argv.push(`--repofrompath=${id},${o.overridesRepo}`, `--enablerepo=${id}`, `--setopt=${id}.gpgcheck=False`, `--setopt=${id}.priority=1`, `--setopt=${id}.metadata_expire=0`);
  }
  if (m.documentation === false) argv.push('--setopt=tsflags=nodocs');
  for (const x of m['exclude-packages'] ?? []) argv.push(`--exclude=${x}`);
  return argv;
}

/** The repos a query searches, for error messages. */
export function reposSearched(o: { manifest: Manifest; cacheDir: string; arch: string; offline?: boolean }): string {
  return o.offline ? `${CACHE_REPO_ID} (${rpmCacheRepo(o.cacheDir, o.arch)})` : (o.manifest.repos ?? []).join(', ') || '(none: the manifest lists no repos)';
}

/** Turns dnf's "no match" failures into COSA_COMPOSE_PACKAGE_NOT_FOUND naming the packages. */
export function dnfError(e: unknown, o: { manifest: Manifest; cacheDir: string; arch: string; offline?: boolean }, what: string): never {
  if (e instanceof CommandFailedError && e.code === 'COSA_EXEC_FAILED') {
    const text = e.stderr;
    const missing = [...text.matchAll(/(?:No match for argument|Unable to find a match):?\s*(.+)/g)].flatMap((m) => m[1]!.trim().split(/\s+/));
    const unknownRepo = /Unknown repo:\s*'?([^'\s]+)/.exec(text);
    if (missing.length) {
      throw new CosaError('COSA_COMPOSE_PACKAGE_NOT_FOUND', `package${missing.length > 1 ? 's' : ''} not found: ${[...new Set(missing)].join(', ')} (repos searched: ${reposSearched(o)})`, {
        cause: e,
        hint: o.offline ? 'run `cosa fetch` to download the packages' : 'check the package name and the repos in the manifest',
      });
    }
    if (unknownRepo) {
      throw new CosaError('COSA_COMPOSE_FAILED', `repo ${unknownRepo[1]} is not defined by any .repo file in the config directory`, { cause: e });
    }
    if (/Failed to download metadata|Cannot download repomd|Curl error/i.test(text)) {
      throw new CosaError('COSA_COMPOSE_MIRROR_UNREACHABLE', `cannot reach the repos (${reposSearched(o)}): ${text.trim().split('\n').slice(-3).join(' ')}`, { cause: e });
    }
    throw new CosaError('COSA_COMPOSE_FAILED', `${what}: ${text.trim().split('\n').slice(-10).join('\n')}`, { cause: e });
  }
  throw e;
}

const QF = '%{name}\\t%{epoch}\\t%{version}\\t%{release}\\t%{arch}\\t%{sourcerpm}\\t%{reponame}\\t%{location}';

function parseQuery(stdout: string): (PackageInfo & { repo: string; location: string })[] {
  const out: (PackageInfo & { repo: string; location: string })[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.split('\t');
    if (f.length < 8) continue;
    const [name, epoch, version, release, arch, source, repo, location] = f as [string, string, string, string, string, string, string, string];
    out.push({ name, version, release, arch, ...(epoch && epoch !== '0' ? { epoch } : {}), ...(source && source !== '(none)' ? { source } : {}), repo, location });
  }
  return out;
}

/**
 * Resolves the manifest's `packages` against the repo metadata (`dnf repoquery`: the named
 * packages plus their recursive requirements, newest of each) without installing anything, and
 * adds each package's checksum from the repos' primary.xml. Unknown packages →
 * COSA_COMPOSE_PACKAGE_NOT_FOUND.
 */
export async function resolveRpmPackages(o: ComposeOptions): Promise<PackageInfo[]> {
  const pkgs = o.manifest.packages ?? [];
  if (pkgs.length === 0) return [];
  // The resolution is a function of the package request and the repos' metadata: when every
  // repo's repomd.xml is unchanged, the previous answer stands and dnf (seconds) is not run.
  const key = await resolutionKey(o);
  const cacheFile = key ? path.join(o.cacheDir, 'rpm-resolve', `${key}.json`) : undefined;
  if (cacheFile) {
    const hit = await readFile(cacheFile, 'utf8').then((t) => JSON.parse(t) as PackageInfo[], () => undefined);
    if (hit) return hit;
  }
  const resolved = await resolveWithDnf(o, pkgs);
  if (cacheFile) {
    await mkdir(path.dirname(cacheFile), { recursive: true });
    await writeFileAtomic(cacheFile, JSON.stringify(resolved));
  }
  return resolved;
}

/** Parses the `[id]` sections of .repo files into `id → baseurl` (first URL). */
async function repoBaseUrls(configDir: string): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for (const f of (await readdir(configDir).catch(() => [] as string[])).filter((x) => x.endsWith('.repo')).sort()) {
    let id: string | undefined;
    for (const line of (await readFile(path.join(configDir, f), 'utf8')).split('\n')) {
      const sec = /^\s*\[([^\]]+)\]/.exec(line);
      if (sec) {
        id = sec[1]!.trim();
        out.set(id, undefined);
        continue;
      }
      const kv = /^\s*(baseurl|metalink|mirrorlist)\s*=\s*(\S+)/.exec(line);
      if (id && kv) out.set(id, kv[1] === 'baseurl' ? kv[2] : undefined);
    }
  }
  return out;
}

/**
 * A cache key for the package resolution, or undefined when a repo's metadata revision cannot be
 * read cheaply (metalink/mirrorlist repos, unreachable repos): then dnf decides.
 */
async function resolutionKey(o: ComposeOptions): Promise<string | undefined> {
  const m = o.manifest;
  const h = createHash('sha256');
  h.update(stableStringify({ v: 1, packages: m.packages, exclude: m['exclude-packages'] ?? [], repos: m.repos ?? [], releasever: m.releasever ?? null, recommends: m.recommends ?? null, arch: o.arch, offline: !!o.offline }));
  const urls: [string, string | undefined][] = o.offline
    ? [[CACHE_REPO_ID, `file://${rpmCacheRepo(o.cacheDir, o.arch)}`]]
    : await repoBaseUrls(o.configDir).then((all) => (m.repos ?? []).map((id) => [id, all.get(id)] as [string, string | undefined]));
  if (!o.offline) {
    // includepkgs/exclude/priority in .repo files change the answer too.
    for (const f of (await readdir(o.configDir).catch(() => [] as string[])).filter((x) => x.endsWith('.repo')).sort()) {
      h.update(`repofile ${f} ${createHash('sha256').update(await readFile(path.join(o.configDir, f))).digest('hex')}\n`);
    }
  }
  for (const f of await overrideRpms(o)) {
    const st = await lstat(path.join(o.overridesRpm!, f));
    h.update(`override ${f} ${st.size} ${st.mtimeMs} ${st.ino}\n`);
  }
  for (const [id, url0] of urls) {
    if (!url0) return undefined;
    const url = url0.replaceAll('$releasever', String(m.releasever ?? '1')).replaceAll('$basearch', o.arch).replace(/\/+$/, '');
    let repomd: string | undefined;
    try {
      if (url.startsWith('file://')) repomd = await readFile(path.join(new URL(url).pathname, 'repodata', 'repomd.xml'), 'utf8');
      else if (/^https?:\/\//.test(url)) {
        const r = await fetch(`${url}/repodata/repomd.xml`, { signal: AbortSignal.timeout(5000) });
        if (r.ok) repomd = await r.text();
      }
    } catch {
      repomd = undefined;
    }
    if (repomd === undefined) return undefined;
    h.update(`${id} ${url} ${createHash('sha256').update(repomd).digest('hex')}\n`);
  }
  return h.digest('hex');
}

async function resolveWithDnf(o: ComposeOptions, pkgs: string[]): Promise<PackageInfo[]> {
  const sig = o.signal ? { signal: o.signal } : {};
  const home = await privateRpmHome(o.tmpDir);
  const root = path.join(home, 'root');
  try {
    const overridesRepo = await prepareOverridesRepo(o);
    const base = [...dnfArgv({ ...o, installroot: root, overridesRepo }), '-q'];
    const env = { HOME: home };
    const q = (extra: string[]) =>
      run([...base, 'repoquery', '--latest-limit=1', `--queryformat=${QF}\\n`, ...extra, ...pkgs], { env, ...sig, ...(o.onProgress ? { onProgress: o.onProgress } : {}), streamLines: false, phase: 'resolve' }).catch((e: unknown) =>
        dnfError(e, o, 'cannot resolve the package set'),
      );
    const [named, deps] = await Promise.all([q([]), q(['--resolve', '--recursive', '--requires'])]);
    const found = parseQuery(named.stdout);
    const missing = pkgs.filter((p) => /^[A-Za-z0-9_.+-]+$/.test(p) && !found.some((f) => f.name === p));
    if (missing.length) {
      throw new CosaError('COSA_COMPOSE_PACKAGE_NOT_FOUND', `package${missing.length > 1 ? 's' : ''} not found: ${missing.join(', ')} (repos searched: ${reposSearched(o)})`, {
        hint: o.offline ? 'run `cosa fetch` to download the packages' : 'check the package name and the repos in the manifest',
      });
    }
    const all = new Map<string, PackageInfo & { repo: string; location: string }>();
    const closure = [...found, ...parseQuery(deps.stdout)];
    for (const p of closure) all.set(nevra(p), p);
    if (overridesRepo) {
      // repoquery ignores repo priorities: an override replaces the package of the same name and
      // arch whatever the versions, as the install (which honours priority=1) will.
      const files = (await overrideRpms(o)).map((f) => path.join(overridesRepo, f));
      const qf = `%{NAME}\\t%|EPOCH?{%{EPOCH}}:{0}|\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t${OVERRIDES_REPO_ID}\\t\\n`;
      const ov = parseQuery((await run(['rpm', '-qp', '--nosignature', '--nodigest', '--queryformat', qf, ...files], { env, ...sig, streamLines: false, phase: 'resolve' })).stdout);
      for (const p of ov) {
        for (const [k, q] of all) if (q.name === p.name && q.arch === p.arch) all.delete(k);
        if (closure.some((q) => q.name === p.name)) all.set(nevra(p), p);
      }
    }
    const sums = await repoChecksums(path.join(o.cacheDir, 'dnf'), o.offline ? [CACHE_REPO_ID, OVERRIDES_REPO_ID] : [...new Set([...all.values()].map((p) => p.repo))]);
    return [...all.values()]
      .map(({ repo, location, ...p }) => {
        const c = sums.get(`${repo}\0${location}`);
        return c ? { ...p, checksum: c } : p;
      })
      .sort((a, b) => nevra(a).localeCompare(nevra(b)));
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/**
 * Reads `location → checksum` from the primary.xml of each repo in dnf's cache
 * (`<cachedir>/<repoid>-<hash>/repodata/*-primary.xml.{gz,zst,xz}`; dnf's repo names may differ from ids,
 * so a repo matches by directory prefix).
 */
export async function repoChecksums(dnfCache: string, repos: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let dirs: string[] = [];
  try {
    dirs = await readdir(dnfCache);
  } catch {
    return out;
  }
  for (const repo of repos) {
    for (const d of dirs.filter((x) => x.startsWith(`${repo}-`))) {
      const repodata = path.join(dnfCache, d, 'repodata');
      const primary = (await readdir(repodata).catch(() => [] as string[])).find((f) => /primary\.xml(\.gz|\.zst|\.xz)?$/.test(f));
      if (!primary) continue;
      const xml = await readCompressed(path.join(repodata, primary));
      for (const m of xml.matchAll(/<package\b[\s\S]*?<\/package>/g)) {
        const c = /<checksum type="([^"]+)"[^>]*>([0-9a-f]+)<\/checksum>/.exec(m[0]);
        const l = /<location\b[^>]*href="([^"]+)"/.exec(m[0]);
        if (c && l) out.set(`${repo}\0${l[1]}`, `${c[1]}:${c[2]}`);
      }
    }
  }
  return out;
}

async function readCompressed(file: string): Promise<string> {
  if (file.endsWith('.gz')) {
    const chunks: Buffer[] = [];
    for await (const c of createReadStream(file).pipe(createGunzip())) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  if (file.endsWith('.zst')) return (await run(['zstd', '-dc', file])).stdout;
  if (file.endsWith('.xz')) return (await run(['xz', '-dc', file])).stdout;
  return readFile(file, 'utf8');
}

/**
 * The input hash of an RPM compose: {@link describeInputs} for the composer (the package set
 * from {@link resolveRpmPackages}), hashed. Composes nothing.
 */
export async function rpmInputHash(o: ComposeOptions, composer: { name: string; version: string }): Promise<InputHashResult> {
  return composerInputHash(o, { name: composer.name as ComposerName, version: () => Promise.resolve(composer.version), resolve: (x) => resolveRpm(x) });
}

/** What the RPM composers add to the inputs description: the resolved package set. */
export async function resolveRpm(o: ComposeOptions): Promise<ResolvedInputs> {
  return { packages: await resolveRpmPackages(o) };
}

/** The RPMs of `overrides/rpm` (sorted names), or none. */
async function overrideRpms(o: { overridesRpm?: string | undefined }): Promise<string[]> {
  if (!o.overridesRpm) return [];
  return (await readdir(o.overridesRpm).catch(() => [] as string[])).filter((f) => f.endsWith('.rpm')).sort();
}

/**
 * Makes `overrides/rpm` a repo dnf can use (in cache/, leaving overrides/ as the user wrote it):
 * the RPMs hard-linked (or copied) into `cache/overrides-rpm/` and indexed. Returns its path, or
 * undefined when there are no override RPMs.
 */
export async function prepareOverridesRepo(o: { overridesRpm?: string | undefined; cacheDir: string; signal?: AbortSignal | undefined }): Promise<string | undefined> {
  const rpms = await overrideRpms(o);
  if (rpms.length === 0 || !o.overridesRpm) return undefined;
  const dir = path.join(o.cacheDir, 'overrides-rpm');
  const stampOf = async () => (await Promise.all(rpms.map(async (f) => { const st = await lstat(path.join(o.overridesRpm!, f)); return `${f} ${st.size} ${st.mtimeMs} ${st.ino}`; }))).join('\n');
  const stamp = await stampOf();
  if ((await readFile(path.join(dir, '.cosa-stamp'), 'utf8').catch(() => '')) === stamp) return dir;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const f of rpms) await link(path.join(o.overridesRpm, f), path.join(dir, f)).catch(() => copyFile(path.join(o.overridesRpm!, f), path.join(dir, f)));
  await run(['createrepo_c', '-q', dir], o.signal ? { signal: o.signal } : {});
  await writeFile(path.join(dir, '.cosa-stamp'), stamp);
  return dir;
}

/** Reads the installed package set from a tree's rpmdb. */
export async function installedPackages(tree: string, o: { signal?: AbortSignal } = {}): Promise<PackageInfo[]> {
  const r = await run(['rpm', `--root=${tree}`, `--dbpath=${RPMDB_PATH}`, '-qa', '--qf', '%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t%{SHA256HEADER}\\n'], {
    ...(o.signal ? { signal: o.signal } : {}),
  });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name = '', epoch, version = '', release, arch = '', source] = l.split('\t');
      return { name, version, arch, ...(release ? { release } : {}), ...(epoch && epoch !== '(none)' && epoch !== '0' ? { epoch } : {}), ...(source && source !== '(none)' ? { source } : {}) };
    })
    .sort((a, b) => nevra(a).localeCompare(nevra(b)));
}
