import { realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import type { SchemaIssue } from './errors.js';
import { ConfigFileError, formatChain, isNotFound, isPlainObject, readConfigDocument, withChain, type PlainObject } from './_config-io.js';
import { stableStringify, zodIssues } from './json.js';
import { manifestSchema, type Manifest } from './manifest.js';

export { ConfigFileError } from './_config-io.js';

/** Values a treefile variable can take (`variables:` map, `releasever`, `basearch`). */
export type TreefileVariables = Record<string, string | number | boolean>;

/** Options for {@link flattenTreefile}. */
export interface FlattenTreefileOptions {
  /** The top-level treefile, e.g. `src/config/manifest.yaml` (YAML, or JSON when it ends in `.json`). */
  file: string;
  /** Base architecture of the compose (`x86_64`, `aarch64`, `ppc64le`, `s390x`, `riscv64`). */
  arch: string;
  /**
   * Variables that override the treefiles' own `variables` (like a command-line override).
   * `basearch` and `releasever` are reserved (set from `arch` and the `releasever` key) and ignored here.
   */
  variables?: TreefileVariables;
  /** Unknown keys are an error (code `COSA_CONFIG_UNKNOWN_KEY`) instead of being only reported. */
  strict?: boolean;
}

/** The result of {@link flattenTreefile}. */
export interface FlattenedTreefile {
  /** The merged treefile: includes resolved, `packages-<arch>` folded into `packages`, variables substituted. */
  manifest: Manifest;
  /** Every treefile read, in the order read (absolute paths): the inputs to hash. */
  files: string[];
  /** Keys no rpm-ostree treefile (and no cosa extension) defines; kept in `manifest` as they are. */
  unknownKeys: string[];
  /**
   * Files the treefiles refer to (`postprocess-script`, `add-files` sources, `check-passwd` /
   * `check-groups` files), resolved against the treefile that names them. Not read here.
   */
  externals: string[];
}

/** Maximum include depth, as rpm-ostree. */
const MAX_DEPTH = 50;

/** Every key rpm-ostree's treefile reference documents, plus cosa's `debian`. */
const KNOWN_KEYS = new Set([
  'edition', 'ref', 'metadata', 'gpg-key', 'repos', 'lockfile-repos', 'selinux', 'ignore-devices', 'ima',
  'boot-location', 'etc-group-members', 'install-langs', 'mutate-os-release', 'documentation', 'packages',
  'exclude-packages', 'repo-packages', 'ostree-layers', 'ostree-override-layers', 'container-cmd',
  'bootstrap_packages', 'recommends', 'units', 'default-target', 'initramfs-args', 'rpmdb', 'rpmdb-normalize',
  'selinux-label-version', 'cliwrap', 'cliwrap-binaries', 'readonly-executables', 'remove-files',
  'remove-from-packages', 'preserve-passwd', 'check-passwd', 'check-groups', 'ignore-removed-users',
  'ignore-removed-groups', 'releasever', 'automatic-version-prefix', 'automatic-version-suffix',
  'add-commit-metadata', 'postprocess-script', 'postprocess', 'include', 'arch-include', 'conditional-include',
  'container', 'add-files', 'tmp-is-dir', 'machineid-compat', 'platform-module', 'variables', 'repo_metadata',
  'repovars', 'opt-usrlocal', 'rojig', 'modules', 'sysusers', 'basearch', 'tmpfiles',
  'debian',
]);

/** Legacy underscore spellings rpm-ostree accepts, and their canonical names. */
const ALIASES: Record<string, string> = {
  boot_location: 'boot-location',
  gpg_key: 'gpg-key',
  default_target: 'default-target',
  automatic_version_prefix: 'automatic-version-prefix',
};

/** Map-valued keys: merged key by key (the including file wins on a duplicate key). */
const MAP_KEYS = new Set(['add-commit-metadata', 'variables', 'repovars', 'metadata', 'debian']);

/** String keys where `${var}` is substituted (rpm-ostree's documented set). */
const SUBST_KEYS = ['ref', 'automatic-version-prefix', 'mutate-os-release', 'platform-module'];
/** Mappings whose top-level string values are substituted. */
const SUBST_MAP_KEYS = ['add-commit-metadata', 'metadata', 'rojig'];
/** `debian:` fields substituted (strings and lists of strings). */
const SUBST_DEBIAN_KEYS = ['suite', 'mirror', 'security-mirror', 'hostname', 'components', 'extra-suites'];

const includeValue = z.union([z.string(), z.array(z.string())]);

/** One treefile as written (before merging): the manifest keys plus the include directives. */
const treefileDocumentSchema = manifestSchema.extend({
  include: includeValue.optional(),
  'arch-include': z.record(z.string(), includeValue).optional(),
  'conditional-include': z
    .array(z.looseObject({ if: z.union([z.string(), z.array(z.string())]), include: z.union([includeValue, z.record(z.string(), z.unknown())]) }))
    .optional(),
  bootstrap_packages: z.array(z.string()).optional(),
});

type Scalar = string | number | boolean;

type ConditionalInclude = { if: string | string[]; include: string | string[] | PlainObject };

/** Keys handled while reading a document; they never reach the merged manifest as such. */
const DIRECTIVES = new Set(['include', 'arch-include', 'conditional-include', 'variables', 'bootstrap_packages']);

/** Keys rpm-ostree keeps as sets: merged, then sorted and deduplicated. */
const SET_KEYS = ['packages', 'ignore-removed-users', 'ignore-removed-groups'];

interface Loaded {
  data: PlainObject;
  /** Which file each top-level key's value came from (for error messages after merging). */
  origin: Map<string, string>;
}

function toList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** rpm-ostree splits package entries on whitespace unless the entry is wrapped in single quotes. */
function splitPackages(entries: readonly string[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    const t = e.trim();
    if (t.length >= 2 && t.startsWith("'") && t.endsWith("'")) out.push(t.slice(1, -1));
    else out.push(...t.split(/\s+/).filter((s) => s !== ''));
  }
  return out;
}

interface Condition {
  name: string;
  op: '==' | '!=' | '<' | '<=' | '>' | '>=';
  value: Scalar;
}

/** Parses `<var> <op> <value>`; returns a reason string when it is malformed. */
function parseCondition(expr: string): Condition | string {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(==|!=|<=|>=|<|>)\s*(.*?)\s*$/.exec(expr);
  if (!m) return 'expected "<variable> <op> <value>" with op one of == != < <= > >=';
  const [, name, op, raw] = m as unknown as [string, string, Condition['op'], string];
  let value: Scalar;
  if (raw === 'true' || raw === 'false') value = raw === 'true';
  else if (/^-?\d+(\.\d+)?$/.test(raw)) value = Number(raw);
  else if (/^"[^"]*"$/.test(raw) || /^'[^']*'$/.test(raw)) value = raw.slice(1, -1);
  else return `value ${JSON.stringify(raw)} must be a boolean, a number or a quoted string`;
  return { name, op, value };
}

function compare(a: Scalar, op: Condition['op'], b: Scalar): boolean | string {
  let x: Scalar = a;
  let y: Scalar = b;
  // releasever is often written as a string ("40"); compare it numerically with a number.
  if (typeof x === 'string' && typeof y === 'number' && /^-?\d+(\.\d+)?$/.test(x)) x = Number(x);
  if (typeof x === 'number' && typeof y === 'string' && /^-?\d+(\.\d+)?$/.test(y)) y = Number(y);
  if (typeof x !== typeof y) return `cannot compare ${typeof a} ${JSON.stringify(a)} with ${typeof b} ${JSON.stringify(b)}`;
  if (typeof x === 'boolean' && op !== '==' && op !== '!=') return `booleans only support == and !=`;
  switch (op) {
    case '==': return x === y;
    case '!=': return x !== y;
    case '<': return x < y;
    case '<=': return x <= y;
    case '>': return x > y;
    case '>=': return x >= y;
  }
}

interface IncludeRef {
  path: string;
  key: string;
}

class Flattener {
  readonly files: string[] = [];
  readonly externals: string[] = [];
  readonly unknown: Array<{ file: string; key: string }> = [];
  /** Each file read → the include chain that led to it. */
  readonly chains = new Map<string, string[]>();
  /** realpath → the path it was first included as. */
  private readonly seen = new Map<string, string>();
  /**
   * The variables defined so far, in traversal order (depth first, includes in order): as in
   * rpm-ostree the first definition wins, so the including file wins over its includes and an
   * earlier include over a later one. Seeded with the overrides and `basearch`.
   */
  readonly variables: TreefileVariables;

  constructor(
    private readonly base: string,
    private readonly arch: string,
    seed: TreefileVariables,
  ) {
    this.variables = { ...seed, basearch: arch };
  }

  private fail(file: string, chain: string[], issues: SchemaIssue[], code?: ConfigFileError['code']): never {
    throw new ConfigFileError(
      file,
      issues.map((i) => ({ path: i.path, message: withChain(i.message, chain, this.base) })),
      code === undefined ? { chain } : { chain, code },
    );
  }

  /**
   * Validates one treefile document (a file, or an inline `conditional-include`) and returns its
   * data: legacy key spellings renamed, `packages`, `bootstrap_packages` and `packages-<arch>`
   * folded into `packages`, include directives and `variables` removed (handled by the caller).
   */
  private normalize(raw: PlainObject, file: string, here: string[], prefix: string): PlainObject {
    for (const [alias, canonical] of Object.entries(ALIASES)) {
      if (alias in raw) {
        if (!(canonical in raw)) raw[canonical] = raw[alias];
        delete raw[alias];
      }
    }
    const parsed = treefileDocumentSchema.safeParse(raw);
    const issues: SchemaIssue[] = parsed.success ? [] : zodIssues(parsed.error);
    // packages-<arch>: every one must be a list of strings, only the target arch's is used.
    const archful: string[] = [];
    for (const [k, v] of Object.entries(raw)) {
      if (!k.startsWith('packages-')) continue;
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) issues.push({ path: k, message: 'expected a list of strings' });
      else if (k === `packages-${this.arch}`) archful.push(...(v as string[]));
    }
    const vars = raw.variables;
    if (isPlainObject(vars)) {
      for (const reserved of ['basearch', 'releasever']) {
        if (reserved in vars) issues.push({ path: `variables.${reserved}`, message: `cannot define reserved variable '${reserved}'` });
      }
    }
    if (issues.length > 0) this.fail(file, here, issues.map((i) => ({ ...i, path: `${prefix}${i.path}` })));

    for (const k of Object.keys(raw)) {
      if (!KNOWN_KEYS.has(k) && !k.startsWith('packages-')) this.unknown.push({ file, key: `${prefix}${k}` });
    }
    const dir = dirname(file);
    if (typeof raw['postprocess-script'] === 'string') this.externals.push(resolve(dir, raw['postprocess-script']));
    for (const pair of (raw['add-files'] as string[][] | undefined) ?? []) this.externals.push(resolve(dir, pair[0]!));
    for (const k of ['check-passwd', 'check-groups']) {
      const c = raw[k] as { type?: string; filename?: string } | undefined;
      if (c?.type === 'file' && typeof c.filename === 'string') this.externals.push(resolve(dir, c.filename));
    }

    // No prototype: a `__proto__:` key in a treefile stays a key, never the object's prototype.
    const data: PlainObject = Object.create(null) as PlainObject;
    for (const [k, v] of Object.entries(raw)) {
      if (k.startsWith('packages-') || DIRECTIVES.has(k)) continue;
      data[k] = v;
    }
    if ('packages' in raw || 'bootstrap_packages' in raw || archful.length > 0) {
      data.packages = [
        ...splitPackages((raw.packages as string[] | undefined) ?? []),
        ...splitPackages((raw.bootstrap_packages as string[] | undefined) ?? []),
        ...splitPackages(archful),
      ];
    }
    return data;
  }

  /** Adds a document's own variables (and its `releasever`) under those already defined. */
  private foldVariables(raw: PlainObject): void {
    const own: TreefileVariables = isPlainObject(raw.variables) ? { ...(raw.variables as TreefileVariables) } : {};
    if (typeof raw.releasever === 'string' || typeof raw.releasever === 'number') own.releasever = raw.releasever;
    Object.assign(this.variables, { ...own, ...this.variables });
  }

  /** Evaluates every condition of an entry (all of them, so a bad one is reported even after a false one). */
  private holds(entry: { if: string | string[] }, i: number, file: string, here: string[]): boolean {
    let all = true;
    const key = `conditional-include[${i}].if`;
    for (const expr of toList(entry.if)) {
      const cond = parseCondition(expr);
      if (typeof cond === 'string') this.fail(file, here, [{ path: key, message: `invalid condition "${expr}": ${cond}` }]);
      const value = this.variables[cond.name];
      if (value === undefined) {
        const known = Object.keys(this.variables).sort().join(', ');
        this.fail(file, here, [{ path: key, message: `condition "${expr}" uses undefined variable '${cond.name}' (defined: ${known})` }], 'COSA_CONFIG_VARIABLE');
      }
      const r = compare(value, cond.op, cond.value);
      if (typeof r === 'string') this.fail(file, here, [{ path: key, message: `invalid condition "${expr}": ${r}` }]);
      all = all && r;
    }
    return all;
  }

  async load(file: string, chain: string[], via?: { includer: string; key: string }): Promise<Loaded> {
    const here = [...chain, file];
    if (here.length > MAX_DEPTH + 1) {
      this.fail(via?.includer ?? file, chain, [{ path: via?.key ?? '', message: `maximum include depth ${MAX_DEPTH} reached` }], 'COSA_CONFIG_INCLUDE');
    }
    let real: string;
    try {
      real = await realpath(file);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      if (!via) {
        throw new ConfigFileError(file, [{ path: '', message: 'treefile does not exist' }], { code: 'COSA_CONFIG_MISSING', chain: here });
      }
      throw new ConfigFileError(
        via.includer,
        [{ path: via.key, message: `included file does not exist: ${formatChain(here, this.base)}` }],
        { code: 'COSA_CONFIG_INCLUDE', chain: here },
      );
    }
    if (this.seen.has(real) && via) {
      const realChain = await Promise.all(chain.map((f) => realpath(f).catch(() => f)));
      const reason = realChain.includes(real)
        ? `include cycle: ${formatChain(here, this.base)}`
        : `${formatChain([file], this.base)} is included more than once (rpm-ostree refuses this): ${formatChain(here, this.base)}`;
      throw new ConfigFileError(via.includer, [{ path: via.key, message: reason }], { code: 'COSA_CONFIG_INCLUDE', chain: here });
    }
    this.seen.set(real, file);

    const raw = await readConfigDocument(file, here, this.base);
    if (raw === undefined) {
      throw new ConfigFileError(file, [{ path: '', message: 'treefile does not exist' }], { code: 'COSA_CONFIG_MISSING', chain: here });
    }
    this.files.push(file);
    this.chains.set(file, here);

    const data = this.normalize(raw, file, here, '');
    const result: Loaded = { data, origin: new Map(Object.keys(data).map((k) => [k, file])) };
    this.foldVariables(raw);

    // As rpm-ostree: the include list is include, then arch-include for the target arch, then the
    // conditional includes whose conditions hold now (before any include of this file is read).
    const includes: IncludeRef[] = [];
    const inc = raw.include as string | string[] | undefined;
    for (const [i, p] of toList(inc).entries()) includes.push({ path: p, key: Array.isArray(inc) ? `include[${i}]` : 'include' });
    const archInc = (raw['arch-include'] as Record<string, string | string[]> | undefined)?.[this.arch];
    for (const [i, p] of toList(archInc).entries()) {
      includes.push({ path: p, key: Array.isArray(archInc) ? `arch-include.${this.arch}[${i}]` : `arch-include.${this.arch}` });
    }
    const conditionals = (raw['conditional-include'] as ConditionalInclude[] | undefined) ?? [];
    for (const [i, entry] of conditionals.entries()) {
      if (!this.holds(entry, i, file, here)) continue;
      const target = entry.include;
      if (isPlainObject(target)) {
        // An inline treefile: merged straight into this file (this file wins).
        const prefix = `conditional-include[${i}].include.`;
        for (const d of DIRECTIVES) {
          if (d !== 'variables' && d !== 'bootstrap_packages' && d in target) {
            this.fail(file, here, [{ path: `${prefix}${d}`, message: 'not supported inside an inline conditional include' }]);
          }
        }
        const inline = this.normalize({ ...target }, file, here, prefix);
        this.foldVariables(target);
        mergeInto(result, { data: inline, origin: new Map(Object.keys(inline).map((k) => [k, file])) });
        continue;
      }
      for (const [j, p] of toList(target).entries()) {
        includes.push({ path: p, key: Array.isArray(target) ? `conditional-include[${i}].include[${j}]` : `conditional-include[${i}].include` });
      }
    }
    const dir = dirname(file);
    for (const { path, key } of includes) {
      mergeInto(result, await this.load(resolve(dir, path), here, { includer: file, key }));
    }
    return result;
  }
}

