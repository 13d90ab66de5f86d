import { buildExtend, compressBuild, decompressBuild, hostArch, listPlatforms, Workdir, type Compressor } from '@cosa/core';
import { CosaError, loadConfig } from '@cosa/schema';
import { join } from 'node:path';
import type { CommandContext, RegisterCommand } from '../_context.js';
import { addAwsUploadOptions, runAwsUpload, type AwsUploadFlags } from './aws.js';
import { collect } from './_util.js';
import { parsePositiveInt } from './_util.js';

type ExtendFlags = { build?: string; force?: boolean; parallel?: number; vm?: boolean; direct?: boolean };

async function extend(c: CommandContext, platforms: string[], o: ExtendFlags): Promise<void> {
  if (o.vm && o.direct) {
    throw new CosaError('COSA_USAGE', '--vm and --direct exclude each other');
  }
  const r = await buildExtend({
    workdir: c.cwd,
    platforms,
    ...(o.build ? { build: o.build } : {}),
    ...(o.force ? { force: true } : {}),
    ...(o.parallel ? { concurrency: o.parallel } : {}),
    executor: o.vm ? 'vm' : o.direct ? 'direct' : 'auto',
    signal: c.signal,
    onProgress: c.onProgress,
  });
  if (c.json) {
    c.printJson({ buildId: r.buildId, arch: r.arch, built: r.built.map((b) => ({ platform: b.platform, path: b.path, sha256: b.sha256, size: b.size })), skipped: r.skipped });
    return;
  }
  for (const b of r.built) c.print(`${b.platform}: ${b.path}`);
  for (const s of r.skipped) c.print(`${s}: already exists in build ${r.buildId} (use --force to rebuild)`);
}

/** `cosa buildextend-<platform>` for every platform, `cosa buildextend --platforms a,b`, `cosa compress`, `cosa decompress`. */
export const registerBuildExtend: RegisterCommand = (program, ctx) => {
  for (const p of listPlatforms()) {
    if (p === 'qemu') continue;
    const cmd = program
      .command(`buildextend-${p}`)
      .description(p === 'metal4k' ? 'Add the metal4k image to a build (a 4096-byte-sector disk written from its commit)' : `Add the ${p} image to a build (derived from the build's base disk)`)
      .option('--build <id>', 'the build (default: latest)')
      .option('--force', 'rebuild the image even if the build has it')
      .option('--json', 'print the result as JSON');
    if (p === 'metal4k') cmd.option('--vm', 'write the disk inside the supermin VM').option('--direct', 'write the disk on the host (root with loop devices)');
    // `buildextend-aws --upload …` is the original's spelling of `cosa imageupload-aws …`.
    if (p === 'aws') addAwsUploadOptions(cmd.option('--upload', 'also make an AMI of it (as cosa imageupload-aws; --force then replaces the AMI)'));
    cmd.action(async (o: ExtendFlags & AwsUploadFlags & { upload?: boolean }, c) => (o.upload ? runAwsUpload(ctx(c), o) : extend(ctx(c), [p], o)));
  }
  program
    .command('buildextend')
    .description('Add several platform images to a build, derived from one base disk concurrently')
    .requiredOption('--platforms <list>', 'comma-separated platforms, e.g. aws,azure,gcp')
    .option('--build <id>', 'the build (default: latest)')
    .option('--force', 'rebuild images the build already has')
    .option('--parallel <n>', 'how many at once (default 2)', parsePositiveInt)
    .option('--vm', 'write a disk that cannot be derived (metal4k) inside the supermin VM')
    .option('--direct', 'write it on the host (root with loop devices)')
    .option('--json', 'print the result as JSON')
    .action(async (o: ExtendFlags & { platforms: string }, cmd) =>
      extend(ctx(cmd), o.platforms.split(',').map((s) => s.trim()).filter(Boolean), o),
    );

  const buildDirOf = async (c: CommandContext, build?: string) => {
    const wd = await Workdir.open(c.cwd);
    const id = await wd.builds.resolve(build ?? 'latest', hostArch());
    return { wd, id, dir: join(wd.buildsDir, id) };
  };
  program
    .command('compress')
    .description('Compress the images of a build (resumable; meta.json written after each image)')
    .option('--build <id>', 'the build (default: latest)')
    .option('--artifact <name>', 'only this images key (repeatable)', collect)
    .option('--compressor <xz|gzip|zstd>', 'default: image.yaml compressor, else gzip')
    .option('--fast', 'fastest level')
    .option('--json', 'print the result as JSON')
    .action(async (o: { build?: string; artifact?: string[]; compressor?: string; fast?: boolean }, cmd) => {
      const c = ctx(cmd);
      const { wd, dir } = await buildDirOf(c, o.build);
      let compressor = o.compressor as Compressor | undefined;
      if (compressor && !['xz', 'gzip', 'zstd'].includes(compressor)) throw new CosaError('COSA_USAGE', `unknown compressor "${compressor}" (xz, gzip, zstd)`);
      if (!compressor) {
        const variant = await wd.configVariant();
        const cfg = await loadConfig({ configDir: wd.configDir, arch: hostArch(), ...(variant ? { variant } : {}) }).catch(() => undefined);
        compressor = cfg?.imageConfig.compressor;
      }
      const r = await compressBuild({ buildDir: dir, ...(o.artifact ? { artifacts: o.artifact } : {}), ...(compressor ? { compressor } : {}), ...(o.fast ? { fast: true } : {}), signal: c.signal, onProgress: c.onProgress });
      if (c.json) c.printJson(r);
      else for (const d of r.done) c.print(`${d.artifact}: ${d.from} → ${d.to} (${(d.fromSize / 1048576).toFixed(0)} → ${(d.toSize / 1048576).toFixed(0)} MiB)`);
    });
  for (const name of ['decompress', 'uncompress']) {
    program
      .command(name)
      .description('Decompress the images of a build (checks uncompressed-sha256)')
      .option('--build <id>', 'the build (default: latest)')
      .option('--artifact <name>', 'only this images key (repeatable)', collect)
      .option('--json', 'print the result as JSON')
      .action(async (o: { build?: string; artifact?: string[] }, cmd) => {
        const c = ctx(cmd);
        const { dir } = await buildDirOf(c, o.build);
        const r = await decompressBuild({ buildDir: dir, ...(o.artifact ? { artifacts: o.artifact } : {}), signal: c.signal, onProgress: c.onProgress });
        if (c.json) c.printJson(r);
        else for (const d of r.done) c.print(`${d.artifact}: ${d.from} → ${d.to}`);
      });
  }
};
