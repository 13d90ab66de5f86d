/**
 * kola's results in the original's format (`reports/report.json`, what its JSON reporter writes)
 * and as JUnit XML beside it for CI.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@cosa/schema';

/** A test's outcome, as the original's harness names them. */
export type KolaResult = 'PASS' | 'FAIL' | 'SKIP';

/** One entry of report.json's `tests`. */
export interface KolaTestReport {
  name: string;
  result: KolaResult;
  /** Nanoseconds (the original serialises a Go time.Duration). */
  duration: number;
  output: string;
  /** Names of the subtests (the original lists names only). */
  subtests: string[];
}

/** report.json. */
export interface KolaReport {
  tests: KolaTestReport[];
  /** FAIL when any test failed, else PASS. */
  result: KolaResult;
  platform: string;
  /** The build id tested. */
  version: string;
}

/** The overall result: FAIL if any test failed, else PASS (skips do not fail a run). */
export function overallResult(tests: readonly KolaTestReport[]): KolaResult {
  return tests.some((t) => t.result === 'FAIL') ? 'FAIL' : 'PASS';
}

/** Milliseconds to report.json's nanoseconds. */
export function msToNs(ms: number): number {
  return Math.round(ms * 1e6);
}

function xmlEscape(s: string): string {
  // XML 1.0 cannot carry most control characters, even escaped: drop them.
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** The report as JUnit XML: one testsuite `kola`, one testcase per test, output in system-out. */
export function toJUnitXml(r: KolaReport): string {
  const secs = (ns: number) => (ns / 1e9).toFixed(3);
  const total = r.tests.reduce((a, t) => a + t.duration, 0);
  const failures = r.tests.filter((t) => t.result === 'FAIL').length;
  const skipped = r.tests.filter((t) => t.result === 'SKIP').length;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="kola" tests="${r.tests.length}" failures="${failures}" skipped="${skipped}" time="${secs(total)}">`,
    `  <testsuite name="kola" tests="${r.tests.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${secs(total)}">`,
    `    <properties><property name="platform" value="${xmlEscape(r.platform)}"/><property name="version" value="${xmlEscape(r.version)}"/></properties>`,
  ];
  for (const t of r.tests) {
    lines.push(`    <testcase classname="kola" name="${xmlEscape(t.name)}" time="${secs(t.duration)}">`);
    const lastLine = t.output.trim().split('\n').slice(-1)[0] ?? '';
    if (t.result === 'FAIL') lines.push(`      <failure message="${xmlEscape(lastLine.slice(0, 200))}"/>`);
    if (t.result === 'SKIP') lines.push(`      <skipped message="${xmlEscape(lastLine.slice(0, 200))}"/>`);
    if (t.output) lines.push(`      <system-out>${xmlEscape(t.output)}</system-out>`);
    lines.push('    </testcase>');
  }
  lines.push('  </testsuite>', '</testsuites>', '');
  return lines.join('\n');
}

/** Writes `<outputDir>/reports/report.json` and `reports/junit.xml` (each atomically); returns their paths. */
export async function writeKolaReports(outputDir: string, r: KolaReport): Promise<{ json: string; junit: string }> {
  const dir = join(outputDir, 'reports');
  await mkdir(dir, { recursive: true });
  const json = join(dir, 'report.json');
  const junit = join(dir, 'junit.xml');
  await writeFileAtomic(json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFileAtomic(junit, toJUnitXml(r));
  return { json, junit };
}
