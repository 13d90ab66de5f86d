import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterEach } from 'vitest';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A temp dir holding `files` (path → content); removed after the test. */
export async function configDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cosa-config-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

/** A temp copy of a directory; removed after the test. */
export async function copyDir(src: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cosa-config-'));
  dirs.push(dir);
  await cp(src, dir, { recursive: true });
  return dir;
}

/** Every file under `dir` with its content and mtime, to prove a call changed nothing on disk. */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out[relative(dir, p)] = `${(await stat(p)).mtimeMs}:${await readFile(p, 'utf8')}`;
    }
  };
  await walk(dir);
  return out;
}

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */
export async function caught(fn: () => Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await fn();
  } catch (e) {
    return e as Error & Record<string, unknown>;
  }
  throw new Error('expected an error, none was thrown');
}
