import { listBuilds, type BuildSummary } from '@cosa/core';
import type { RegisterCommand } from '../_context.js';

/** Formats an age like Python's `str(timedelta)` without microseconds: `2 days, 3:04:05`. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
  return days > 0 ? `${days} day${days === 1 ? '' : 's'}, ${hms}` : hms;
}

function render(builds: BuildSummary[], print: (l: string) => void, now = Date.now()): void {
  if (builds.length === 0) {
    print('No builds!');
    return;
  }
  for (const b of builds) {
    if (!b.local) {
      print('<missing builds locally>');
      break;
    }
    print(b.id);
    const ts = b.timestamp ?? '';
    const t = Date.parse(ts);
    print(`   Timestamp: ${ts}${Number.isNaN(t) ? '' : ` (${formatAge(now - t)} ago)`}`);
    print(`   Artifacts: ${b.artifacts.join(' ')}`);
    if (b.config) {
      let config = b.config.commit;
      if (b.config.branch !== undefined) config = `${b.config.branch} (${config.slice(0, 12)})`;
      if (b.config.dirty) config += ' (dirty)';
      print(`      Config: ${config}`);
    }
    if (b.tags.length > 0) print(`   Tags: ${b.tags.join(' ')}`);
    print('');
  }
}

/** `cosa list [--json]` */
export const registerList: RegisterCommand = (program, ctx) => {
  program
    .command('list')
    .description('List the builds of the workdir, newest first')
    .option('--arch <arch>', 'architecture whose meta.json to read (default: the host arch)')
    .option('--json', 'print the builds as JSON')
    .action(async (opts: { arch?: string }, cmd) => {
      const c = ctx(cmd);
      const builds = await listBuilds({ workdir: c.cwd, ...(opts.arch !== undefined ? { arch: opts.arch } : {}) });
      if (c.json) c.printJson({ builds });
      else render(builds, c.print);
    });
};
