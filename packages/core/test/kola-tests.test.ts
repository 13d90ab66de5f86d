import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCosaError, SchemaError } from '@cosa/schema';
import { type KolaReport } from '../src/index.js';
import {
  discoverExternalTests,
  globToRegExp,
  matchesPatterns,
  parseKolaMeta,
  skipReason,
} from '../src/kola/tests.js';
import { planVms } from '../src/kola/run.js';
import { toJUnitXml, writeKolaReports } from '../src/kola/report.js';

let config: string;

beforeEach(async () => {
  config = await mkdtemp(join(tmpdir(), 'cosa-kola-test-'));
});
afterEach(async () => {
  await rm(config, { recursive: true, force: true });
});

async function put(rel: string, text: string, mode = 0o644): Promise<void> {
  const p = join(config, 'tests', 'kola', rel);
  await mkdir(join(p, '..'), { recursive: true });
  await writeFile(p, text, { mode });
}

describe('external test discovery', () => {
  it('names tests ext.config.<path with dots>, dropping a lone test.sh and appending other executables', async () => {
    await put('files/license/test.sh', '#!/bin/sh\n', 0o755);
    await put('files/kola.json', '{"exclusive": false}');
    await put('files/a', '#!/bin/sh\n', 0o755);
    await put('files/b', '#!/bin/sh\n', 0o755);
    await put('files/notes.txt', 'not a test\n');
    await put('top/test.sh', '#!/bin/sh\n# kola: {"exclusive": false, "timeoutMin": 3}\n', 0o755);
    await put('top/data/payload', 'x');
    const tests = await discoverExternalTests(config);
    expect(tests.map((t) => t.name)).toEqual(['ext.config.files.a', 'ext.config.files.b', 'ext.config.files.license', 'ext.config.top']);
    const byName = Object.fromEntries(tests.map((t) => [t.name, t]));
    // kola.json applies to the executables of its own directory, not to subdirectories.
    expect(byName['ext.config.files.a']!.meta.exclusive).toBe(false);
    expect(byName['ext.config.files.license']!.meta.exclusive).toBe(true);
    expect(byName['ext.config.top']!.meta).toEqual({ exclusive: false, timeoutMin: 3 });
    expect(byName['ext.config.top']!.dataDir).toBe(join(config, 'tests/kola/top/data'));
  });

  it('finds no tests in a config without tests/kola', async () => {
    expect(await discoverExternalTests(config)).toEqual([]);
  });

  it('rejects an unknown kola.json key, naming the file and the key', async () => {
    await put('x/test.sh', '#!/bin/sh\n', 0o755);
    await put('x/kola.json', '{"exclusive": false, "timeoutMinutes": 3}');
    const e = await discoverExternalTests(config).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(SchemaError);
    expect((e as SchemaError).file).toBe(join(config, 'tests/kola/x/kola.json'));
    expect((e as SchemaError).issues).toEqual([{ path: 'timeoutMinutes', message: 'unknown key' }]);
  });

  it('rejects malformed JSON and wrong types', async () => {
    await put('x/test.sh', '#!/bin/sh\n', 0o755);
    await put('x/kola.json', '{"exclusive": ');
    expect(isCosaError(await discoverExternalTests(config).catch((e: unknown) => e), 'COSA_SCHEMA_PARSE')).toBe(true);
    expect(() => parseKolaMeta({ exclusive: 'no' }, 'k.json')).toThrow(/k\.json: exclusive: must be a boolean/);
    expect(() => parseKolaMeta({ timeoutMin: 1.5 }, 'k.json')).toThrow(/timeoutMin/);
  });

  it('defaults to exclusive, as the original', () => {
    expect(parseKolaMeta({}, 'k.json')).toEqual({ exclusive: true });
  });
});

