/**
 * A real bootable Debian OSTree commit for the image tests, built once with mmdebstrap and a
 * minimal rpm-ostree-like postprocess, cached under /var/tmp/cosa-test-cache keyed by a hash of
 * its inputs. Stand-in until the Debian composer (@cosa/ostree) lands; then this helper should
 * call the composer instead.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@cosa/ostree';
import { withLock } from '@cosa/schema';

export interface TestCommit {
  repo: string;
  ref: string;
  commit: string;
  osname: string;
}

const CACHE = process.env.COSA_TEST_CACHE ?? '/var/tmp/cosa-test-cache';
const SUITE = 'bookworm';
const REF = 'cosa-test/x86_64/debian';
const INCLUDE = ['linux-image-amd64', 'systemd-sysv', 'udev', 'ostree', 'ostree-boot', 'initramfs-tools', 'kmod', 'dbus', 'procps'];

// initramfs-tools glue: Debian's ostree-boot ships only a dracut module.
const HOOK = `#!/bin/sh
case "$1" in prereqs) echo ""; exit 0;; esac
. /usr/share/initramfs-tools/hook-functions
copy_exec /usr/lib/ostree/ostree-prepare-root /usr/lib/ostree/ostree-prepare-root
`;
const LOCAL_BOTTOM = `#!/bin/sh
case "$1" in prereqs) echo ""; exit 0;; esac
. /scripts/functions
for x in $(cat /proc/cmdline); do
  case "$x" in ostree=*) /usr/lib/ostree/ostree-prepare-root "\${rootmnt}" || panic "ostree-prepare-root failed";; esac
done
`;
const TMPFILES = `d /var/home 0755 root root -
d /var/roothome 0700 root root -
d /var/opt 0755 root root -
d /var/srv 0755 root root -
d /var/mnt 0755 root root -
d /var/usrlocal 0755 root root -
d /run/media 0755 root root -
C /var/lib/dpkg - - - - /usr/share/factory/var/lib/dpkg
C /var/lib/apt - - - - /usr/share/factory/var/lib/apt
C /var/cache/debconf - - - - /usr/share/factory/var/cache/debconf
`;

async function mirror(): Promise<string> {
  for (const f of (await readdir('/etc/apt/sources.list.d').catch(() => [])).filter((n) => n.endsWith('.sources'))) {
    const m = /^URIs:\s*(\S+)/m.exec(await readFile(join('/etc/apt/sources.list.d', f), 'utf8'));
    if (m?.[1]) return m[1];
  }
  const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(await readFile('/etc/apt/sources.list', 'utf8').catch(() => ''));
  if (m?.[1]) return m[1];
  throw new Error('no Debian mirror found in the apt sources');
}

/** Returns the cached test commit, building it first when absent (about 1.5 min). */
export async function debianTestCommit(): Promise<TestCommit> {
  const m = await mirror();
  const key = createHash('sha256')
    .update(JSON.stringify({ v: 1, m, SUITE, REF, INCLUDE, HOOK, LOCAL_BOTTOM, TMPFILES }))
    .digest('hex')
    .slice(0, 16);
  const dir = join(CACHE, `debian-commit-${key}`);
  const done = join(dir, 'commit.json');
  if (existsSync(done)) return JSON.parse(await readFile(done, 'utf8')) as TestCommit;
  return withLock(dir, async () => {
    if (existsSync(done)) return JSON.parse(await readFile(done, 'utf8')) as TestCommit;
    const work = `${dir}.tmp`;
    await rm(work, { recursive: true, force: true });
    await mkdir(join(work, 'overlay/hooks'), { recursive: true });
    await mkdir(join(work, 'overlay/scripts/local-bottom'), { recursive: true });
    await writeFile(join(work, 'overlay/hooks/ostree'), HOOK);
    await writeFile(join(work, 'overlay/scripts/local-bottom/ostree'), LOCAL_BOTTOM);
    await chmod(join(work, 'overlay/hooks/ostree'), 0o755);
    await chmod(join(work, 'overlay/scripts/local-bottom/ostree'), 0o755);
    const root = join(work, 'rootfs');
    await run(
      [
        'mmdebstrap', '--mode=root', '--variant=minbase', `--include=${INCLUDE.join(',')}`,
        '--setup-hook=mkdir -p "$1/etc/initramfs-tools"',
        `--setup-hook=cp -a ${join(work, 'overlay')}/. "$1/etc/initramfs-tools/"`,
        '--customize-hook=chroot "$1" passwd -d root',
        '--customize-hook=echo cosa-test > "$1/etc/hostname"',
        '--customize-hook=chroot "$1" systemctl mask systemd-firstboot.service',
        SUITE, root,
        `deb ${m} ${SUITE} main`, `deb ${m} ${SUITE}-updates main`,
      ],
      { timeoutMs: 15 * 60_000 },
    );
    await postprocess(root);
    const repo = join(work, 'repo');
    await run(['ostree', `--repo=${repo}`, 'init', '--mode=bare-user']);
    const r = await run([
      'ostree', `--repo=${repo}`, 'commit', '-b', REF, `--tree=dir=${root}`, '--no-xattrs',
      '--add-metadata-string=version=test.1', '-s', 'cosa image test commit',
    ]);
    await rm(root, { recursive: true, force: true });
    const result: TestCommit = { repo: join(dir, 'repo'), ref: REF, commit: r.stdout.trim(), osname: 'debian' };
    await writeFile(join(work, 'commit.json'), JSON.stringify(result));
    await rm(dir, { recursive: true, force: true });
    await rename(work, dir);
    return result;
  }, { waitMs: 20 * 60_000, what: 'the test commit cache' });
}

async function postprocess(r: string): Promise<void> {
  const kver = (await readdir(join(r, 'usr/lib/modules')))[0];
  if (!kver) throw new Error('no kernel in the rootfs');
  await rename(join(r, `boot/vmlinuz-${kver}`), join(r, `usr/lib/modules/${kver}/vmlinuz`));
  await rename(join(r, `boot/initrd.img-${kver}`), join(r, `usr/lib/modules/${kver}/initramfs.img`));
  for (const d of ['boot', 'dev', 'proc', 'sys', 'run', 'tmp', 'var/cache/apt', 'var/lib/apt/lists', 'var/log']) {
    for (const e of await readdir(join(r, d)).catch(() => [] as string[])) await rm(join(r, d, e), { recursive: true, force: true });
  }
  for (const f of ['vmlinuz', 'vmlinuz.old', 'initrd.img', 'initrd.img.old']) await rm(join(r, f), { force: true });
  await writeFile(join(r, 'etc/fstab'), 'LABEL=boot /boot ext4 defaults 0 2\n');
  await rename(join(r, 'etc'), join(r, 'usr/etc'));
  await mkdir(join(r, 'usr/share/factory'), { recursive: true });
  await rename(join(r, 'var'), join(r, 'usr/share/factory/var'));
  await mkdir(join(r, 'var'));
  await writeFile(join(r, 'usr/lib/tmpfiles.d/cosa-ostree.conf'), TMPFILES);
  for (const d of ['home', 'root', 'opt', 'srv', 'mnt', 'media', 'usr/local']) await rm(join(r, d), { recursive: true, force: true });
  for (const [link, target] of [['home', 'var/home'], ['root', 'var/roothome'], ['opt', 'var/opt'], ['srv', 'var/srv'], ['mnt', 'var/mnt'], ['media', 'run/media'], ['usr/local', '../var/usrlocal'], ['ostree', 'sysroot/ostree']] as const) {
    await symlink(target, join(r, link));
  }
  await mkdir(join(r, 'sysroot'));
}
