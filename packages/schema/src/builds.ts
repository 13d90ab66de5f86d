import { z } from 'zod';
import { SchemaError } from './errors.js';
import { parseJsonText, stableStringify, validate } from './json.js';

/** A build id or arch name: one path segment, never absolute, never `.`/`..`, no `/`. */
export const safeSegment = z
  .string()
  .min(1)
  .refine((s) => !s.includes('/') && !s.includes('\\') && s !== '.' && s !== '..' && !s.includes('\0'), {
    message: 'must be a single path segment (no "/", "..", or absolute path)',
  });

/** One entry of builds.json `builds`. */
export const buildEntrySchema = z.looseObject({
  id: safeSegment,
  arches: z.array(safeSegment),
  'policy-cleanup': z.record(z.string(), z.unknown()).optional(),
});

/** A tag pointing at a build. */
export const tagSchema = z.looseObject({
  name: z.string().min(1),
  created: z.string(),
  target: safeSegment,
  description: z.string().optional(),
});

/** builds/builds.json, schema-version 1.x. */
export const buildsJsonSchema = z.looseObject({
  'schema-version': z.string().regex(/^1\.\d+\.\d+$/, 'schema-version must be 1.x.y'),
  builds: z.array(buildEntrySchema),
  'tombstone-builds': z.array(buildEntrySchema).optional(),
  tags: z.array(tagSchema).optional(),
  timestamp: z.string().optional(),
});

export type BuildEntry = z.output<typeof buildEntrySchema>;
export type BuildTag = z.output<typeof tagSchema>;
export type BuildsJson = z.output<typeof buildsJsonSchema>;

/** An empty builds.json as the original creates it on first use. */
export function emptyBuildsJson(): BuildsJson {
  return { 'schema-version': '1.0.0', builds: [] };
}

/** Parses builds.json text; refuses another major version (e.g. legacy 0.x) with a clear message. */
export function parseBuildsJson(text: string, file = 'builds.json'): BuildsJson {
  const data = parseJsonText(text, file);
  const v = (data as { 'schema-version'?: unknown } | null)?.['schema-version'];
  if (typeof v === 'string' && !v.startsWith('1.')) {
    throw new SchemaError(file, [{ path: 'schema-version', message: `unsupported build metadata version ${v} (only 1.x is supported)` }], {
      code: 'COSA_SCHEMA_VERSION',
    });
  }
  return validate(buildsJsonSchema, data, file);
}

/** Serializes builds.json (stable key order, 4-space indent, trailing newline). */
export function serializeBuildsJson(b: BuildsJson): string {
  return stableStringify(buildsJsonSchema.parse(b));
}
