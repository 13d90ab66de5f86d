/**
 * `cosa kola` end to end on the bundled example: one build, then five boots in all — a passing
 * `kola run` (basic + the example's test, one VM), a `kola run` of a deliberately failing test
 * (FAIL, exit 1), and `kola run-upgrade` to a `--force` rebuild (three boots).
 *
 * Real mmdebstrap, ostree, qemu (TCG here), a real HTTP server for the upgrade. Composes are
 * cached under $COSA_TEST_CACHE as in e2e-build.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, testWorkdirCache } from '@cosa/test-utils';
import type { KolaReport } from '@cosa/core';
import { runCli } from './_run.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
let base: { dir: string; cleanup(): Promise<void> };
let wd: string;
let first = '';

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

async function readReport(dir: string): Promise<KolaReport> {
  return JSON.parse(await readFile(join(dir, 'reports', 'report.json'), 'utf8')) as KolaReport;
}

beforeAll(async () => {
  base = await tempDir('cosa-kola-');
  const config = join(base.dir, 'config');
  wd = join(base.dir, 'wd');
  cpSync(join(repoRoot, 'examples/debian'), config, { recursive: true });
  // A test that fails on purpose, non-exclusive like the example's (it is only run by pattern).
  await mkdir(join(config, 'tests/kola/deliberately-failing'), { recursive: true });
  await writeFile(join(config, 'tests/kola/deliberately-failing/test.sh'), '#!/bin/sh\necho "checking something that is not so"\nexit 3\n');
  await chmod(join(config, 'tests/kola/deliberately-failing/test.sh'), 0o755);
  await writeFile(join(config, 'tests/kola/deliberately-failing/kola.json'), '{"exclusive": false}\n');
  execFileSync('git', ['init', '-q', '-b', 'main', config]);
  execFileSync('git', ['-C', config, '-c', 'user.name=t', '-c', 'user.email=t@cosa.invalid', 'add', '-A']);
  execFileSync('git', ['-C', config, '-c', 'user.name=t', '-c', 'user.email=t@cosa.invalid', 'commit', '-qm', 'config']);
  await mkdir(wd, { recursive: true });
  const init = await runCli(['init', config], wd);
  expect(init.code, init.stderr).toBe(0);
  await rm(join(wd, 'cache'), { recursive: true });
  await symlink(testWorkdirCache(), join(wd, 'cache'));
  const b = await runCli(['build', '--json'], wd);
  expect(b.code, b.stderr + b.stdout.slice(-3000)).toBe(0);
  first = String(lastJson(b.stdout).buildId);
});

afterAll(async () => {
  await base?.cleanup();
});

describe('cosa kola (bundled example, TCG)', () => {
  it('runs the basic checks and the example test in one VM, all passing', async () => {
    const out = join(base.dir, 'kola-pass');
    const r = await runCli(['kola', 'run', '--output-dir', out, 'basic', 'ext.config.os-*'], wd);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('--- PASS: basic');
    expect(r.stdout).toContain('--- PASS: ext.config.os-identity');
    expect(r.stdout).toContain('--- PASS: ext.config.os-boot-automount');
    expect(r.stdout).toContain('--- PASS: ext.config.os-masked-units');
    const rep = await readReport(out);
    expect(rep.result).toBe('PASS');
    expect(rep.platform).toBe('qemu');
    expect(rep.version).toBe(first);
    expect(rep.tests.map((t) => [t.name, t.result])).toEqual([['basic', 'PASS'], ['ext.config.os-boot-automount', 'PASS'], ['ext.config.os-identity', 'PASS'], ['ext.config.os-masked-units', 'PASS']]);
    expect(rep.tests[0]!.subtests).toEqual([
      'basic.default-target', 'basic.usr-read-only', 'basic.booted-commit', 'basic.kernel-arguments', 'basic.etc-var-writable', 'basic.no-oops-oom',
    ]);
    expect(rep.tests[0]!.output).toContain('no failed units');
    expect(rep.tests[1]!.output).toMatch(/ok: \/boot is an automount \(ext4 on access\)/);
    expect(rep.tests[2]!.output).toMatch(/ok: Debian GNU\/Linux 12 .* on OSTree/);
    expect(rep.tests[3]!.output).toMatch(/ok: 8 units masked and inactive; loop \(\/dev\/loop\d+\) and dm_mod load on first use/);
    // One VM for all four (non-exclusive), its console kept.
    const console = await readFile(join(out, 'non-exclusive-test-bucket-0', 'console.txt'), 'utf8');
    expect(console.match(/GNU GRUB/g)?.length).toBe(1);
    expect(console).toContain('login:');
    const junit = await readFile(join(out, 'reports', 'junit.xml'), 'utf8');
    expect(junit).toContain('tests="4" failures="0"');
  });

  it('reports a failing test as FAIL with its output and exits 1', async () => {
    const out = join(base.dir, 'kola-fail');
    const r = await runCli(['kola', 'run', '--output-dir', out, 'ext.config.deliberately-*'], wd);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('--- FAIL: ext.config.deliberately-failing');
    const rep = await readReport(out);
    expect(rep.result).toBe('FAIL');
    expect(rep.tests).toHaveLength(1);
    expect(rep.tests[0]!.result).toBe('FAIL');
    expect(rep.tests[0]!.output).toContain('checking something that is not so');
    expect(rep.tests[0]!.output).toContain('exited with status 3');
    expect(await readFile(join(out, 'reports', 'junit.xml'), 'utf8')).toContain('<failure');
  });

  it('upgrades from the first build to a --force rebuild over HTTP, reboots, rolls back', async () => {
    const b = await runCli(['build', '--force', '--json'], wd);
    expect(b.code, b.stderr).toBe(0);
    const out = join(base.dir, 'kola-upgrade');
    const r = await runCli(['kola', 'run-upgrade', '--from', first, '--output-dir', out], wd);
    const rep = await readReport(out);
    expect(rep.tests.map((t) => [t.name, t.result]), r.stdout + r.stderr + rep.tests.map((t) => t.output).join('\n')).toEqual([
      ['upgrade.boot-from', 'PASS'],
      ['upgrade.etc-change', 'PASS'],
      ['upgrade.pull-deploy', 'PASS'],
      ['upgrade.booted-to', 'PASS'],
      ['upgrade.rollback', 'PASS'],
      ['upgrade.booted-from-again', 'PASS'],
    ]);
    expect(r.code).toBe(0);
    expect(rep.tests[3]!.output).toContain('/etc change kept');
    // Three boots in one console log; the build's image untouched (the overlay is gone).
    const console = await readFile(join(out, 'upgrade', 'console.txt'), 'utf8');
    expect(console.match(/GNU GRUB/g)?.length).toBe(3);
    expect(existsSync(join(out, 'overlay.qcow2'))).toBe(false);
  });
});
