/**
 * kola's tests: discovery of a config's external tests (`tests/kola/<path>/`, named
 * `ext.config.<path with / as .>`, options from `kola.json` or a `# kola: {…}` line) and the
 * glob patterns that select tests, as the original's `kola run PATTERN…`.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CosaError, SchemaError, type SchemaIssue } from '@cosa/schema';

/** The options of one external test (`kola.json`), as the original reads them. */
export interface KolaTestMeta {
  /** Runs in its own VM (default true, as the original); false: shares one VM with the others. */
  exclusive: boolean;
  /** Minutes before the test is killed (default 5 here; 0 or absent: the default). */
  timeoutMin?: number;
  /** Space-separated arches; a leading `!` excludes them instead. */
  architectures?: string;
  /** Space-separated platforms (`qemu`); a leading `!` excludes them instead. */
  platforms?: string;
  /** Space-separated tags. */
  tags?: string;
  description?: string;
}

/** One external test found under `tests/kola/`. */
export interface ExternalTest {
  /** `ext.config.<path>` (+ `.<executable>` when the directory holds several, or not `test.sh`). */
  name: string;
  /** Absolute path of the executable. */
  executable: string;
  /** The test's directory (absolute). */
  dir: string;
  /** `data/` beside the test, shipped as `$KOLA_EXT_DATA`. */
  dataDir?: string;
  meta: KolaTestMeta;
}

/** `kola.json` keys cosa runs with; the others the original knows are accepted and ignored. */
const KNOWN_KEYS: Record<string, 'boolean' | 'number' | 'string' | 'array'> = {
  exclusive: 'boolean', timeoutMin: 'number', architectures: 'string', platforms: 'string', tags: 'string', description: 'string',
  distros: 'string', requiredTag: 'string', additionalDisks: 'array', primaryDisk: 'string', injectContainer: 'boolean', minMemory: 'number',
  numaNodes: 'boolean', minDisk: 'number', additionalNics: 'number', appendKernelArgs: 'string', appendFirstbootKernelArgs: 'string',
  conflicts: 'array', allowConfigWarnings: 'boolean', noInstanceCreds: 'boolean', instanceType: 'string', bindMountHostRO: 'array',
  creationDate: 'string', bootFrom: 'string', requiredHostPorts: 'array',
};

/**
 * Validates the options of a test (from `kola.json` or a `# kola:` line): an unknown key or a
 * wrong type is a SchemaError naming `file` and the key, as the original refuses unknown fields.
 */
export function parseKolaMeta(data: unknown, file: string): KolaTestMeta {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new SchemaError(file, [{ path: '', message: 'must be a JSON object' }]);
  }
  const issues: SchemaIssue[] = [];
  for (const [k, v] of Object.entries(data)) {
    const want = KNOWN_KEYS[k];
    if (!want) issues.push({ path: k, message: 'unknown key' });
    else if (want === 'array' ? !Array.isArray(v) : typeof v !== want) issues.push({ path: k, message: `must be a ${want}` });
  }
  const d = data as Record<string, unknown>;
  if (typeof d.timeoutMin === 'number' && (!Number.isInteger(d.timeoutMin) || d.timeoutMin < 0)) issues.push({ path: 'timeoutMin', message: 'must be a whole number of minutes' });
  if (issues.length > 0) throw new SchemaError(file, issues);
  const meta: KolaTestMeta = { exclusive: d.exclusive !== false };
  for (const k of ['architectures', 'platforms', 'tags', 'description'] as const) if (typeof d[k] === 'string') meta[k] = d[k];
  if (typeof d.timeoutMin === 'number' && d.timeoutMin > 0) meta.timeoutMin = d.timeoutMin;
  return meta;
}

async function parseJsonFile(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new SchemaError(file, [{ path: '', message: `not valid JSON: ${(e as Error).message}` }], { code: 'COSA_SCHEMA_PARSE' });
  }
}

