import { finalizeMeta, getImagePath, getMetaValue, mergeArtifactJson, readBuildMeta, setMetaValues } from '@cosa/core';
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
  artifactJson?: string[];
  artifact?: string;
  finalize?: boolean;
  clean?: boolean;
}

/**
 * `cosa meta [--build ID] [--arch A] --get K | --set K=V | --dump | --image-path NAME |
 * --artifact-json FILE [--artifact NAME] | --finalize [--no-clean]`
 */
export const registerMeta: RegisterCommand = (program, ctx) => {
  program
    .command('meta')
    .description("Read or edit a build's meta.json (keys are dotted paths: images.qemu.path, coreos-assembler.basearch)")
    .option('--build <id>', 'build id (default: latest)')
    .option('--arch <arch>', 'architecture (default: the host arch)')
    .option('--get <key>', 'print the value of a key')
    .option('--get-value <key>', 'print only the value of a key (for scripts)')
    .option('--set <key=value>', 'set a key (repeatable); the result is validated before it is written', collect)
    .option('--dump', 'print the whole meta.json')
    .option('--image-path <name>', 'print the absolute path of artifact images.<name>')
    .option('--artifact-json <file>', 'merge a JSON file (meta.json or a fragment) into meta.json by the merge rules (repeatable); with the delayed merge into meta.<artifact>.json', collect)
    .option('--artifact <name>', 'with --artifact-json and the delayed merge: the <name> of meta.<name>.json (default: the time in ns)')
    .option('--finalize', 'fold the meta.<artifact>.json files of a delayed-merge build into meta.json')
    .option('--no-clean', 'with --finalize: keep the meta.<artifact>.json files')
    .option('--json', 'print the result as JSON')
    .action(async (opts: MetaOpts, cmd) => {
      const c = ctx(cmd);
      const modes = [opts.get !== undefined, opts.getValue !== undefined, opts.set !== undefined, opts.dump === true, opts.imagePath !== undefined, opts.artifactJson !== undefined, opts.finalize === true].filter(Boolean).length;
      if (modes !== 1) throw new CosaError('COSA_USAGE', 'exactly one of --get, --get-value, --set, --dump, --image-path, --artifact-json, --finalize is required');
      const target = { workdir: c.cwd, ...(opts.build !== undefined ? { build: opts.build } : {}), ...(opts.arch !== undefined ? { arch: opts.arch } : {}) };
      if (opts.getValue !== undefined) {
        const { key, value } = await getMetaValue({ ...target, key: opts.getValue });
        if (c.json) c.printJson({ key, value });
        else c.print(typeof value === 'string' ? value : JSON.stringify(value));
      } else if (opts.get !== undefined) {
        const { key, value } = await getMetaValue({ ...target, key: opts.get });
        if (c.json) c.printJson({ key, value });
        else c.print(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
      } else if (opts.set !== undefined) {
        const r = await setMetaValues({ ...target, set: opts.set });
        if (c.json) c.printJson({ build: r.id, arch: r.arch, path: r.path });
        else c.print(`Updated ${r.path}`);
      } else if (opts.dump) {
        const { meta } = await readBuildMeta(target);
        if (c.json) c.printJson({ meta });
        else c.stdout.write(stableStringify(meta));
      } else if (opts.artifactJson !== undefined) {
        const written = await mergeArtifactJson({ ...target, files: opts.artifactJson, ...(opts.artifact !== undefined ? { artifact: opts.artifact } : {}) });
        if (c.json) c.printJson({ written });
        else for (const w of written) c.print(`Wrote ${w}`);
      } else if (opts.finalize) {
        const r = await finalizeMeta({ ...target, noClean: opts.clean === false });
        if (c.json) c.printJson(r);
        else if (!r.delayed) c.print('coreos-assembler.delayed-meta-merge is not set, skipping merge');
        else c.print(`Finalized ${r.merged.length} meta.<artifact>.json into ${r.path}`);
      } else if (opts.imagePath !== undefined) {
        const path = await getImagePath({ ...target, name: opts.imagePath });
        if (c.json) c.printJson({ name: opts.imagePath, path });
        else c.print(path);
      }
    });
};
