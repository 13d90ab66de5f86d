import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serializeBuildsJson, serializeMetaJson, type BuildsJson, type MetaJson } from '@cosa/schema';

/** A temp dir removed by `cleanup()`. */
export async function tempDir(prefix = 'cosa-store-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes a fake build into a workdir: random artifacts, meta.json, commitmeta.json, builds.json, latest. */
export async function makeBuild(
  workdir: string,
  options: { id?: string; arch?: string; artifacts?: Record<string, number>; name?: string; extraFiles?: Record<string, string> } = {},
): Promise<{ id: string; arch: string; dir: string; meta: MetaJson }> {
  const id = options.id ?? '42.20261126.0';
  const arch = options.arch ?? 'x86_64';
  const name = options.name ?? 'testos';
  const dir = join(workdir, 'builds', id, arch);
  await mkdir(dir, { recursive: true });
  await mkdir(join(workdir, 'tmp'), { recursive: true });
  const images: Record<string, { path: string; sha256: string; size: number; 'skip-compression'?: boolean }> = {};
  const suffix: Record<string, string> = { ostree: 'ostree.%.tar', qemu: 'qemu.%.qcow2', metal: 'metal.%.raw', 'live-iso': 'live-iso.%.iso' };
  for (const [key, size] of Object.entries(options.artifacts ?? { ostree: 4096, qemu: 2048 })) {
    const file = `${name}-${id}-${(suffix[key] ?? `${key}.%.img`).replace('%', arch)}`;
    const data = randomBytes(size);
    await writeFile(join(dir, file), data);
    images[key] = { path: file, sha256: createHash('sha256').update(data).digest('hex'), size };
  }
  const meta = {
    buildid: id,
    name,
    'ostree-commit': createHash('sha256').update(`${id}/${arch}`).digest('hex'),
    'ostree-timestamp': '2026-11-26T00:00:00Z',
    'ostree-version': id,
    'coreos-assembler.basearch': arch,
    'coreos-assembler.build-timestamp': '2026-11-26T00:00:00Z',
    images,
  } as MetaJson;
  await writeFile(join(dir, 'meta.json'), serializeMetaJson(meta));
  await writeFile(join(dir, 'commitmeta.json'), JSON.stringify({ version: id }));
  await writeFile(join(dir, `manifest-lock.generated.${arch}.json`), JSON.stringify({ packages: {} }));
  for (const [f, text] of Object.entries(options.extraFiles ?? {})) await writeFile(join(dir, f), text);
  const buildsPath = join(workdir, 'builds', 'builds.json');
  let builds: BuildsJson;
  try {
    builds = JSON.parse(await readFile(buildsPath, 'utf8')) as BuildsJson;
  } catch {
    builds = { 'schema-version': '1.0.0', builds: [] };
  }
  const entry = builds.builds.find((b) => b.id === id);
  if (entry) entry.arches.push(arch);
  else builds.builds.unshift({ id, arches: [arch] });
  await writeFile(buildsPath, serializeBuildsJson(builds));
  await rm(join(workdir, 'builds', 'latest'), { force: true });
  await symlink(id, join(workdir, 'builds', 'latest'));
  return { id, arch, dir, meta };
}

/** sha256 of a file. */
export async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}
