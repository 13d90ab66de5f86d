import { openWorkdir, type WorkdirLike } from './workdir.js';
import { hostArch } from './_paths.js';

/** One build as `cosa list` shows it. */
export interface BuildSummary {
  id: string;
  arches: string[];
  /** The arch whose meta.json was read (the host's when the build has it). */
  arch: string;
  /** False when the build's meta.json is not in this workdir (e.g. only builds.json was fetched). */
  local: boolean;
  /** `coreos-assembler.build-timestamp` (else `ostree-timestamp`). */
  timestamp?: string;
  /** Keys of `images`. */
  artifacts: string[];
  /** From `coreos-assembler.container-config-git`. */
  config?: { commit: string; branch?: string; dirty: boolean };
  tags: string[];
}

/** `cosa list`: every build of builds.json, newest first, with what its meta.json says. */
export async function listBuilds(options: { workdir: WorkdirLike; arch?: string }): Promise<BuildSummary[]> {
  const wd = await openWorkdir(options.workdir);
  const data = await wd.builds.read();
  const tags = new Map<string, string[]>();
  for (const t of data.tags ?? []) tags.set(t.target, [...(tags.get(t.target) ?? []), t.name]);
  const want = options.arch ?? hostArch();
  // Read every meta.json at once: listing is I/O-bound.
  return Promise.all(
    data.builds.map(async (b) => {
      const arch = b.arches.includes(want) ? want : (b.arches[0] ?? want);
      const summary: BuildSummary = { id: b.id, arches: [...b.arches], arch, local: false, artifacts: [], tags: tags.get(b.id) ?? [] };
      if (!(await wd.builds.hasMeta(b.id, arch))) return summary;
      const m = await wd.builds.getMeta(b.id, arch);
      summary.local = true;
      summary.timestamp = m['coreos-assembler.build-timestamp'] ?? m['ostree-timestamp'];
      summary.artifacts = Object.keys(m.images ?? {});
      const git = m['coreos-assembler.container-config-git'];
      if (git) {
        summary.config = { commit: git.commit, dirty: (git.dirty ?? 'false') !== 'false' };
        if (git.branch !== undefined) summary.config.branch = git.branch;
      }
      return summary;
    }),
  );
}