/**
 * Merges an included treefile into the including one, as rpm-ostree: scalars and objects of the
 * including file (or of an earlier include) win; lists are concatenated with the included
 * file's entries first; map keys (`add-commit-metadata`, `metadata`, …) merge key by key.
 */
function mergeInto(dest: Loaded, src: Loaded): void {
  for (const [k, v] of Object.entries(src.data)) {
    const cur = dest.data[k];
    if (cur === undefined) {
      dest.data[k] = v;
      dest.origin.set(k, src.origin.get(k) ?? '');
    } else if (Array.isArray(cur) && Array.isArray(v)) {
      dest.data[k] = [...v, ...cur];
    } else if (MAP_KEYS.has(k) && isPlainObject(cur) && isPlainObject(v)) {
      dest.data[k] = Object.assign(Object.create(null) as PlainObject, v, cur);
    }
  }
}

/**
 * Flattens a treefile the way rpm-ostree (`compose tree --print-only`) does before a compose:
 *
 * - follows `include`, then `arch-include` for `arch`, then the `conditional-include` entries
 *   whose conditions hold (paths relative to the including file; an entry may also be an inline
 *   treefile); a file may be included only once;
 * - conditions (`<var> <op> <value>`, all of a list must hold) are evaluated when their file is
 *   read, over the variables defined so far: the overrides, `basearch`, then every `variables:`
 *   map and `releasever` in reading order, the first definition winning;
 * - merges: scalars and objects of the including file (or of an earlier include) win; lists are
 *   concatenated, an included file's entries first (so later includes come before earlier ones);
 *   `add-commit-metadata`, `metadata` and `repovars` merge key by key; `packages` (with
 *   `packages-<arch>` folded in and entries split on whitespace) and `ignore-removed-*` end up
 *   sorted without duplicates; `variables` holds every variable, `basearch` and `releasever` too;
 * - substitutes `${var}` in `ref`, `automatic-version-prefix`, `mutate-os-release`,
 *   `platform-module`, the string values of `add-commit-metadata`/`metadata`/`rojig` and the
 *   names in `debian`.
 *
 * @throws ConfigFileError (a SchemaError) naming the file, the include chain and the key: code
 *   `COSA_CONFIG_MISSING` (top-level file absent), `COSA_CONFIG_INCLUDE` (missing include, cycle,
 *   file included twice), `COSA_CONFIG_VARIABLE` (undefined variable in a condition or a
 *   substitution), `COSA_SCHEMA_INVALID` (wrong type, bad condition, reserved variable defined),
 *   `COSA_SCHEMA_PARSE` (bad YAML/JSON), `COSA_CONFIG_UNKNOWN_KEY` (unknown key with `strict`).
 */
