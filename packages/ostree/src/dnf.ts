/**
 * The dnf composer: RPM treefiles composed with `dnf --installroot` when rpm-ostree is absent.
 * fetch downloads the package closure into `cache/rpms/<arch>` (a local repo); compose installs
 * from that repo, so a compose after a fetch works offline.
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { CosaError, withPhase } from '@cosa/schema';
import { hasTool, run } from './_exec.js';
import { pinRpmdbTimes } from './_rpmdb.js';
import { INPUTHASH_KEY, type ComposeOptions, type ComposeResult, type Composer } from './composer.js';
import { postprocessTree, prepareOstreeTree } from './postprocess.js';
import { commit, initRepo, revParse, showCommit } from './repo.js';
import { dnfArgv, dnfError, installedPackages, prepareOverridesRepo, privateRpmHome, RPMDB_PATH, rpmCacheRepo, resolveRpm } from './rpm.js';
import { composerInputHash } from './inputs.js';


let cachedVersion: Promise<string> | undefined;

/** Creates the dnf composer. */
export function createDnfComposer(): Composer {
  const composer: Composer = {
    name: 'dnf',
    version() {
      cachedVersion ??= run(['dnf', '--version']).then((r) => r.stdout.split('\n')[0]!.trim()).catch((e: unknown) => {
        cachedVersion = undefined;
        throw e;
      });
      return cachedVersion;
    },
    resolve: (o) => resolveRpm(o),
    inputHash: (o) => composerInputHash(o, composer),
    fetch: (o) => fetchRpms(o),
    compose: (o) => composeWithDnf(o, composer),
  };
  return composer;
}

/**
 * Downloads the manifest's package closure into `cache/rpms/<arch>` and indexes it with
 * createrepo_c, so that a later compose can run offline.
 */
