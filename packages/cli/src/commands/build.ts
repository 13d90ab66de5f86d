import { Option } from 'commander';
import { build } from '@cosa/core';
import type { RegisterCommand } from '../_context.js';

/** `cosa build [TARGET…]`. */
export const registerBuild: RegisterCommand = (program, ctx) => {
  program
    .command('build')
    .description('Compose the OSTree commit and write disk images as a new build (nothing when the inputs did not change)')
    .argument('[targets...]', 'ostree (commit only), qemu (default), or any buildextend platform (metal, aws, …: derived from the qemu disk)')
    .option('-f, --force', 'build even if the inputs did not change (unchanged inputs: a new commit reusing the previous tree)')
    .option('--force-nocache', 'with --force: compose the tree again even when the inputs did not change')
    .option('--force-image', 'write new images (reusing the commit) even if the image inputs did not change')
    .option('--skip-prune', 'keep every build (default: keep the last 3 + tagged)')
    .addOption(new Option('--no-prune', 'same as --skip-prune').hideHelp())
    .option('--version <version>', 'use this version (build id) instead of the automatic one')
    .option('--parent-build <id>', 'diff against this build instead of the latest')
    .option('--strict', 'fail on unknown manifest keys and unlocked packages')
    .option('--vm', 'write disk images inside the supermin VM')
    .option('--direct', 'write disk images on the host (root with loop devices)')
    .option('--wait', 'wait for another build in this workdir instead of failing')
    .option('--json', 'print progress as JSON Lines and the result as JSON')
    .action(async (targets: string[], o: { force?: boolean; forceNocache?: boolean; forceImage?: boolean; skipPrune?: boolean; prune?: boolean; version?: string; parentBuild?: string; strict?: boolean; vm?: boolean; direct?: boolean; wait?: boolean }, cmd) => {
      const c = ctx(cmd);
      if (o.vm && o.direct) {
        const { CosaError } = await import('@cosa/schema');
        throw new CosaError('COSA_USAGE', '--vm and --direct exclude each other');
      }
      const r = await build({
        workdir: c.cwd,
        targets,
        ...(o.force || o.forceNocache ? { force: true } : {}),
        ...(o.forceNocache ? { forceNocache: true } : {}),
        ...(o.forceImage ? { forceImage: true } : {}),
        ...(o.skipPrune || o.prune === false ? { skipPrune: true } : {}),
        ...(o.version ? { version: o.version } : {}),
        ...(o.parentBuild ? { parentBuild: o.parentBuild } : {}),
        ...(o.strict ? { strict: true } : {}),
        executor: o.vm ? 'vm' : o.direct ? 'direct' : 'auto',
        ...(o.wait ? { lockWaitMs: 6 * 3600_000 } : {}),
        signal: c.signal,
        onProgress: c.onProgress,
      });
      if (c.json) {
        c.printJson({ status: r.status, buildId: r.buildId, arch: r.arch, buildDir: r.buildDir, artifacts: r.artifacts, reason: r.reason, durationMs: r.durationMs });
        return;
      }
      // "No changes since build X" went out as a progress message; still say where the build is.
      if (r.status === 'unchanged') c.print(`Build ${r.buildId} (${r.arch}) is up to date`);
      else c.print(`Build ${r.buildId} (${r.arch}) done in ${(r.durationMs / 1000).toFixed(1)}s (${r.reason})`);
      for (const [k, p] of Object.entries(r.artifacts)) c.print(`  ${k.padEnd(8)} ${p}`);
    });
};
