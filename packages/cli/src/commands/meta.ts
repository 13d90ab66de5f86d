import { getImagePath, getMetaValue, readBuildMeta, setMetaValues } from '@cosa/core';
import { CosaError, stableStringify } from '@cosa/schema';
import type { RegisterCommand } from '../_context.js';
import { collect } from './_util.js';

interface MetaOpts {
  build?: string;
  arch?: string;
  get?: string;
  getValue?: string;
  set?: string[];
  dump?: boolean;
  imagePath?: string;
}

/** `cosa meta [--build ID] [--arch A] --get K | --set K=V | --dump | --image-path NAME` */
export const registerMeta: RegisterCommand = (program, ctx) => {
  program
    .command('meta')
    .description("Read or edit a build's meta.json (keys are dotted paths: images.qemu.path, coreos-assembler.basearch)")
    .option('--build <id>', 'build id (default: latest)')
    .option('--arch <arch>', 'architecture (default: the host arch)')
    .option('--get <key>', 'print the value of a key')
    .option('--get-value <key>', 'print only the value of a key')
    .option('--set <key=value>', 'set a key (repeatable); the result is validated before it is written', collect)
    .option('--dump', 'print the whole meta.json')
    .option('--image-path <name>', 'print the absolute path of artifact images.<name>')
    .option('--json', 'print the result as JSON')
    .action(async (opts: MetaOpts, cmd) => {
      const c = ctx(cmd);
      if (opts.getValue !== undefined && opts.get === undefined) opts.get = opts.getValue;
      else if (opts.getValue !== undefined) throw new CosaError('COSA_USAGE', '--get and --get-value exclude each other');
      const modes = [opts.get !== undefined, opts.set !== undefined, opts.dump === true, opts.imagePath !== undefined].filter(Boolean).length;
      if (modes !== 1) throw new CosaError('COSA_USAGE', 'exactly one of --get, --set, --dump, --image-path is required');
      const target = { workdir: c.cwd, ...(opts.build !== undefined ? { build: opts.build } : {}), ...(opts.arch !== undefined ? { arch: opts.arch } : {}) };
      if (opts.get !== undefined) {
        const { key, value } = await getMetaValue({ ...target, key: opts.get });
        if (c.json) c.printJson({ key, value });
        else if (opts.getValue !== undefined) c.print(typeof value === 'string' ? value : JSON.stringify(value));
        else c.print(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
      } else if (opts.set !== undefined) {
        const r = await setMetaValues({ ...target, set: opts.set });
        if (c.json) c.printJson({ build: r.id, arch: r.arch, path: r.path });
        else c.print(`Updated ${r.path}`);
      } else if (opts.dump) {
        const { meta } = await readBuildMeta(target);
        if (c.json) c.printJson({ meta });
        else c.stdout.write(stableStringify(meta));
      } else if (opts.imagePath !== undefined) {
        const path = await getImagePath({ ...target, name: opts.imagePath });
        if (c.json) c.printJson({ name: opts.imagePath, path });
        else c.print(path);
      }
    });
};
