import { cleanWorkdir } from '@cosa/core';
import type { RegisterCommand } from '../_context.js';

/** `cosa clean [--all]` */
export const registerClean: RegisterCommand = (program, ctx) => {
  program
    .command('clean')
    .description('Delete every build and the contents of tmp/ (with --all also cache/)')
    .option('--all', 'also empty cache/')
    .option('--json', 'print the removed paths as JSON')
    .action(async (opts: { all?: boolean }, cmd) => {
      const c = ctx(cmd);
      const removed = await cleanWorkdir({ workdir: c.cwd, all: opts.all === true });
      if (c.json) c.printJson({ removed });
      else c.print(`Removed ${removed.length} entr${removed.length === 1 ? 'y' : 'ies'} from builds/, tmp/${opts.all ? ', cache/' : ''}`);
    });
};
