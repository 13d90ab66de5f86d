import { readFileSync } from 'node:fs';
import AjvModule from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { fileURLToPath } from 'node:url';

// ajv and ajv-formats are CommonJS; under NodeNext their default import is the module object.
const Ajv = (AjvModule as unknown as { default: typeof AjvModule.default }).default ?? AjvModule;
const addFormats = (addFormatsModule as unknown as { default: typeof addFormatsModule.default }).default ?? addFormatsModule;

let compiled: ValidateFunction | undefined;

/**
 * The original schema gives many subschemas fragment `$id`s such as `#/image/digest`, some of them
 * twice (Python's jsonschema does not mind; ajv refuses duplicates). No `$ref` points at them (every
 * `$ref` is a `#/definitions/...` pointer), so dropping the nested ones changes no validation.
 */
function dropNestedIds(node: unknown, top = true): unknown {
  if (Array.isArray(node)) return node.map((n) => dropNestedIds(n, false));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$id' && !top && typeof v === 'string' && v.startsWith('#')) continue;
    out[k] = dropNestedIds(v, false);
  }
  return out;
}

function validator(): ValidateFunction {
  if (!compiled) {
    const schema = dropNestedIds(JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/cosa-meta.schema.json', import.meta.url)), 'utf8'))) as Record<string, unknown>;
    // strict: false because the original schema carries keywords ajv does not know (e.g. `optional`).
    const ajv = new Ajv({ allErrors: true, strict: false });
    addFormats(ajv);
    compiled = ajv.compile(schema);
  }
  return compiled;
}

function describeError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '(root)' : e.instancePath;
  const extra =
    e.keyword === 'additionalProperties'
      ? ` '${String((e.params as { additionalProperty?: unknown }).additionalProperty)}'`
      : '';
  return `${where}: ${e.message ?? e.keyword}${extra}`;
}

/**
 * Validates a meta.json object against the original coreos-assembler JSON schema (draft-07, the
 * copy in fixtures/cosa-meta.schema.json) so the records we write stay readable by the original's
 * tools. Throws an Error listing every problem; returns nothing when the object is valid.
 */
export function validateWithOriginalSchema(meta: unknown): void {
  const validate = validator();
  if (validate(meta)) return;
  const errors = (validate.errors ?? []).map(describeError);
  throw new Error(`meta.json does not validate against the original schema:\n  ${errors.join('\n  ')}`);
}
