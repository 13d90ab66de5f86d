import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturePath, validateWithOriginalSchema } from '@cosa/test-utils';

const samples = fixturePath('meta-samples');
const files = readdirSync(samples).filter((f) => f.endsWith('.json'));

describe('validation against the original meta.json schema', () => {
  it('has both real samples to check', () => {
    expect(files.length).toBe(2);
  });

  it.each(files)('accepts the real sample %s', (f) => {
    expect(() => validateWithOriginalSchema(JSON.parse(readFileSync(join(samples, f), 'utf8')))).not.toThrow();
  });

  it('refuses a meta.json with an unknown top-level key, naming it', () => {
    const meta = { ...JSON.parse(readFileSync(join(samples, files[0]!), 'utf8')), 'not-a-key': true };
    expect(() => validateWithOriginalSchema(meta)).toThrow(/not-a-key/);
  });

  it('refuses a meta.json missing a required key', () => {
    const meta = JSON.parse(readFileSync(join(samples, files[0]!), 'utf8')) as Record<string, unknown>;
    delete meta.buildid;
    expect(() => validateWithOriginalSchema(meta)).toThrow(/buildid/);
  });
});
