/**
 * Licenses of Debian packages as SPDX expressions, from machine-readable (DEP-5) copyright files.
 * DEP-5 short names mostly differ from SPDX ids (`GPL-2+`, `Expat`, `BSD-3-clause`): the common
 * ones are mapped, anything else becomes a `LicenseRef-`.
 */

const DEP5_TO_SPDX: Record<string, string> = {
  'gpl-1': 'GPL-1.0-only', 'gpl-1+': 'GPL-1.0-or-later', 'gpl-2': 'GPL-2.0-only', 'gpl-2+': 'GPL-2.0-or-later',
  'gpl-3': 'GPL-3.0-only', 'gpl-3+': 'GPL-3.0-or-later', 'lgpl-2': 'LGPL-2.0-only', 'lgpl-2+': 'LGPL-2.0-or-later',
  'lgpl-2.0': 'LGPL-2.0-only', 'lgpl-2.0+': 'LGPL-2.0-or-later', 'lgpl-2.1': 'LGPL-2.1-only', 'lgpl-2.1+': 'LGPL-2.1-or-later',
  'lgpl-3': 'LGPL-3.0-only', 'lgpl-3+': 'LGPL-3.0-or-later', 'agpl-3': 'AGPL-3.0-only', 'agpl-3+': 'AGPL-3.0-or-later',
  'gfdl-1.2': 'GFDL-1.2-only', 'gfdl-1.2+': 'GFDL-1.2-or-later', 'gfdl-1.3': 'GFDL-1.3-only', 'gfdl-1.3+': 'GFDL-1.3-or-later',
  'gpl-2.0': 'GPL-2.0-only', 'gpl-2.0+': 'GPL-2.0-or-later', 'gpl-3.0': 'GPL-3.0-only', 'gpl-3.0+': 'GPL-3.0-or-later',
  'apache-2': 'Apache-2.0', 'apache-2.0': 'Apache-2.0', artistic: 'Artistic-1.0', 'artistic-2.0': 'Artistic-2.0',
  'bsd-2-clause': 'BSD-2-Clause', 'bsd-3-clause': 'BSD-3-Clause', 'bsd-4-clause': 'BSD-4-Clause', expat: 'MIT', mit: 'MIT',
  isc: 'ISC', zlib: 'Zlib', 'mpl-1.1': 'MPL-1.1', 'mpl-2.0': 'MPL-2.0', 'cc0-1.0': 'CC0-1.0', cc0: 'CC0-1.0',
  openssl: 'OpenSSL', 'psf-2': 'PSF-2.0', 'python-2.0': 'Python-2.0', curl: 'curl', x11: 'X11', 'bsl-1.0': 'BSL-1.0',
  'cc-by-sa-3.0': 'CC-BY-SA-3.0', 'cc-by-4.0': 'CC-BY-4.0', 'cc-by-sa-4.0': 'CC-BY-SA-4.0', 'unicode-dfs-2016': 'Unicode-DFS-2016',
  'lppl-1.3c': 'LPPL-1.3c', 'ofl-1.1': 'OFL-1.1', 'sil-ofl-1.1': 'OFL-1.1', 'bzip2-1.0.6': 'bzip2-1.0.6', wtfpl: 'WTFPL',
  '0bsd': '0BSD', 'mit-0': 'MIT-0', 'epl-1.0': 'EPL-1.0', 'epl-2.0': 'EPL-2.0', 'cddl-1.0': 'CDDL-1.0', 'afl-2.0': 'AFL-2.0', 'afl-2.1': 'AFL-2.1', 'afl-3.0': 'AFL-3.0',
};

function licenseRef(name: string): string {
  return `LicenseRef-${name.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '') || 'unknown'}`;
}

/** One DEP-5 license synopsis (`GPL-2+ or Artistic`, `BSD-3-clause and MIT`) as an SPDX expression. */
export function synopsisToSpdx(synopsis: string): string {
  const s = synopsis.trim();
  // `X with Y exception`: SPDX exceptions are a closed list; keep the whole synopsis as one reference.
  if (/\bwith\b/i.test(s)) return licenseRef(s);
  const tokens = s.split(/\s+|(?=[(),])|(?<=[(),])/).filter((t) => t && t !== ',');
  const out: string[] = [];
  for (const t of tokens) {
    const l = t.toLowerCase();
    if (l === 'or' || l === 'and') out.push(l.toUpperCase());
    else if (t === '(' || t === ')') out.push(t);
    else out.push(DEP5_TO_SPDX[l] ?? licenseRef(t));
  }
  // Anything that is not a well-formed alternation of ids and operators: one reference.
  const expr = out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')');
  return /^(\(?\s*[A-Za-z0-9.+-]+\)?)(\s+(AND|OR)\s+\(?[A-Za-z0-9.+-]+\)?)*$/.test(expr) ? expr : licenseRef(s);
}

/**
 * The SPDX expression of a machine-readable copyright file: the distinct `License:` synopses of
 * its `Files:` paragraphs joined with AND (sorted). Undefined when the file is not DEP-5 or
 * names no license.
 */
export function spdxLicenseFromDep5(text: string): string | undefined {
  const paragraphs = text.replace(/\r\n/g, '\n').split(/\n\s*\n/);
  if (!/^Format:\s*\S*copyright-format/im.test(paragraphs[0] ?? '')) return undefined;
  const found = new Set<string>();
  for (const p of paragraphs) {
    if (!/^Files:/im.test(p)) continue;
    const m = /^License:[ \t]*(.*)$/im.exec(p);
    const synopsis = m?.[1]?.trim();
    if (synopsis) found.add(synopsisToSpdx(synopsis));
  }
  if (found.size === 0) return undefined;
  const parts = [...found].sort();
  if (parts.length === 1) return parts[0];
  return parts.map((p) => (/\sOR\s/.test(p) ? `(${p})` : p)).join(' AND ');
}