/** Options from a `# kola: {json}` line near the top of an executable, if any. */
async function inlineMeta(executable: string): Promise<KolaTestMeta | undefined> {
  const head = (await readFile(executable)).subarray(0, 8192).toString('utf8');
  for (const line of head.split('\n')) {
    if (!line.startsWith('# kola:')) continue;
    let data: unknown;
    try {
      data = JSON.parse(line.slice('# kola:'.length).trim());
    } catch (e) {
      throw new SchemaError(executable, [{ path: '# kola:', message: `not valid JSON: ${(e as Error).message}` }], { code: 'COSA_SCHEMA_PARSE' });
    }
    return parseKolaMeta(data, `${executable} (# kola: line)`);
  }
  return undefined;
}

async function scanDir(dir: string, prefix: string, out: ExternalTest[]): Promise<void> {
  const entries = (await readdir(dir)).sort();
  const executables: string[] = [];
  let dirMeta: KolaTestMeta = { exclusive: true };
  let dataDir: string | undefined;
  const subdirs: string[] = [];
  for (const name of entries) {
    const p = join(dir, name);
    const st = await stat(p); // follows symlinks, as the original
    if (st.isDirectory()) {
      if (name === 'data') dataDir = p;
      else subdirs.push(name);
    } else if (st.isFile()) {
      if (name === 'kola.json') dirMeta = parseKolaMeta(await parseJsonFile(p), p);
      else if (st.mode & 0o001) executables.push(p);
    }
  }
  for (const exe of executables) {
    const several = executables.length > 1 || basename(exe) !== 'test.sh';
    out.push({
      name: several ? `${prefix}.${basename(exe)}` : prefix,
      executable: exe,
      dir,
      ...(dataDir ? { dataDir } : {}),
      meta: (await inlineMeta(exe)) ?? dirMeta,
    });
  }
  for (const s of subdirs) await scanDir(join(dir, s), `${prefix}.${s}`, out);
}

/**
 * The external tests of a config directory: every executable (mode o+x) under `tests/kola/`,
 * named `ext.config.<dir>.<dir>…` (the executable's name appended unless it is the only one and
 * is `test.sh`). No `tests/kola/`: none. Sorted by name.
 */
export async function discoverExternalTests(configDir: string, prefix = 'ext.config'): Promise<ExternalTest[]> {
  const root = join(configDir, 'tests', 'kola');
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) return [];
  const out: ExternalTest[] = [];
  await scanDir(root, prefix, out);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * A glob pattern as Go's filepath.Match reads it (what the original's patterns are): `*` any
 * run of characters, `?` one, `[abc]`/`[a-z]`/`[^a]` a class, `\` escapes. Throws COSA_USAGE on
 * a malformed pattern.
 */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '\\') {
      const next = pattern[++i];
      if (next === undefined) throw new CosaError('COSA_USAGE', `bad test pattern "${pattern}": it ends with \\`);
      re += escapeRe(next);
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new CosaError('COSA_USAGE', `bad test pattern "${pattern}": [ without ]`);
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('^') || body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\(?!\])/g, '\\\\')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** True when `name` matches one of `patterns` (no patterns: everything matches). */
export function matchesPatterns(name: string, patterns: readonly string[]): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((p) => globToRegExp(p).test(name));
}

/** Why a test does not run on this arch/platform, or undefined when it does. */
export function skipReason(meta: Pick<KolaTestMeta, 'architectures' | 'platforms'>, arch: string, platform: string): string | undefined {
  const check = (spec: string | undefined, value: string, what: string): string | undefined => {
    if (!spec?.trim()) return undefined;
    const exclude = spec.startsWith('!');
    const list = (exclude ? spec.slice(1) : spec).split(/\s+/).filter(Boolean);
    if (exclude ? list.includes(value) : !list.includes(value)) return `${what} ${value} excluded by "${spec}"`;
    return undefined;
  };
  return check(meta.architectures, arch, 'architecture') ?? check(meta.platforms, platform, 'platform');
}
