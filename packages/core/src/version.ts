/**
 * Build versions as rpm-ostree and the original compute them: `automatic-version-prefix` with
 * `<date:FORMAT>` expanded, then `.N` where N follows the previous version of the same prefix.
 */

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** Expands strftime-style `%Y %m %d %H %M %S %j %y %%` for `date` (UTC). */
export function strftimeUtc(format: string, date: Date): string {
  const start = Date.UTC(date.getUTCFullYear(), 0, 1);
  const doy = Math.floor((date.getTime() - start) / 86_400_000) + 1;
  return format.replace(/%([YmdHMSjy%])/g, (_, c: string) => {
    switch (c) {
      case 'Y': return String(date.getUTCFullYear());
      case 'y': return pad(date.getUTCFullYear() % 100);
      case 'm': return pad(date.getUTCMonth() + 1);
      case 'd': return pad(date.getUTCDate());
      case 'H': return pad(date.getUTCHours());
      case 'M': return pad(date.getUTCMinutes());
      case 'S': return pad(date.getUTCSeconds());
      case 'j': return pad(doy, 3);
      default: return '%';
    }
  });
}

/** Expands `<date:FORMAT>` in an automatic-version-prefix. */
export function expandVersionPrefix(prefix: string, now: Date = new Date()): string {
  return prefix.replace(/<date:([^>]*)>/g, (_, fmt: string) => strftimeUtc(fmt, now));
}

/**
 * The next version: `<expanded prefix>.<n>`, n = previous trailing number + 1 when the previous
 * version has the same expanded prefix, else 0. Without a prefix: a UTC timestamp version
 * (`<timestamp>.1`, `.2`… when the previous build has the same timestamp).
 */
export function nextVersion(options: { prefix?: string | undefined; previous?: string | undefined; now?: Date }): string {
  const now = options.now ?? new Date();
  if (!options.prefix) {
    // Two builds in the same second (an incremental rebuild can take less) must not share an id.
    const ts = strftimeUtc('%Y%m%d%H%M%S', now);
    const prev = options.previous;
    if (prev === ts) return `${ts}.1`;
    const m = prev?.startsWith(`${ts}.`) ? /^(\d+)$/.exec(prev.slice(ts.length + 1)) : null;
    return m ? `${ts}.${Number(m[1]) + 1}` : ts;
  }
  const base = expandVersionPrefix(options.prefix, now);
  const prev = options.previous;
  if (prev && prev.startsWith(`${base}.`)) {
    const rest = prev.slice(base.length + 1);
    const m = /^(\d+)(?:-\d+)?$/.exec(rest);
    if (m) return `${base}.${Number(m[1]) + 1}`;
  }
  return `${base}.0`;
}
