import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { debianSources, hostDebianMirrors, parseSourcesList } from '../src/debian-sources.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function etcApt(files: Record<string, string>): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cosa-etcapt-'));
  dirs.push(d);
  await mkdir(join(d, 'sources.list.d'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(d, name), text);
  return d;
}

describe('hostDebianMirrors', () => {
  it('reads the mirror and the security mirror from deb822 .sources files', async () => {
    const d = await etcApt({
      'sources.list.d/debian.sources': [
        'Types: deb',
        '# a comment',
        'URIs: http://mirror.example/debian/',
        'Suites: bookworm bookworm-updates',
        'Components: main',
        '',
        'Types: deb',
        'URIs: http://mirror.example/debian-security',
        'Suites: bookworm-security',
        'Components: main',
        '',
      ].join('\n'),
      'sources.list': 'deb http://other.example/debian bookworm main\n',
    });
    expect(await hostDebianMirrors(d)).toEqual({ mirror: 'http://mirror.example/debian', securityMirror: 'http://mirror.example/debian-security' });
  });

  it('falls back to sources.list when there are no .sources files', async () => {
    const d = await etcApt({ 'sources.list': '# x\ndeb [arch=amd64] http://old.example/debian bookworm main\ndeb http://security.debian.org/debian-security bookworm-security main\n' });
    expect(await hostDebianMirrors(d)).toEqual({ mirror: 'http://old.example/debian', securityMirror: 'http://security.debian.org/debian-security' });
  });

  it('finds the mirror this machine uses', async () => {
    const m = await hostDebianMirrors();
    expect(m.mirror).toMatch(/^https?:\/\//);
  });
});

describe('parseSourcesList', () => {
  it('skips comments, deb-src and malformed lines', () => {
    expect(parseSourcesList('deb-src http://a/debian x main\n#deb http://b x main\ndeb http://c/debian y main contrib\n')).toEqual([{ uri: 'http://c/debian', suite: 'y' }]);
  });
});

describe('debianSources', () => {
  it('defaults to the host mirror with the updates and security suites', async () => {
    const s = await debianSources({ suite: 'bookworm' }, { mirror: 'http://m/debian', securityMirror: 'http://m/debian-security' });
    expect(s.map((x) => `${x.uri} ${x.suite} ${x.components.join(',')}`)).toEqual([
      'http://m/debian bookworm main',
      'http://m/debian bookworm-updates main',
      'http://m/debian-security bookworm-security main',
    ]);
    expect(s[0]?.options['signed-by']).toBe('/usr/share/keyrings/debian-archive-keyring.gpg');
  });

  it('uses the manifest mirror, components and extra suites, and trusts file: archives', async () => {
    const s = await debianSources({ suite: 'stable', mirror: 'file:///srv/repo/', components: ['main', 'contrib'], 'extra-suites': [] }, { mirror: 'http://m/debian' });
    expect(s).toEqual([{ uri: 'file:///srv/repo', suite: 'stable', components: ['main', 'contrib'], options: { trusted: 'yes' } }]);
  });

  it('fails with a hint when neither the manifest nor the host names a mirror', async () => {
    await expect(debianSources({ suite: 'bookworm' }, {})).rejects.toMatchObject({ code: 'COSA_COMPOSE_FAILED' });
  });
});

describe('systemFirstPath (the PATH mmdebstrap runs with)', () => {
  it('puts the distribution directories before version-manager shims, once each', async () => {
    const { systemFirstPath } = await import('../src/debian.js');
    expect(systemFirstPath('/root/.pyenv/shims:/usr/local/bin:/usr/bin:/bin')).toBe('/usr/sbin:/usr/bin:/sbin:/bin:/root/.pyenv/shims:/usr/local/bin');
    expect(systemFirstPath('')).toBe('/usr/sbin:/usr/bin:/sbin:/bin');
  });
});
