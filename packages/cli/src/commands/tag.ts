import { deleteTags, listTags, updateTag } from '@cosa/core';
import { CosaError } from '@cosa/schema';
import type { RegisterCommand } from '../_context.js';

/** `cosa tag list | update --tag T [--build ID] [--description D] [--force] | delete (--tag T | --all)` */
export const registerTag: RegisterCommand = (program, ctx) => {
  const tag = program.command('tag').description('List, create, move or delete tags in builds.json (tagged builds are never pruned)');
  tag
    .command('list')
    .description('List the tags')
    .option('--json', 'print the tags as JSON')
    .action(async (_opts: object, cmd) => {
      const c = ctx(cmd);
      const tags = await listTags({ workdir: c.cwd });
      if (c.json) return c.printJson({ tags });
      if (tags.length === 0) return c.print('No tags found');
      for (const t of tags) {
        c.print(`name: ${t.name}`);
        c.print(`created: ${t.created}`);
        c.print(`target: ${t.target}`);
        if (t.description !== undefined) c.print(`description: ${t.description}`);
        c.print('');
      }
    });
  tag
    .command('update')
    .description('Create a tag or move it to a build')
    .requiredOption('--tag <name>', 'tag name')
    .option('--build <id>', 'build to tag (default: latest)')
    .option('--description <text>', 'description stored with the tag')
    .option('--force', 'tag a build that builds.json does not list')
    .option('--json', 'print the tag as JSON')
    .action(async (opts: { tag: string; build?: string; description?: string; force?: boolean }, cmd) => {
      const c = ctx(cmd);
      const t = await updateTag({
        workdir: c.cwd,
        tag: opts.tag,
        force: opts.force === true,
        ...(opts.build !== undefined ? { build: opts.build } : {}),
        ...(opts.description !== undefined ? { description: opts.description } : {}),
      });
      if (c.json) c.printJson({ tag: t });
      else c.print(`Tagged ${t.target} as ${t.name}`);
    });
  tag
    .command('delete')
    .description('Delete one tag, or all of them')
    .option('--tag <name>', 'tag to delete')
    .option('--all', 'delete every tag')
    .option('--json', 'print the deleted tags as JSON')
    .action(async (opts: { tag?: string; all?: boolean }, cmd) => {
      const c = ctx(cmd);
      if ((opts.tag !== undefined) === (opts.all === true)) throw new CosaError('COSA_USAGE', 'exactly one of --tag or --all is required');
      const removed = opts.all ? await deleteTags({ workdir: c.cwd, all: true }) : await deleteTags({ workdir: c.cwd, tag: opts.tag! });
      if (c.json) c.printJson({ deleted: removed });
      else for (const t of removed) c.print(`Deleted tag ${t.name} (${t.target})`);
    });
};
