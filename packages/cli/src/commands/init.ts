import { initWorkdir } from '@cosa/core';
import type { RegisterCommand } from '../_context.js';

/** `cosa init [--force] [--branch B] [--commit C] [--variant V] CONFIG` */
export const registerInit: RegisterCommand = (program, ctx) => {
  program
    .command('init')
    .description('Create a workdir in the current directory from a config (git URL, or an absolute path to link)')
    .argument('<config>', 'git URL to clone (--depth 1), or a local directory to symlink as src/config')
    .option('--force', 'allow a non-empty directory')
    .option('--branch <branch>', 'git branch to clone')
    .option('--commit <commit>', 'git commit to check out after cloning')
    .option('--variant <variant>', 'config variant: use manifest-<variant>.yaml')
    .option('--json', 'print the result as JSON')
    .action(async (config: string, opts: { force?: boolean; branch?: string; commit?: string; variant?: string }, cmd) => {
      const c = ctx(cmd);
      const wd = await initWorkdir({
        dir: c.cwd,
        config,
        force: opts.force === true,
        ...(opts.branch !== undefined ? { branch: opts.branch } : {}),
        ...(opts.commit !== undefined ? { commit: opts.commit } : {}),
        ...(opts.variant !== undefined ? { variant: opts.variant } : {}),
        signal: c.signal,
        onProgress: c.onProgress,
      });
      if (c.json) c.printJson({ workdir: wd.dir, config: wd.configDir, variant: opts.variant ?? null });
      else c.print(`Initialized cosa workdir in ${wd.dir}`);
    });
};
