import { prune } from '@cosa/core';
import type { RegisterCommand } from '../_context.js';
import { collect, parseCount, quietProgress } from './_util.js';

/** `cosa prune [--keep-last-n N] [--build ID…] [--dry-run]` */
export const registerPrune: RegisterCommand = (program, ctx) => {
  program
    .command('prune')
    .description('Delete old builds: keep tagged builds and the newest N untagged ones (default 3)')
    .option('--keep-last-n <n>', 'untagged builds to keep (0 keeps all)', parseCount)
    .option('--build <id>', 'delete exactly this build (repeatable; refused for tagged or unknown builds)', collect)
    .option('--dry-run', 'only print what would be deleted')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { keepLastN?: number; build?: string[]; dryRun?: boolean }, cmd) => {
      const c = ctx(cmd);
      const onProgress = quietProgress(c);
      const r = await prune({
        workdir: c.cwd,
        dryRun: opts.dryRun === true,
        signal: c.signal,
        ...(opts.keepLastN !== undefined ? { keepLastN: opts.keepLastN } : {}),
        ...(opts.build !== undefined ? { builds: opts.build } : {}),
        ...(onProgress ? { onProgress } : {}),
      });
      if (c.json) return c.printJson(r);
      for (const t of r.tagged) c.print(`Skipping tagged build ${t.id} (${t.tags.join(', ')})`);
      for (const id of r.deleted) c.print(r.dryRun ? `Would prune build ${id}` : `Pruned build ${id}`);
    });
};
