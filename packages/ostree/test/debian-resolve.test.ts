import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest, ProgressEvent } from '@cosa/schema';
import { createDebianComposer } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';

// A tiny Debian archive built inside the test (dpkg-deb + dpkg-scanpackages), served over http
// on 127.0.0.1 (apt reads file: archives in place, so only http shows cached metadata at work).
let root: string;
let repo: string;
let server: Server;
let url: string;

async function buildDeb(name: string, version: string, depends?: string): Promise<void> {
  const d = join(root, 'build', `${name}_${version}`);
  await mkdir(join(d, 'DEBIAN'), { recursive: true });
  await mkdir(join(d, 'usr/share', name), { recursive: true });
  await writeFile(join(d, 'usr/share', name, 'README'), `${name} ${version}\n`);
  await writeFile(
    join(d, 'DEBIAN/control'),
    [`Package: ${name}`, `Version: ${version}`, 'Architecture: all', 'Maintainer: cosa tests <cosa@example.invalid>', ...(depends ? [`Depends: ${depends}`] : []), `Description: ${name} for cosa tests`, ''].join('\n'),
  );
  await chmod(join(d, 'DEBIAN'), 0o755);
  await mkdir(join(repo, 'pool'), { recursive: true });
  await run(['dpkg-deb', '--root-owner-group', '-Zgzip', '--build', d, join(repo, 'pool', `${name}_${version}_all.deb`)]);
}

/** Writes dists/stable/{Release, main/binary-amd64/Packages} for whatever is in pool/. */
async function index(): Promise<void> {
  const bin = join(repo, 'dists/stable/main/binary-amd64');
  await mkdir(bin, { recursive: true });
  const pk = (await run(['dpkg-scanpackages', '--multiversion', 'pool', '/dev/null'], { cwd: repo })).stdout;
  const text = `${pk.trim()}\n`;
  await writeFile(join(bin, 'Packages'), text);
  const sha = createHash('sha256').update(text).digest('hex');
  const release = [
    'Origin: cosa-test',
    'Suite: stable',
    'Codename: stable',
    `Date: ${new Date().toUTCString()}`,
    'Architectures: amd64',
    'Components: main',
    'SHA256:',
    ` ${sha} ${Buffer.byteLength(text)} main/binary-amd64/Packages`,
    '',
  ].join('\n');
  await writeFile(join(repo, 'dists/stable/Release'), release);
}

function manifest(extra: Partial<Manifest> = {}, mirror = url): Manifest {
  const debian = { suite: 'stable', mirror, 'extra-suites': [], variant: 'custom', trusted: true };
  return { ref: 'test/x86_64/stable', packages: ['cosa-app'], debian, ...extra };
}

function opts(m: Manifest, cacheDir: string, events?: ProgressEvent[]) {
  return {
    manifest: m,
    configDir: root,
    files: [],
    cacheDir,
    tmpDir: join(root, 'tmp'),
    repo: join(root, 'repo'),
    arch: 'x86_64',
    version: 't.0',
    ref: 'test/x86_64/stable',
    ...(events ? { onProgress: (e: ProgressEvent) => events.push(e) } : {}),
  };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cosa-deb-resolve-'));
  repo = join(root, 'archive');
  await buildDeb('cosa-lib', '1.0-1');
  await buildDeb('cosa-app', '1.0-1', 'cosa-lib (>= 1.0)');
  await index();
  server = createHttpServer((req, res) => {
    const path = join(repo, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/\.\.+/g, ''));
    const s = createReadStream(path);
    s.on('error', () => {
      res.statusCode = 404;
      res.end();
    });
    s.on('open', () => s.pipe(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}, 60_000);

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(root, { recursive: true, force: true });
});

