import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import type { CosaErrorCode, CosaErrorOptions, SchemaIssue } from './errors.js';
import { SchemaError } from './errors.js';
import { parseJsonText, parseYamlText } from './json.js';

/**
 * A config file (treefile, image.yaml, platforms.yaml, lockfile) is wrong: it names the file, the
 * chain of includes that led to it (outermost first) and, in `issues`, the key and the reason.
 */
export class ConfigFileError extends SchemaError {
  /** Files from the top-level one down to `file` (absolute paths). */
  readonly chain: string[];

  constructor(
    file: string,
    issues: SchemaIssue[],
    options: CosaErrorOptions & { code?: CosaErrorCode; chain?: string[] } = {},
  ) {
    super(file, issues, options);
    this.name = 'ConfigFileError';
    this.chain = options.chain ?? [file];
  }
}

/** Renders an include chain with paths relative to `base`: `manifest.yaml → manifests/a.yaml`. */
export function formatChain(chain: readonly string[], base: string): string {
  return chain.map((f) => relative(base, f) || f).join(' → ');
}

/** Appends the include chain to a message when the file was reached through includes. */
export function withChain(message: string, chain: readonly string[], base: string): string {
  return chain.length > 1 ? `${message} (include chain: ${formatChain(chain, base)})` : message;
}

export type PlainObject = Record<string, unknown>;

export function isPlainObject(v: unknown): v is PlainObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** True when `e` is a Node.js error for a missing file. */
export function isNotFound(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Reads and parses a YAML or JSON config document (JSON when the name ends in `.json`).
 * Returns undefined when the file does not exist. An empty document is an empty mapping.
 * Parse errors and a non-mapping top level become a {@link ConfigFileError} naming the chain.
 */
export async function readConfigDocument(
  file: string,
  chain: readonly string[],
  base: string,
): Promise<PlainObject | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw new ConfigFileError(file, [{ path: '', message: withChain(`cannot read: ${(e as Error).message}`, chain, base) }], {
      code: 'COSA_CONFIG_MISSING',
      chain: [...chain],
      cause: e,
    });
  }
  let data: unknown;
  try {
    data = file.endsWith('.json') ? parseJsonText(text, file) : parseYamlText(text, file);
  } catch (e) {
    if (e instanceof SchemaError) {
      throw new ConfigFileError(
        file,
        e.issues.map((i) => ({ path: i.path, message: withChain(i.message, chain, base) })),
        { code: e.code, chain: [...chain], cause: e },
      );
    }
    throw e;
  }
  if (data === null || data === undefined) return {};
  if (!isPlainObject(data)) {
    throw new ConfigFileError(file, [{ path: '', message: withChain('expected a mapping at the top level', chain, base) }], {
      chain: [...chain],
    });
  }
  return data;
}