async function fetchRpms(o: ComposeOptions): Promise<void> {
  await withPhase(o.onProgress, 'fetch', async () => {
    const dest = rpmCacheRepo(o.cacheDir, o.arch);
    await mkdir(dest, { recursive: true });
    const home = await privateRpmHome(o.tmpDir);
    try {
      const pkgs = o.manifest.packages ?? [];
      if (pkgs.length) {
        // An empty installroot makes dnf download the whole closure, not only what the host lacks.
        const overridesRepo = await prepareOverridesRepo(o);
        const argv = [...dnfArgv({ ...o, installroot: path.join(home, 'root'), overridesRepo }), 'install', '--downloadonly', `--downloaddir=${dest}`, ...pkgs];
        await run(argv, { env: { HOME: home, ...(o.sourceDateEpoch !== undefined ? { SOURCE_DATE_EPOCH: String(o.sourceDateEpoch) } : {}) }, ...sigOf(o), ...(o.onProgress ? { onProgress: o.onProgress } : {}), phase: 'fetch' }).catch((e: unknown) =>
          dnfError(e, o, 'cannot download packages'),
        );
      }
      await run(['createrepo_c', '-q', '--update', dest], sigOf(o));
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
}

function sigOf(o: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return o.signal ? { signal: o.signal } : {};
}

async function composeWithDnf(o: ComposeOptions, composer: Composer): Promise<ComposeResult> {
  const stats: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await withPhase(o.onProgress, name, fn);
    } finally {
      stats[`${name}-ms`] = Math.round(performance.now() - t0);
    }
  };
  await initRepo({ path: o.repo, mode: 'bare-user' });
  const { inputHash, packages: resolved, inputs } = await timed('input-hash', () => composerInputHash(o, composer));
  if (o.parentCommit) {
    const prev = await showCommit({ repo: o.repo, rev: o.parentCommit }).catch(() => undefined);
    if (prev && prev.metadata[INPUTHASH_KEY] === inputHash) {
      o.onProgress?.({ type: 'info', message: `No apparent changes since previous commit ${prev.commit.slice(0, 12)}` });
      return { commit: prev.commit, ref: o.ref, version: prev.version ?? o.version, inputHash, packages: resolved, changed: false, stats };
    }
  }
  // The parent must be in the repo to be recorded (a fetched build's commit may not have been imported).
  const parent = o.parentCommit ? await revParse({ repo: o.repo, ref: o.parentCommit }) : undefined;
  if (!o.offline) await timed('fetch', () => fetchRpms(o));

  await mkdir(o.tmpDir, { recursive: true });
  const work = await mkdtemp(path.join(o.tmpDir, 'dnf-compose-'));
  const root = path.join(work, 'root');
  const home = await privateRpmHome(work);
  try {
    await timed('install', async () => {
      const pkgs = o.manifest.packages ?? [];
      if (pkgs.length === 0) throw new CosaError('COSA_COMPOSE_FAILED', 'the manifest lists no packages');
      const overridesRepo = await prepareOverridesRepo(o);
      const argv = [...dnfArgv({ ...o, installroot: root, offline: true, overridesRepo }), '--nogpgcheck', 'install', ...pkgs];
      await run(argv, { env: { HOME: home }, ...sigOf(o), ...(o.onProgress ? { onProgress: o.onProgress } : {}), phase: 'install' }).catch((e: unknown) =>
        dnfError(e, { ...o, offline: true }, 'dnf install failed'),
      );
    });
    const packages = await installedPackages(root, sigOf(o));
    // rpm stamps each header with the time of day: pin it, or the same packages give another commit.
    if (o.sourceDateEpoch !== undefined && (await hasTool('sqlite3'))) {
      await timed('pin-rpmdb', () => pinRpmdbTimes(path.join(root, RPMDB_PATH, 'rpmdb.sqlite'), o.sourceDateEpoch!, { tmpDir: work, ...sigOf(o) }));
    }
    // dnf's own state and the rpmdb's lock/shm files are not part of the OS.
    for (const p of ['var/cache/dnf', 'var/lib/dnf', 'var/log', `${RPMDB_PATH.slice(1)}/.rpm.lock`, 'var/cache/ldconfig']) {
      await rm(path.join(root, p), { recursive: true, force: true });
    }
    for (const f of await readdir(path.join(root, RPMDB_PATH)).catch(() => [] as string[])) {
      if (f.endsWith('-shm') || f.endsWith('-wal') || f.startsWith('__db.')) await rm(path.join(root, RPMDB_PATH, f), { force: true });
    }
    const pp = await timed('postprocess', () =>
      postprocessTree({ tree: root, manifest: o.manifest, configDir: o.configDir, ...(o.sourceDateEpoch !== undefined ? { env: { SOURCE_DATE_EPOCH: String(o.sourceDateEpoch) } } : {}), overlays: inputs.overlays.map((l) => path.join(o.configDir, 'overlay.d', l.name)), ...(o.overridesRootfs ? { overridesRootfs: o.overridesRootfs } : {}), ...sigOf(o), ...(o.onProgress ? { onProgress: o.onProgress } : {}) }),
    );
    stats['postprocess-scripts'] = pp['postprocess-scripts'];
    await timed('prepare-tree', () => prepareOstreeTree({ tree: root, ...(o.onProgress ? { onProgress: o.onProgress } : {}) }));
    const c = await timed('commit', () =>
      commit({
        repo: o.repo,
        branch: o.ref,
        tree: root,
        subject: `${o.ref} ${o.version}`,
        // rpmostree.inputhash too: cosa's meta.json `rpm-ostree-inputhash` is read from it.
        metadata: { version: o.version, [INPUTHASH_KEY]: inputHash, 'rpmostree.inputhash': inputHash, 'cosa.composer': 'dnf' },
        ...(parent ? { parent } : {}),
        ...(o.sourceDateEpoch !== undefined ? { timestamp: new Date(o.sourceDateEpoch * 1000) } : {}),
        ...sigOf(o),
      }),
    );
    return { commit: c.commit, ref: o.ref, version: o.version, inputHash, packages, changed: true, stats };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