describe('test patterns', () => {
  it('match as Go filepath.Match globs over the whole name', () => {
    expect(matchesPatterns('ext.config.files.license', ['ext.config.*'])).toBe(true);
    expect(matchesPatterns('ext.config.files.license', ['ext.config.files'])).toBe(false);
    expect(matchesPatterns('basic', ['ext.*', 'basic'])).toBe(true);
    expect(matchesPatterns('basic', [])).toBe(true);
    expect(globToRegExp('ext.config.?').test('ext.config.a')).toBe(true);
    expect(globToRegExp('ext.config.?').test('ext.configXa')).toBe(false);
    expect(globToRegExp('t[0-9]').test('t7')).toBe(true);
    expect(globToRegExp('t[^0-9]').test('t7')).toBe(false);
    expect(globToRegExp('a\\*').test('a*')).toBe(true);
    expect(globToRegExp('a\\*').test('ab')).toBe(false);
  });

  it('reject a malformed pattern with a usage error', () => {
    expect(() => globToRegExp('ext.[abc')).toThrow(/\[ without \]/);
  });

  it('skip tests for other architectures and platforms, with ! as exclusion', () => {
    expect(skipReason({ architectures: 'x86_64 aarch64' }, 'x86_64', 'qemu')).toBeUndefined();
    expect(skipReason({ architectures: '!x86_64' }, 'x86_64', 'qemu')).toMatch(/architecture x86_64/);
    expect(skipReason({ platforms: 'aws gcp' }, 'x86_64', 'qemu')).toMatch(/platform qemu/);
    expect(skipReason({ platforms: '!aws' }, 'x86_64', 'qemu')).toBeUndefined();
  });
});

describe('VM plan', () => {
  it('puts basic and every non-exclusive test in one VM and each exclusive test in its own', () => {
    const ext = (name: string, exclusive: boolean) => ({ kind: 'ext' as const, name, test: { name, executable: '', dir: '', meta: { exclusive } } });
    const plans = planVms([{ kind: 'basic', name: 'basic' }, ext('ext.config.a', false), ext('ext.config.b', true), ext('ext.config.c', false)]);
    expect(plans.map((p) => [p.name, p.tests.map((t) => t.name)])).toEqual([
      ['non-exclusive-test-bucket-0', ['basic', 'ext.config.a', 'ext.config.c']],
      ['ext.config.b', ['ext.config.b']],
    ]);
  });
});

describe('reports', () => {
  const report: KolaReport = {
    tests: [
      { name: 'basic', result: 'PASS', duration: 1_500_000_000, output: 'ok\n', subtests: ['basic.usr-read-only'] },
      { name: 'ext.config.x', result: 'FAIL', duration: 2_000_000_000, output: 'bad <thing> & "quote"\x07\nkola: exited with status 1\n', subtests: [] },
      { name: 'ext.config.y', result: 'SKIP', duration: 0, output: 'skipped: platform qemu excluded\n', subtests: [] },
    ],
    result: 'FAIL',
    platform: 'qemu',
    version: '12.20261127.0',
  };

  it('writes report.json in kola\'s format and JUnit XML beside it', async () => {
    const paths = await writeKolaReports(config, report);
    expect(paths.json).toBe(join(config, 'reports', 'report.json'));
    const back = JSON.parse(await readFile(paths.json, 'utf8')) as KolaReport;
    expect(back).toEqual(report);
    expect(Object.keys(back)).toEqual(['tests', 'result', 'platform', 'version']);
    expect(Object.keys(back.tests[0]!)).toEqual(['name', 'result', 'duration', 'output', 'subtests']);
    const xml = await readFile(paths.junit, 'utf8');
    expect(xml).toBe(toJUnitXml(report));
  });

  it('JUnit XML counts failures and skips, escapes output and drops control characters', () => {
    const xml = toJUnitXml(report);
    expect(xml).toContain('<testsuite name="kola" tests="3" failures="1" errors="0" skipped="1" time="3.500">');
    expect(xml).toContain('<testcase classname="kola" name="ext.config.x" time="2.000">');
    expect(xml).toContain('<failure message="kola: exited with status 1"/>');
    expect(xml).toContain('bad &lt;thing&gt; &amp; &quot;quote&quot;\n');
    expect(xml).not.toContain('\x07');
    expect(xml).toContain('<skipped message="skipped: platform qemu excluded"/>');
  });
});
