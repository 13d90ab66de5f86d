import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, sweepStaleTempDirs } from '@cosa/schema/internal';

let dir: string;
const savedTmp = process.env.TMPDIR;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cosa-sweep-'));
});
afterEach(async () => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  await rm(dir, { recursive: true, force: true });
});

/** A real process that makes `<prefix><its pid>-abcdef` in `parent` and is then SIGKILLed (no cleanup runs). */
async function killedRunDir(parent: string, prefix: string): Promise<{ name: string; pid: number }> {
  const child = spawn(process.execPath, ['-e', `require('fs').mkdirSync(require('path').join(process.argv[1], ${JSON.stringify(prefix)} + process.pid + '-abcdef', 'disk'), { recursive: true }); console.log('ready'); setInterval(() => {}, 1000);`, parent], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`child exited early (${c})`)));
  });
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  return { name: `${prefix}${child.pid}-abcdef`, pid: child.pid! };
}

describe('sweep of temp dirs left by killed runs', () => {
  it('removes the dirs of killed processes and only those, only with our prefixes', async () => {
    const killed = await killedRunDir(dir, 'cosa-boot-');
    const killedKola = await killedRunDir(dir, 'cosa-kola-');
    const killedOther = await killedRunDir(dir, 'other-tool-');
    // A live process (a sleeping child) and this one: their dirs are in use.
    const live = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const keep = [
        killedOther.name,
        `cosa-boot-${live.pid}-abcdef`,
        `cosa-run-${process.pid}-abcdef`,
        // Names without a PID in them (older cosa, tests' own prefixes) are never guessed at.
        'cosa-boot-cleanup-abcdef',
        'cosa-boot-abcdef',
      ];
      for (const k of keep.slice(1)) await mkdir(join(dir, k));
      // A file, not a dir, under a killed PID's name: not ours.
      await writeFile(join(dir, `cosa-run-${killed.pid}-zzzzzz`), 'x');
      keep.push(`cosa-run-${killed.pid}-zzzzzz`);

      expect(await readdir(dir)).toEqual(expect.arrayContaining([killed.name, killedKola.name]));
      const removed = await sweepStaleTempDirs(dir);
      expect(removed.sort()).toEqual([killed.name, killedKola.name].sort());
      expect((await readdir(dir)).sort()).toEqual(keep.sort());
    } finally {
      live.kill('SIGKILL');
    }
  });

  it('makeTempDir names the dir after this process and sweeps os.tmpdir() on its first call', async () => {
    const killed = await killedRunDir(dir, 'cosa-run-');
    process.env.TMPDIR = dir;
    const made = await makeTempDir('cosa-boot-');
    expect(dirname(made)).toBe(dir);
    expect(basename(made)).toMatch(new RegExp(`^cosa-boot-${process.pid}-[A-Za-z0-9]{6}$`));
    expect(await readdir(dir)).toEqual([basename(made)]);
    expect(killed.name).not.toBe(basename(made));
  });
});
