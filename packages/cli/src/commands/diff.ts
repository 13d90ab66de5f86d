import { diffBuilds, formatBuildDiff } from '@cosa/core';
import { CosaError } from '@cosa/schema';
import type { RegisterCommand } from '../_context.js';
import { quietProgress } from './_util.js';

/** `cosa diff [--from A] [--to B] [--pkg|--files] [--json]` */
export const registerDiff: RegisterCommand = (program, ctx) => {
  program
    .command('diff')
    .description('Show the package and file changes between two builds (default: the latest and the one before it)')
    .option('--from <id>', 'the older build (default: the build before --to)')
    .option('--to <id>', 'the newer build (default: latest)')
    .option('--arch <arch>', 'architecture (default: the host\'s)')
    .option('--pkg', 'only package changes')
    .option('--files', 'only file changes (ostree diff of the two commits)')
    .option('--json', 'print the changes as JSON')
    .action(async (opts: { from?: string; to?: string; arch?: string; pkg?: boolean; files?: boolean }, cmd) => {
      const c = ctx(cmd);
      if (opts.pkg && opts.files) throw new CosaError('COSA_USAGE', '--pkg and --files exclude each other (give neither for both)');
      const progress = quietProgress(c);
      const d = await diffBuilds({
        workdir: c.cwd,
        ...(opts.from !== undefined ? { from: opts.from } : {}),
        ...(opts.to !== undefined ? { to: opts.to } : {}),
        ...(opts.arch !== undefined ? { arch: opts.arch } : {}),
        ...(opts.pkg ? { packages: true, files: false } : {}),
        ...(opts.files ? { files: true, packages: false } : {}),
        signal: c.signal,
        ...(progress ? { onProgress: progress } : {}),
      });
      if (c.json) return c.printJson(d);
      for (const line of formatBuildDiff(d)) c.print(line);
    });
};
