import { Option } from 'commander';
import { build, planBuild } from '@cosa/core';
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
    .option('--delay-meta-merge', 'images added later go to meta.<platform>.json until cosa meta --finalize')
    .option('--vm', 'write disk images inside the supermin VM')
    .option('--direct', 'write disk images on the host (root with loop devices)')
    .option('--wait', 'wait for another build in this workdir instead of failing')
    .option('--dry-run', 'print the plan (kind of build, what changed, build id) and write nothing')
    .option('--json', 'print progress as JSON Lines and the result as JSON')
    .action(async (targets: string[], o: { dryRun?: boolean; force?: boolean; forceNocache?: boolean; forceImage?: boolean; skipPrune?: boolean; prune?: boolean; version?: string; parentBuild?: string; strict?: boolean; delayMetaMerge?: boolean; vm?: boolean; direct?: boolean; wait?: boolean }, cmd) => {
      const c = ctx(cmd);
      if (o.vm && o.direct) {
        const { CosaError } = await import('@cosa/schema');
        throw new CosaError('COSA_USAGE', '--vm and --direct exclude each other');
      }
      const common = {
        workdir: c.cwd,
        targets,
        ...(o.force || o.forceNocache ? { force: true } : {}),
        ...(o.forceNocache ? { forceNocache: true } : {}),
        ...(o.forceImage ? { forceImage: true } : {}),
        ...(o.skipPrune || o.prune === false ? { skipPrune: true } : {}),
        ...(o.version ? { version: o.version } : {}),
        ...(o.parentBuild ? { parentBuild: o.parentBuild } : {}),
        ...(o.strict ? { strict: true } : {}),
        ...(o.delayMetaMerge ? { delayMetaMerge: true } : {}),
        executor: o.vm ? ('vm' as const) : o.direct ? ('direct' as const) : ('auto' as const),
        signal: c.signal,
        onProgress: c.onProgress,
      };
      if (o.dryRun) {
        const p = await planBuild(common);
        if (c.json) {
          c.printJson({ dryRun: true, kind: p.kind, reason: p.reason, changes: p.changes, buildId: p.buildId, arch: p.arch, inputHash: p.inputHash, previous: p.previous?.buildid ?? null });
          return;
        }
        c.print(p.kind === 'unchanged' ? `No changes since build ${p.buildId} (${p.arch}): nothing to build` : `Would make a ${p.kind} build ${p.buildId} (${p.arch}): ${p.reason}`);
        for (const line of p.changes) c.print(`  changed: ${line}`);
        return;
      }
      const r = await build({ ...common, ...(o.wait ? { lockWaitMs: 6 * 3600_000 } : {}) });
      if (c.json) {
        c.printJson({ status: r.status, kind: r.kind, buildId: r.buildId, arch: r.arch, buildDir: r.buildDir, artifacts: r.artifacts, reason: r.reason, changes: r.changes, inputHash: r.inputHash, durationMs: r.durationMs });
        return;
      }
      // "No changes since build X" went out as a progress message; still say where the build is.
      if (r.status === 'unchanged') c.print(`Build ${r.buildId} (${r.arch}) is up to date`);
      else c.print(`Build ${r.buildId} (${r.arch}) done in ${(r.durationMs / 1000).toFixed(1)}s (${r.reason})`);
      if (r.status === 'built') for (const line of r.changes) c.print(`  changed: ${line}`);
      for (const [k, p] of Object.entries(r.artifacts)) c.print(`  ${k.padEnd(8)} ${p}`);
    });
};
