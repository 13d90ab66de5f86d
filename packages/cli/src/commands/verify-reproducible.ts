import { verifyReproducible, type VerifyReproducibleResult } from '@cosa/core';
import { CosaError } from '@cosa/schema';
import type { RegisterCommand } from '../_context.js';

function formatResult(r: VerifyReproducibleResult): string[] {
  const lines = [
    `Build ${r.build} (${r.arch}): ${r.reproducible ? 'reproducible' : 'NOT reproducible'} (rebuilt in ${(r.rebuildMs / 1000).toFixed(1)} s, ${(r.durationMs / 1000).toFixed(1)} s in all)`,
    `  commit  ${r.commit.identical ? 'identical' : `differs: ${r.commit.original} vs ${r.commit.rebuilt}`}`,
  ];
  for (const a of r.artifacts) {
    if (a.identical) {
      lines.push(`  ${a.key.padEnd(7)} identical (${a.path})`);
      continue;
    }
    const at = a.firstDifference !== undefined ? ` at byte ${a.firstDifference}` : '';
    lines.push(`  ${a.key.padEnd(7)} differs${at}${a.where ? ` in ${a.where}` : ''} (${a.path})`);
    for (const g of a.regions ?? []) lines.push(`          ${g.region}: ${g.bytes} bytes differ${g.size ? ` of ${g.size}` : ''}, first at ${g.firstOffset}`);
    if (a.diffoscopeReport) lines.push(`          diffoscope report: ${a.diffoscopeReport}`);
  }
  return lines;
}

/** `cosa verify-reproducible [--build ID] [--keep] [--json]` */
export const registerVerifyReproducible: RegisterCommand = (program, ctx) => {
  program
    .command('verify-reproducible')
    .description('Rebuild a build in a scratch workdir and check that the commit and every artifact come out identical')
    .option('--build <id>', 'the build to verify (default: latest)')
    .option('--arch <arch>', 'architecture (default: the host\'s)')
    .option('--keep', 'keep the scratch workdir (under tmp/) for inspection')
    .option('--vm', 'write disk images inside the supermin VM')
    .option('--direct', 'write disk images on the host (root with loop devices)')
    .option('--json', 'print the comparison as JSON')
    .action(async (o: { build?: string; arch?: string; keep?: boolean; vm?: boolean; direct?: boolean }, cmd) => {
      const c = ctx(cmd);
      if (o.vm && o.direct) throw new CosaError('COSA_USAGE', '--vm and --direct exclude each other');
      const r = await verifyReproducible({
        workdir: c.cwd,
        ...(o.build !== undefined ? { build: o.build } : {}),
        ...(o.arch !== undefined ? { arch: o.arch } : {}),
        executor: o.vm ? 'vm' : o.direct ? 'direct' : 'auto',
        keepScratch: o.keep === true,
        signal: c.signal,
        onProgress: c.onProgress,
      });
      if (c.json) c.printJson(r);
      else for (const line of formatResult(r)) c.print(line);
      if (!r.reproducible) c.setExitCode(1);
    });
};
