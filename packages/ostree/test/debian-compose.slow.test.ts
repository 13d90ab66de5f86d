/**
 * Slow: composes the bundled Debian example with mmdebstrap (minutes when cold). The package,
 * metadata, base-tree and initramfs caches live in $COSA_TEST_CACHE (default: a fixed directory
 * under the system temp dir) so reruns on one machine take seconds; CI starts cold.
 */
import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestSchema, parseYamlText, validate, type Manifest } from '@cosa/schema';
import { createDebianComposer } from '@cosa/ostree';
import { run } from '@cosa/ostree/internal';
import { testWorkdirCache } from '@cosa/test-utils';

const example = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/debian');
const cacheDir = testWorkdirCache();
const ref = 'cosa-debian/x86_64/stable';
let work: string;
let manifest: Manifest;

function opts(over: { repo?: string; manifest?: Manifest; version?: string } = {}) {
  return {
    manifest: over.manifest ?? manifest,
    configDir: example,
    files: [],
    cacheDir,
    tmpDir: join(work, 'tmp'),
    repo: over.repo ?? join(work, 'repo'),
    arch: 'x86_64',
    version: over.version ?? '12.0',
    ref,
  };
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined)) !== undefined;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cosa-deb-compose-'));
  manifest = validate(manifestSchema, parseYamlText(await readFile(join(example, 'manifest.yaml'), 'utf8'), 'manifest.yaml'), 'manifest.yaml');
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('Debian composer: the bundled example', () => {
  let first: Awaited<ReturnType<ReturnType<typeof createDebianComposer>['compose']>>;

  it('composes a commit whose checkout has the bootable OSTree layout', async () => {
    first = await createDebianComposer().compose(opts());
    expect(first.commit).toMatch(/^[0-9a-f]{64}$/);
    expect(first.changed).toBe(true);
    expect(first.packages.map((p) => p.name)).toEqual(expect.arrayContaining(['linux-image-amd64', 'systemd-sysv', 'ostree-boot', 'initramfs-tools']));
    expect((await run(['ostree', `--repo=${join(work, 'repo')}`, 'rev-parse', ref])).stdout.trim()).toBe(first.commit);
    const meta = (await run(['ostree', `--repo=${join(work, 'repo')}`, 'show', '--print-metadata-key=version', first.commit])).stdout.trim();
    expect(meta).toBe("'12.0'");

    const co = join(work, 'checkout');
    await run(['ostree', `--repo=${join(work, 'repo')}`, 'checkout', '-U', '-H', first.commit, co]);
    const kvers = await readdir(join(co, 'usr/lib/modules'));
    expect(kvers).toHaveLength(1);
    const kdir = join(co, 'usr/lib/modules', kvers[0]!);
    expect(await exists(join(kdir, 'vmlinuz'))).toBe(true);
    expect(await exists(join(kdir, 'initramfs.img'))).toBe(true);
    expect(await readdir(join(co, 'boot'))).toEqual([]);
    expect(await exists(join(co, 'etc'))).toBe(false);
    expect(await readFile(join(co, 'usr/etc/fstab'), 'utf8')).toContain('LABEL=boot /boot ext4 defaults,nofail,x-systemd.automount');
    expect((await readFile(join(co, 'usr/etc/hostname'), 'utf8')).trim()).toBe('cosa-debian');
    expect(await readlink(join(co, 'usr/etc/systemd/system/systemd-firstboot.service'))).toBe('/dev/null');
    expect(await readFile(join(co, 'usr/etc/shadow'), 'utf8')).toMatch(/^root::/m);
    expect(await readdir(join(co, 'var'))).toEqual([]);
    expect(await readdir(join(co, 'dev'))).toEqual([]);
    expect(await exists(join(co, 'usr/share/factory/var/lib/dpkg/status'))).toBe(true);
    // One generated tmpfiles.d file for /var, no line for a path the tree's own files create.
    expect((await readdir(join(co, 'usr/lib/tmpfiles.d'))).filter((n) => n.startsWith('cosa-'))).toEqual(['cosa-ostree.conf']);
    const tmpfiles = await readFile(join(co, 'usr/lib/tmpfiles.d/cosa-ostree.conf'), 'utf8');
    expect(tmpfiles).toContain('C /var/lib/dpkg - - - - /usr/share/factory/var/lib/dpkg');
    expect(tmpfiles).not.toMatch(/^\S+ \/var\/(lib|log|cache|spool|run|lock|lib\/systemd) /m);
    for (const [link, target] of [
      ['home', 'var/home'],
      ['root', 'var/roothome'],
      ['opt', 'var/opt'],
      ['srv', 'var/srv'],
      ['mnt', 'var/mnt'],
      ['media', 'run/media'],
      ['usr/local', '../var/usrlocal'],
      ['ostree', 'sysroot/ostree'],
    ] as const) {
      expect(await readlink(join(co, link))).toBe(target);
    }
    expect(await exists(join(co, 'sysroot'))).toBe(true);
    const listing = (await run(['lsinitramfs', join(kdir, 'initramfs.img')], { timeoutMs: 120_000 })).stdout.split('\n');
    expect(listing).toContain('usr/lib/ostree/ostree-prepare-root');
    expect(listing).toContain('scripts/local-bottom/ostree');
    // cosa's init-top script (preloads the rootfstype= module) runs before udev starts.
    expect(listing).toContain('scripts/init-top/cosa-rootfs');
    const unpacked = join(work, 'tmp', 'initramfs-unpacked');
    await run(['unmkinitramfs', join(kdir, 'initramfs.img'), unpacked], { timeoutMs: 120_000 });
    const order = (await readFile(join(unpacked, 'scripts/init-top/ORDER'), 'utf8')).split('\n').filter((l) => l.startsWith('/scripts/')).map((l) => l.split(' ')[0]);
    expect(order.indexOf('/scripts/init-top/cosa-rootfs')).toBeGreaterThan(order.indexOf('/scripts/init-top/blacklist'));
    expect(order.indexOf('/scripts/init-top/cosa-rootfs')).toBeLessThan(order.indexOf('/scripts/init-top/udev'));
    await rm(unpacked, { recursive: true, force: true });
    // The targeted module set (debian.initramfs-modules default): virtio and the root file
    // systems, not MODULES=most's every storage and network driver.
    const mods = listing.filter((l) => l.endsWith('.ko')).map((l) => l.split('/').pop());
    expect(mods).toEqual(expect.arrayContaining(['virtio_blk.ko', 'virtio_pci.ko', 'virtio_scsi.ko', 'nvme.ko', 'ahci.ko', 'sd_mod.ko', 'xfs.ko', 'ext4.ko']));
    expect(mods).not.toContain('e1000e.ko');
    expect(mods).not.toContain('mpt3sas.ko');
    expect(await readFile(join(co, 'usr/etc/initramfs-tools/conf.d/cosa-modules.conf'), 'utf8')).toContain('MODULES=list');
    // dpkg ran under eatmydata (when the host has it), and the tree keeps none of it.
    expect(await exists(join(co, 'usr/lib/cosa-eatmydata'))).toBe(false);
    expect(await exists(join(co, 'usr/bin/dpkg.distrib'))).toBe(false);
    expect((await readFile(join(co, 'usr/bin/dpkg'))).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(await readFile(join(co, 'usr/share/factory/var/lib/dpkg/diversions'), 'utf8')).not.toContain('/usr/bin/dpkg');
    // No scratch trees are left in tmp/.
    expect((await readdir(join(work, 'tmp'))).filter((n) => n.startsWith('debian-compose-'))).toEqual([]);
  }, 60 * 60_000);

  it('recomposes unchanged inputs from the cached base tree and initramfs without a new commit', async () => {
    const t0 = performance.now();
    const again = await createDebianComposer().compose(opts({ version: '12.1' }));
    const ms = performance.now() - t0;
    expect(again.inputHash).toBe(first.inputHash);
    expect(again.commit).toBe(first.commit);
    expect(again.changed).toBe(false);
    expect(again.stats.baseTreeCached).toBe(1);
    expect(again.stats.initramfsCached).toBe(1);
    expect(ms).toBeLessThan(10 * 60_000);
  }, 30 * 60_000);

  it('reports a failing customize hook with its stderr and leaves no ref and no scratch tree', async () => {
    const m: Manifest = { ...manifest, debian: { ...manifest.debian!, 'customize-hooks': ['test -d "$1/usr"', 'echo "cosa-hook-broke: no widget" >&2; exit 7'] } };
    const repo = join(work, 'repo-fail');
    const err = await createDebianComposer().compose(opts({ repo, manifest: m })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COSA_COMPOSE_FAILED' });
    expect((err as Error).message).toContain('customize-hooks[1]');
    expect((err as Error).message).toContain('cosa-hook-broke: no widget');
    expect((err as { stderr?: string }).stderr).toContain('cosa-hook-broke');
    expect((await readdir(join(work, 'tmp'))).filter((n) => n.startsWith('debian-compose-'))).toEqual([]);
    const refs = await run(['ostree', `--repo=${repo}`, 'refs'], { okExitCodes: [0, 1] });
    expect(refs.stdout.trim()).toBe('');
  }, 30 * 60_000);
});
