import { execFile } from 'node:child_process';
import { link, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, test } from 'vitest';
import { assetPath } from '../src/_assets.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** Runs disk.sh's fill_var function alone (the script's top level needs a disk) on DEPLOY and VAR. */
async function fillVar(deploy: string, varDir: string): Promise<void> {
  const script = await readFile(assetPath('disk.sh'), 'utf8');
  const fn = /^fill_var\(\) \{\n[\s\S]*?\n\}\n/m.exec(script)?.[0];
  expect(fn, 'disk.sh defines fill_var').toBeTruthy();
  await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', `export LC_ALL=C\n${fn}\nfill_var "$1" "$2"`, 'fill-var', deploy, varDir]);
}

async function tree(files: Record<string, string>): Promise<{ deploy: string; varDir: string }> {
  const d = await mkdtemp(join(tmpdir(), 'cosa-fill-var-'));
  dirs.push(d);
  const deploy = join(d, 'deploy');
  for (const [p, body] of Object.entries(files)) {
    await mkdir(dirname(join(deploy, p)), { recursive: true });
    await writeFile(join(deploy, p), body);
  }
  const varDir = join(d, 'var');
  await mkdir(join(varDir, 'lib'), { recursive: true }); // as ostree's deploy leaves it: empty
  return { deploy, varDir };
}

describe("disk.sh's fill_var: the first boot's tmpfiles `C` copies, done when the disk is written", () => {
  test('copies what the first line per path says, from the factory, keeping modes and times but not hard links', async () => {
    const { deploy, varDir } = await tree({
      'usr/share/factory/var/lib/dpkg/status': 'Package: x\n',
      'usr/share/factory/var/lib/dpkg/info/a.list': '',
      'usr/share/factory/var/cache/debconf/config.dat': 'c',
      'usr/share/factory/var/spool/cron/x': 'x',
      'usr/share/factory/var/opt/y': 'y',
      'usr/lib/tmpfiles.d/a.conf': [
        'd /var/spool 0755 root root -',
        'C /var/lib/dpkg - - - - /usr/share/factory/var/lib/dpkg',
        'C /var/cache/debconf',
        'C /var/cache/%m - - - - /usr/share/factory/var/cache/debconf',
        'C /var/opt - - - - /etc/opt',
        '',
      ].join('\n'),
      // Later than a.conf: /var/spool is a.conf's (a `d`), so this copy never happens.
      'usr/lib/tmpfiles.d/b.conf': 'C /var/spool - - - - /usr/share/factory/var/spool\n',
    });
    // OSTree dedups identical files into one object: the checkout links them.
    await link(join(deploy, 'usr/share/factory/var/lib/dpkg/info/a.list'), join(deploy, 'usr/share/factory/var/lib/dpkg/info/b.list'));
    await utimes(join(deploy, 'usr/share/factory/var/lib/dpkg/status'), 0, 0);
    await fillVar(deploy, varDir);
    expect(await readFile(join(varDir, 'lib/dpkg/status'), 'utf8')).toBe('Package: x\n');
    expect((await lstat(join(varDir, 'lib/dpkg/status'))).mtimeMs).toBe(0);
    expect((await lstat(join(varDir, 'lib/dpkg/info/a.list'))).nlink).toBe(1);
    expect((await lstat(join(varDir, 'lib/dpkg/info/b.list'))).nlink).toBe(1);
    // An argument left out means the factory copy of the path.
    expect(await readFile(join(varDir, 'cache/debconf/config.dat'), 'utf8')).toBe('c');
    expect((await readdir(varDir)).sort()).toEqual(['cache', 'lib']);
    expect(await readdir(join(varDir, 'cache'))).toEqual(['debconf']);
  });

  test('leaves a path that exists alone, merges into an empty directory, and honours /etc over /usr/lib and masks', async () => {
    const { deploy, varDir } = await tree({
      'usr/share/factory/var/lib/apt/extended_states': 'new',
      'usr/share/factory/var/lib/pam/seen': 'p',
      'usr/share/factory/var/lib/misc/m': 'm',
      'usr/share/factory/var/lib/ucf/u': 'u',
      'usr/lib/tmpfiles.d/x.conf': 'C /var/lib/apt\nC /var/lib/pam\n',
      'etc/tmpfiles.d/x.conf': 'C /var/lib/apt\nC /var/lib/misc\n',
      'usr/lib/tmpfiles.d/masked.conf': 'C /var/lib/ucf\n',
    });
    await symlink('/dev/null', join(deploy, 'etc/tmpfiles.d/masked.conf'));
    await mkdir(join(varDir, 'lib/apt'));
    await writeFile(join(varDir, 'lib/apt/extended_states'), 'old');
    await mkdir(join(varDir, 'lib/misc'));
    await fillVar(deploy, varDir);
    expect(await readFile(join(varDir, 'lib/apt/extended_states'), 'utf8')).toBe('old');
    expect(await readFile(join(varDir, 'lib/misc/m'), 'utf8')).toBe('m');
    expect((await readdir(join(varDir, 'lib'))).sort()).toEqual(['apt', 'misc']);
  });

  test('does nothing for a tree without a factory copy', async () => {
    const { deploy, varDir } = await tree({ 'usr/lib/tmpfiles.d/x.conf': 'C /var/lib/x - - - - /usr/share/x\n', 'usr/share/x/y': 'y' });
    await fillVar(deploy, varDir);
    expect(await readdir(join(varDir, 'lib'))).toEqual([]);
  });
});
