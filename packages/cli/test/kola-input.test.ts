import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './_run.js';

// A workdir whose config has tests but no build: bad tests and patterns must be refused before
// kola looks for a build, boots anything or writes an output directory.
let wd: string;

beforeEach(async () => {
  wd = await mkdtemp(join(tmpdir(), 'cosa-kola-input-'));
  await mkdir(join(wd, 'src', 'config', 'tests', 'kola', 'x'), { recursive: true });
  await mkdir(join(wd, 'builds'));
  await writeFile(join(wd, 'src', 'config', 'tests', 'kola', 'x', 'test.sh'), '#!/bin/sh\n', { mode: 0o755 });
});
afterEach(async () => {
  await rm(wd, { recursive: true, force: true });
});

describe('cosa kola run: bad input', () => {
  it('refuses an unknown kola.json key, naming the file and the key, and writes nothing', async () => {
    await writeFile(join(wd, 'src', 'config', 'tests', 'kola', 'x', 'kola.json'), '{"exclusiv": false}');
    const r = await runCli(['kola', 'run'], wd);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(join(wd, 'src/config/tests/kola/x/kola.json'));
    expect(r.stderr).toContain('exclusiv');
    expect(await readdir(wd)).toEqual(['builds', 'src']);
  });

  it('refuses a pattern that matches no test, listing the tests', async () => {
    const r = await runCli(['kola', 'run', 'ext.nothing.*'], wd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no test matches "ext.nothing.*"');
    expect(r.stderr).toContain('basic, ext.config.x');
  });

  it('needs --from for run-upgrade', async () => {
    const r = await runCli(['kola', 'run-upgrade'], wd);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--from');
  });
});
