/**
 * Which Debian archive a manifest's `debian:` section points at: the mirror given there, else the
 * mirror the host's apt already uses (deb822 `.sources` first, then `sources.list`).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CosaError } from '@cosa/schema';
import { type DebianSource } from '@cosa/schema/internal';
import type { AptSource } from './_apt.js';

/** The mirrors found in the host's apt configuration. */
export interface HostMirrors {
  /** The Debian archive (e.g. `http://deb.debian.org/debian`). */
  mirror?: string;
  /** The security archive, when the host has one configured. */
  securityMirror?: string;
}

function trimSlash(u: string): string {
  return u.replace(/\/+$/, '');
}

/** Parses deb822 `.sources` text; returns each stanza's URIs and Suites. */
export function parseDeb822Sources(text: string): Array<{ uris: string[]; suites: string[]; types: string[] }> {
  const out: Array<{ uris: string[]; suites: string[]; types: string[] }> = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    let key = '';
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (m) {
        key = (m[1] ?? '').toLowerCase();
        fields[key] = m[2] ?? '';
      } else if (/^\s/.test(raw) && key) fields[key] += ` ${raw.trim()}`;
    }
    if (fields.enabled?.trim() === 'no') continue;
    const split = (s: string | undefined) => (s ?? '').split(/\s+/).filter(Boolean);
    if (fields.uris) out.push({ uris: split(fields.uris), suites: split(fields.suites), types: split(fields.types) });
  }
  return out;
}

/** Parses one-line `sources.list` text; returns each `deb` line's URI and suite. */
export function parseSourcesList(text: string): Array<{ uri: string; suite: string }> {
  const out: Array<{ uri: string; suite: string }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
    if (m) out.push({ uri: m[1] ?? '', suite: m[2] ?? '' });
  }
  return out;
}

/**
 * Reads the host's apt sources (`<etcApt>/sources.list.d/*.sources`, then `sources.list` and
 * `sources.list.d/*.list`) and returns the first Debian archive and the security archive.
 */
export async function hostDebianMirrors(etcApt = '/etc/apt'): Promise<HostMirrors> {
  const entries: Array<{ uri: string; suite: string }> = [];
  const dir = join(etcApt, 'sources.list.d');
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  for (const n of names.filter((x) => x.endsWith('.sources'))) {
    for (const s of parseDeb822Sources(await readFile(join(dir, n), 'utf8'))) {
      if (s.types.length > 0 && !s.types.includes('deb')) continue;
      for (const uri of s.uris) for (const suite of s.suites.length ? s.suites : ['']) entries.push({ uri, suite });
    }
  }
  const lists = [join(etcApt, 'sources.list'), ...names.filter((x) => x.endsWith('.list')).map((n) => join(dir, n))];
  for (const f of lists) entries.push(...parseSourcesList(await readFile(f, 'utf8').catch(() => '')));
  const isSecurity = (e: { uri: string; suite: string }) => /-security$|\/updates$/.test(e.suite) || /security/.test(e.uri);
  const main = entries.find((e) => !isSecurity(e));
  const sec = entries.find(isSecurity);
  return {
    ...(main ? { mirror: trimSlash(main.uri) } : {}),
    ...(sec ? { securityMirror: trimSlash(sec.uri) } : {}),
  };
}

/**
 * Builds the apt sources for a manifest's `debian:` section: the suite, then `extra-suites`
 * (default `<suite>-updates` and `<suite>-security`), each with the manifest's components.
 * `-security` suites use `security-mirror` (default: the host's security archive, else
 * `<mirror>-security`). `file:` mirrors are trusted without signatures (local test archives).
 */
export async function debianSources(d: DebianSource, host?: HostMirrors): Promise<AptSource[]> {
  const h = host ?? (await hostDebianMirrors());
  const mirror = d.mirror ? trimSlash(d.mirror) : h.mirror;
  if (!mirror) {
    throw new CosaError('COSA_COMPOSE_FAILED', 'no Debian mirror: the manifest has no debian.mirror and the host apt has no Debian source', {
      hint: 'set debian.mirror in manifest.yaml, e.g. http://deb.debian.org/debian',
    });
  }
  const security = d['security-mirror'] ? trimSlash(d['security-mirror']) : d.mirror ? `${mirror}-security` : (h.securityMirror ?? `${mirror}-security`);
  const components = d.components && d.components.length > 0 ? d.components : ['main'];
  const extra = d['extra-suites'] ?? [`${d.suite}-updates`, `${d.suite}-security`];
  // Debian archives are signed with debian-archive-keyring (installed on every Debian host and
  // pulled into the target by apt); local file: archives built by tests or users are unsigned.
  // `trusted: true` (not yet in the manifest schema, read as an extra key) does the same for an
  // unsigned archive served over http, e.g. a local test archive.
  const trusted = (d as { trusted?: unknown }).trusted === true;
  const opts = (uri: string): Record<string, string> =>
    trusted || uri.startsWith('file:') ? { trusted: 'yes' } : { 'signed-by': '/usr/share/keyrings/debian-archive-keyring.gpg' };
  return [d.suite, ...extra].map((suite) => {
    const uri = suite.endsWith('-security') ? security : mirror;
    return { uri, suite, components, options: opts(uri) };
  });
}

