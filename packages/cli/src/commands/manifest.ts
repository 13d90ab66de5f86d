import type { Command } from 'commander';
import { hostBasearch, loadWorkdirConfig, serializeManifest } from '@cosa/schema';
import type { RegisterCommand } from '../_context.js';

/** `cosa manifest flatten [--arch A] [--json] [--strict]`: the workdir's treefile, flattened. */
export const registerManifest: RegisterCommand = (program, ctx) => {
  const manifest = program.command('manifest').description("inspect the config's manifest (rpm-ostree treefile)");
  manifest
    .command('flatten')
    .description('print the manifest with includes resolved and variables substituted, for the workdir\'s variant')
    .option('--arch <arch>', 'base architecture', hostBasearch())
    .option('--strict', 'fail on keys no treefile defines')
    .option('--json', 'print JSON (sorted keys) instead of YAML')
    .action(async (opts: { arch: string; strict?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const config = await loadWorkdirConfig({ workdir: c.cwd, arch: opts.arch, strict: opts.strict === true });
      if (config.unknownKeys.length > 0) c.stderr.write(`warning: unknown manifest keys (kept): ${config.unknownKeys.join(', ')}\n`);
      if (c.json) c.printJson({ manifest: JSON.parse(serializeManifest(config.manifest, 'json')) as unknown });
      else c.stdout.write(serializeManifest(config.manifest, 'yaml'));
    });
};