describe('Debian composer: input hash and fetch', () => {
  it('resolves the package set with its dependencies, and the hash is stable across two runs', async () => {
    const cache = join(root, 'cache-stable');
    const a = await createDebianComposer().inputHash(opts(manifest(), cache));
    expect(a.packages.map((p) => `${p.name}=${p.version}`)).toEqual(['cosa-app=1.0-1', 'cosa-lib=1.0-1']);
    const b = await createDebianComposer().inputHash(opts(manifest(), cache));
    expect(b.inputHash).toBe(a.inputHash);
    // Another cache (metadata downloaded afresh) gives the same answer.
    const c = await createDebianComposer().inputHash(opts(manifest(), join(root, 'cache-other')));
    expect(c.inputHash).toBe(a.inputHash);
  });

  it('answers from cached metadata in well under a second without refreshing it', async () => {
    const cache = join(root, 'cache-noop');
    const composer = createDebianComposer();
    await composer.inputHash(opts(manifest(), cache));
    const events: ProgressEvent[] = [];
    await createDebianComposer().inputHash(opts(manifest(), cache, events));
    expect(events.some((e) => e.type === 'command' && e.argv.includes('update'))).toBe(false);
  });

  it('changes when a dependency gets a new version, once fetch refreshed the metadata', async () => {
    const cache = join(root, 'cache-bump');
    const composer = createDebianComposer();
    const before = await composer.inputHash(opts(manifest(), cache));
    await buildDeb('cosa-lib', '1.1-1');
    await index();
    try {
      // A build never refreshes metadata by itself: same answer until `fetch`.
      expect((await composer.inputHash(opts(manifest(), cache))).inputHash).toBe(before.inputHash);
      await composer.fetch(opts(manifest(), cache));
      const after = await composer.inputHash(opts(manifest(), cache));
      expect(after.packages.find((p) => p.name === 'cosa-lib')?.version).toBe('1.1-1');
      expect(after.inputHash).not.toBe(before.inputHash);
      // fetch put the resolved packages in cache/ for an offline build.
      expect((await readdir(join(cache, 'debian/debs'))).filter((n) => n.endsWith('.deb')).sort()).toEqual(['cosa-app_1.0-1_all.deb', 'cosa-lib_1.1-1_all.deb']);
    } finally {
      await rm(join(repo, 'pool', 'cosa-lib_1.1-1_all.deb'));
      await index();
    }
  });

  it('changes when a manifest line changes', async () => {
    const cache = join(root, 'cache-manifest');
    const composer = createDebianComposer();
    const a = await composer.inputHash(opts(manifest(), cache));
    const b = await composer.inputHash(opts(manifest({ debian: { ...manifest().debian!, hostname: 'other' } }), cache));
    expect(b.inputHash).not.toBe(a.inputHash);
  });

  it('names an unknown package and the archive it searched', async () => {
    const err = await createDebianComposer()
      .inputHash(opts(manifest({ packages: ['cosa-app', 'no-such-package-xyz'] }), join(root, 'cache-unknown')))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_COMPOSE_PACKAGE_NOT_FOUND' });
    expect((err as Error).message).toContain('no-such-package-xyz');
    expect((err as Error).message).toContain(`${url} stable`);
  });

  it('retries an unreachable mirror, then reports it', async () => {
    // A port that was just free: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    const events: ProgressEvent[] = [];
    const err = await createDebianComposer({ updateAttempts: 2 })
      .inputHash(opts(manifest({}, `http://127.0.0.1:${port}/debian`), join(root, 'cache-unreachable'), events))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_COMPOSE_MIRROR_UNREACHABLE' });
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect(events.filter((e) => e.type === 'command' && e.argv.includes('update'))).toHaveLength(2);
  }, 60_000);

  it('trusts unsigned file: archives', async () => {
    const r = await createDebianComposer().inputHash(opts(manifest({}, `file://${repo}`), join(root, 'cache-file')));
    expect(r.packages.map((p) => p.name)).toEqual(['cosa-app', 'cosa-lib']);
  });

  it('refuses to work offline without cached metadata', async () => {
    const err = await createDebianComposer()
      .inputHash({ ...opts(manifest(), join(root, 'cache-offline')), offline: true })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_COMPOSE_FAILED' });
    expect((err as { hint?: string }).hint).toContain('cosa fetch');
  });

  it('refuses an unknown debian.initramfs-modules, naming the key, before touching the cache', async () => {
    const m = manifest();
    const cache = join(root, 'cache-initramfs-key');
    const err = await createDebianComposer()
      .inputHash(opts({ ...m, debian: { ...m.debian!, 'initramfs-modules': 'all' } as Manifest['debian'] }, cache))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_SCHEMA_INVALID' });
    expect((err as Error).message).toContain('debian.initramfs-modules');
    expect(await readdir(cache).catch(() => 'absent')).toBe('absent');
    // The two accepted values pass the check, and the choice is part of the input hash.
    const hashes = [];
    for (const v of ['targeted', 'most']) {
      hashes.push((await createDebianComposer().inputHash(opts({ ...m, debian: { ...m.debian!, 'initramfs-modules': v } as Manifest['debian'] }, cache))).inputHash);
    }
    expect(hashes[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(hashes[1]).not.toBe(hashes[0]);
  });

  it('keeps its apt state under cache/ and leaves the host apt alone', async () => {
    const cache = join(root, 'cache-private');
    const hostLists = await readdir('/var/lib/apt/lists').catch(() => [] as string[]);
    await createDebianComposer().inputHash(opts(manifest(), cache));
    const conf = await readFile(join(cache, 'debian/apt', (await readdir(join(cache, 'debian/apt')))[0]!, 'apt.conf'), 'utf8');
    expect(conf).toContain(`Dir "${cache}/debian/apt/`);
    expect((await readdir('/var/lib/apt/lists').catch(() => [] as string[])).some((n) => n.includes('cosa-deb-resolve'))).toBe(false);
    expect(hostLists.some((n) => n.includes('127.0.0.1'))).toBe(false);
  });
});