export async function flattenTreefile(options: FlattenTreefileOptions): Promise<FlattenedTreefile> {
  const file = resolve(options.file);
  const base = dirname(file);
  const overrides = { ...(options.variables ?? {}) };
  delete overrides.basearch;
  delete overrides.releasever;
  const f = new Flattener(base, options.arch, overrides);
  const { data, origin } = await f.load(file, []);

  const unknownKeys = [...new Set(f.unknown.map((u) => u.key))].sort();
  if (options.strict && f.unknown.length > 0) {
    const firstFile = f.unknown[0]!.file;
    throw new ConfigFileError(
      firstFile,
      f.unknown.map((u) => ({ path: u.key, message: `unknown key in ${formatChain([u.file], base)}` })),
      { code: 'COSA_CONFIG_UNKNOWN_KEY', chain: f.chains.get(firstFile) ?? [firstFile] },
    );
  }

  // Sets as rpm-ostree keeps them (sorted, no duplicates); all variables seen, as rpm-ostree prints them.
  for (const k of SET_KEYS) {
    const v = data[k];
    if (Array.isArray(v)) data[k] = [...new Set(v as string[])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
  const vars = f.variables;
  data.variables = Object.fromEntries(Object.entries(vars).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

  const subst = (s: string, key: string): string =>
    s.replace(/\$\{([^}]*)\}/g, (_m, name: string) => {
      const v = vars[name];
      if (v === undefined) {
        const from = origin.get(key.split(/[.[]/)[0]!) ?? file;
        const chain = f.chains.get(from) ?? [from];
        const message = `undefined variable \${${name}} (defined: ${Object.keys(vars).sort().join(', ')})`;
        throw new ConfigFileError(from, [{ path: key, message: withChain(message, chain, base) }], {
          code: 'COSA_CONFIG_VARIABLE',
          chain,
        });
      }
      return String(v);
    });
  for (const k of SUBST_KEYS) if (typeof data[k] === 'string') data[k] = subst(data[k], k);
  for (const k of SUBST_MAP_KEYS) {
    const m = data[k];
    if (!isPlainObject(m)) continue;
    const out: PlainObject = Object.create(null) as PlainObject;
    for (const [mk, mv] of Object.entries(m)) out[mk] = typeof mv === 'string' ? subst(mv, `${k}.${mk}`) : mv;
    data[k] = out;
  }
  if (isPlainObject(data.debian)) {
    const d: PlainObject = { ...data.debian };
    for (const k of SUBST_DEBIAN_KEYS) {
      const v = d[k];
      if (typeof v === 'string') d[k] = subst(v, `debian.${k}`);
      else if (Array.isArray(v)) d[k] = v.map((x, i) => (typeof x === 'string' ? subst(x, `debian.${k}[${i}]`) : x));
    }
    data.debian = d;
  }

  const final = manifestSchema.safeParse(data);
  if (!final.success) {
    const issues = zodIssues(final.error);
    const from = origin.get(issues[0]?.path.split(/[.[]/)[0] ?? '') ?? file;
    const chain = f.chains.get(from) ?? [from];
    throw new ConfigFileError(from, issues.map((i) => ({ ...i, message: withChain(i.message, chain, base) })), { chain });
  }
  return { manifest: final.data, files: f.files, unknownKeys, externals: [...new Set(f.externals)] };
}

/**
 * Renders a flattened manifest for people (`yaml`) or scripts (`json`, stable: sorted keys,
 * 4-space indent, trailing newline).
 */
export function serializeManifest(manifest: Manifest, format: 'yaml' | 'json'): string {
  if (format === 'json') return stableStringify(manifest);
  return stringifyYaml(manifest, { lineWidth: 0 });
}
