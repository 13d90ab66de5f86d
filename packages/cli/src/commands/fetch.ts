import { fetchPackages } from '@cosa/core';
import type { RegisterCommand } from '../_context.js';

/** `cosa fetch`. */
export const registerFetch: RegisterCommand = (program, ctx) => {
  program
    .command('fetch')
    .description('Download the packages the manifest needs into cache/ so that `cosa build` works offline')
    .option('--strict', 'only locked packages')
    .option('--json', 'print progress as JSON Lines')
    .action(async (o: { strict?: boolean }, cmd) => {
      const c = ctx(cmd);
      const r = await fetchPackages({ workdir: c.cwd, ...(o.strict ? { strict: true } : {}), signal: c.signal, onProgress: c.onProgress });
      if (c.json) c.printJson({ composer: r.composer });
      else c.print(`Fetched packages (${r.composer}) into cache/`);
    });
};
