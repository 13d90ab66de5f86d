/**
 * The real CLI SIGKILLed at random moments of buildfetch and compress on small synthetic builds:
 * after every kill the workdir is consistent (builds.json and every meta.json parse, every
 * artifact a meta.json lists is there with its size), and a re-run completes. Kills per command:
 * COSA_KILL_RUNS (default 4; the 50 is a manual run, see docs/reliability.md).
 */
import { cp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseBuildsJson, parseMetaJson } from '@cosa/schema';
import { buildUpload } from '@cosa/core';
import { killAtRandomMoments, tempDir, tempWorkdir } from '@cosa/test-utils';
import { makeBuild } from '../../core/test/_build.js';

const RUNS = Number(process.env.COSA_KILL_RUNS ?? 4);
const COSA = fileURLToPath(new URL('../bin/cosa.js', import.meta.url));

/** Problems in a workdir's builds/: what a kill must never leave. */
async function workdirProblems(workdir: string): Promise<string[]> {
  const problems: string[] = [];
  const builds = join(workdir, 'builds');
  const text = await readFile(join(builds, 'builds.json'), 'utf8').catch(() => undefined);
  if (text !== undefined) {
    try {
      parseBuildsJson(text, 'builds.json');
    } catch (e) {
      problems.push(`builds.json: ${(e as Error).message}`);
    }
  }
  for (const id of await readdir(builds).catch(() => [] as string[])) {
    if (id === 'builds.json' || id === 'latest' || id.startsWith('.')) continue;
    for (const arch of await readdir(join(builds, id)).catch(() => [] as string[])) {
      const dir = join(builds, id, arch);
      const metaText = await readFile(join(dir, 'meta.json'), 'utf8').catch(() => undefined);
      if (metaText === undefined) {
        problems.push(`${id}/${arch} has no meta.json`);
        continue;
      }
      try {
        const meta = parseMetaJson(metaText, `${id}/${arch}/meta.json`);
        for (const [k, img] of Object.entries((meta.images ?? {}) as Record<string, { path: string; size?: number }>)) {
          const st = await stat(join(dir, img.path)).catch(() => undefined);
          // Metadata-only fetches leave artifacts out; a present artifact must be whole.
          if (st && img.size !== undefined && st.size !== img.size) problems.push(`${id}/${arch}/${img.path} (${k}) has ${st.size} bytes, meta.json says ${img.size}`);
        }
      } catch (e) {
        problems.push(`${id}/${arch}/meta.json: ${(e as Error).message}`);
      }
    }
  }
  return problems;
}

describe('kill points of the real CLI', () => {
  it(`buildfetch: ${RUNS} kills leave no corrupt workdir and the re-run completes`, async () => {
    await using src = await tempDir();
    await using store = await tempDir();
    await using wd = await tempWorkdir();
    await makeBuild(src.dir, { artifacts: { ostree: 3 * 1024 * 1024, qemu: 6 * 1024 * 1024 } });
    await buildUpload({ workdir: src.dir, url: store.dir });
    const r = await killAtRandomMoments({
      argv: [process.execPath, COSA, 'buildfetch', '--url', store.dir, '--arch', 'x86_64', '--artifact', 'all', '--force'],
      cwd: wd.dir,
      runs: RUNS,
      maxDelayMs: 1500,
      reset: async () => {
        await rm(join(wd.dir, 'builds'), { recursive: true, force: true });
      },
      check: async () => {
        const p = await workdirProblems(wd.dir);
        const leftovers = (await readdir(join(wd.dir, 'builds'), { recursive: true }).catch(() => [] as string[])).filter((n) => String(n).includes('partial'));
        return [...p, ...leftovers.map((n) => `partial file in builds/: ${String(n)}`)];
      },
    });
    console.info(`buildfetch kill runs: ${JSON.stringify({ runs: r.runs, killed: r.killed, corrupt: r.afterKill.length, rerunFailed: r.afterRerun.length })}`);
    expect(r.afterKill).toEqual([]);
    expect(r.afterRerun).toEqual([]);
  });

  it(`compress: ${RUNS} kills leave no corrupt workdir and the re-run completes`, async () => {
    await using wd = await tempWorkdir();
    await using pristine = await tempDir();
    await makeBuild(pristine.dir, { artifacts: { ostree: 1024 * 1024, qemu: 8 * 1024 * 1024, metal: 8 * 1024 * 1024 } });
    const r = await killAtRandomMoments({
      argv: [process.execPath, COSA, 'compress', '--compressor', 'gzip'],
      cwd: wd.dir,
      runs: RUNS,
      maxDelayMs: 2500,
      reset: async () => {
        await rm(join(wd.dir, 'builds'), { recursive: true, force: true });
        await cp(join(pristine.dir, 'builds'), join(wd.dir, 'builds'), { recursive: true, verbatimSymlinks: true });
      },
      check: () => workdirProblems(wd.dir),
    });
    console.info(`compress kill runs: ${JSON.stringify({ runs: r.runs, killed: r.killed, corrupt: r.afterKill.length, rerunFailed: r.afterRerun.length })}`);
    expect(r.afterKill).toEqual([]);
    expect(r.afterRerun).toEqual([]);
  });
});
