import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { SchemaError, type SchemaIssue } from './errors.js';

/** Turns zod issues into SchemaIssues with dotted paths (`images.qemu.sha256`, `builds[0].id`). */
export function zodIssues(error: z.ZodError): SchemaIssue[] {
  return error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
}

/** Formats a path as `a.b[0].c`; keys that contain dots or odd characters are quoted. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else {
      const s = String(p);
      out += out === '' ? s : `.${s}`;
    }
  }
  return out;
}

/** Deepest nesting of arrays and objects accepted in a JSON document (meta.json needs about 6). */
export const MAX_JSON_DEPTH = 64;

/** The nesting depth of JSON text (brackets outside strings), stopping early past `limit`. */
function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) max = depth;
      if (max > limit) return max;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/**
 * Parses JSON text; a syntax error, or nesting deeper than {@link MAX_JSON_DEPTH} (which would
 * overflow the stack of every recursive walk afterwards), becomes a SchemaError naming the file.
 */
export function parseJsonText(text: string, file: string): unknown {
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new SchemaError(file, [{ path: '', message: `invalid JSON: nested deeper than ${MAX_JSON_DEPTH} levels` }], { code: 'COSA_SCHEMA_PARSE' });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new SchemaError(file, [{ path: '', message: `invalid JSON: ${(e as Error).message}` }], { code: 'COSA_SCHEMA_PARSE', cause: e });
  }
}

/** Parses YAML text; a syntax error becomes a SchemaError naming the file and line. */
export function parseYamlText(text: string, file: string): unknown {
  try {
    return parseYaml(text, { prettyErrors: true, merge: true }) as unknown;
  } catch (e) {
    const msg = e instanceof YAMLParseError ? e.message.split('\n')[0] ?? e.message : (e as Error).message;
    throw new SchemaError(file, [{ path: '', message: `invalid YAML: ${msg}` }], { code: 'COSA_SCHEMA_PARSE', cause: e });
  }
}

/** Validates `data` against `schema`; throws SchemaError naming `file` and every bad path. */
export function validate<S extends z.ZodType>(schema: S, data: unknown, file: string): z.output<S> {
  const r = schema.safeParse(data);
  if (!r.success) throw new SchemaError(file, zodIssues(r.error));
  return r.data;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/**
 * Stable JSON: keys sorted, 4-space indent like the original's Python writer, trailing newline.
 * The same data always gives the same bytes.
 */
export function stableStringify(value: unknown): string {
  return `${JSON.stringify(sortKeys(value), null, 4)}\n`;
}
