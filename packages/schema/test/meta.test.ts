import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturePath } from '@cosa/test-utils';
import { parseBuildsJson, parseMetaJson, SchemaError, serializeMetaJson } from '@cosa/schema';

const samples = fixturePath('meta-samples');

describe('meta.json', () => {
  const files = readdirSync(samples).filter((f) => f.endsWith('.json'));
  it.each(files)('parses and round-trips the real sample %s', (f) => {
    const text = readFileSync(join(samples, f), 'utf8');
    const meta = parseMetaJson(text, f);
    expect(meta.buildid).toBeTruthy();
    const again = parseMetaJson(serializeMetaJson(meta), f);
    expect(again).toEqual(meta);
    expect(again).toEqual(JSON.parse(text));
  });

  it('rejects an unknown top-level key, naming the file and key', () => {
    const text = readFileSync(join(samples, files[0]!), 'utf8');
    const bad = { ...JSON.parse(text), 'not-a-key': 1 };
    const e = (() => { try { parseMetaJson(JSON.stringify(bad), 'x/meta.json'); } catch (err) { return err; } })();
    expect(e).toBeInstanceOf(SchemaError);
    expect((e as SchemaError).file).toBe('x/meta.json');
    expect((e as SchemaError).message).toContain('not-a-key');
  });

  it('rejects an artifact path that escapes the build dir', () => {
    const text = readFileSync(join(samples, files[0]!), 'utf8');
    const bad = JSON.parse(text);
    bad.images.ostree.path = '../../etc/passwd';
    const e = (() => { try { parseMetaJson(JSON.stringify(bad), 'meta.json'); } catch (err) { return err; } })() as SchemaError;
    expect(e.issues[0]?.path).toBe('images.ostree.path');
  });

  it('keeps an images entry this version does not know, byte for byte through a round trip', () => {
    const text = readFileSync(join(samples, files[0]!), 'utf8');
    const newer = JSON.parse(text);
    const entry = { path: 'x-future.qcow2', sha256: 'c'.repeat(64), size: 42, 'future-field': { a: 1 } };
    newer.images['some-future-platform'] = entry;
    const meta = parseMetaJson(JSON.stringify(newer), 'meta.json');
    expect((meta.images as Record<string, unknown>)['some-future-platform']).toEqual(entry);
    expect(JSON.parse(serializeMetaJson(meta))).toEqual(newer);
  });

  it('still refuses an unknown images entry whose path escapes the build dir', () => {
    const text = readFileSync(join(samples, files[0]!), 'utf8');
    const bad = JSON.parse(text);
    bad.images['some-future-platform'] = { path: '../outside', sha256: 'c'.repeat(64) };
    const e = (() => { try { parseMetaJson(JSON.stringify(bad), 'meta.json'); } catch (err) { return err; } })() as SchemaError;
    expect(e).toBeInstanceOf(SchemaError);
    expect(e.issues[0]?.path).toBe('images.some-future-platform.path');
  });
});

describe('deeply nested JSON', () => {
  it('is refused with an error naming the file, before any recursive walk can overflow the stack', () => {
    const text = `{"buildid":"1","x":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`;
    expect(() => parseMetaJson(text, '/w/meta.json')).toThrow(/meta\.json[\s\S]*nested deeper than 64/);
    expect(() => parseBuildsJson(`[${'['.repeat(65)}${']'.repeat(65)}]`, 'b.json')).toThrow(/nested deeper/);
    // Brackets inside strings do not count.
    expect(() => parseBuildsJson(`{"schema-version":"1.0.0","builds":[],"n":"${'['.repeat(100)}"}`, 'b.json')).not.toThrow(/nested/);
  });
});
