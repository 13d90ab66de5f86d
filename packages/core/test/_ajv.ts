// Local stand-in for test-utils' validateWithOriginalSchema (being added by another helper).
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { fixturePath } from '@cosa/test-utils';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
// The original schema repeats fragment `$id`s (e.g. `#/image/digest`) that ajv refuses as
// ambiguous; they are labels only (every `$ref` is a JSON pointer), so nested ones are dropped.
function dropNestedIds(node: unknown, root = true): unknown {
  if (Array.isArray(node)) return node.map((n) => dropNestedIds(n, false));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) if (root || k !== '$id') out[k] = dropNestedIds(v, false);
  return out;
}
const schema = dropNestedIds(JSON.parse(readFileSync(fixturePath('cosa-meta.schema.json'), 'utf8'))) as object;
const validateFn = ajv.compile(schema);

/** Validates a meta.json document (object or file text) with ajv against the original v1 schema; returns the errors (empty when valid). */
export function originalSchemaErrors(meta: unknown): string[] {
  const doc = typeof meta === 'string' ? (JSON.parse(meta) as unknown) : meta;
  if (validateFn(doc)) return [];
  return (validateFn.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
