import { CosaError, type BuildTag } from '@cosa/schema';
import { openWorkdir, type WorkdirLike } from './workdir.js';
import { assertSegment, rfc3339Now } from './_paths.js';

/** `cosa tag list`: the tags of builds.json, in file order. */
export async function listTags(options: { workdir: WorkdirLike }): Promise<BuildTag[]> {
  const wd = await openWorkdir(options.workdir);
  return (await wd.builds.read()).tags ?? [];
}

/** Options of {@link updateTag}. */
export interface UpdateTagOptions {
  workdir: WorkdirLike;
  /** Tag name. */
  tag: string;
  /** Build the tag points at (default: the latest build). */
  build?: string;
  /** Free-form description stored with the tag. */
  description?: string;
  /** Allow a build that builds.json does not list. */
  force?: boolean;
}

/**
 * `cosa tag update`: creates tag `tag` or moves it to `build`, with a fresh `created` time.
 * `COSA_BUILD_NOT_FOUND` when the build is unknown (unless `force`).
 */
export async function updateTag(options: UpdateTagOptions): Promise<BuildTag> {
  if (options.tag.trim() === '') throw new CosaError('COSA_USAGE', 'tag name must not be empty');
  const wd = await openWorkdir(options.workdir);
  const { result } = await wd.builds.update((data) => {
    let target = options.build ?? data.builds[0]?.id;
    if (target === undefined) throw new CosaError('COSA_BUILD_NOT_FOUND', `no builds in ${wd.builds.file} to tag`);
    target = assertSegment(target, 'build id');
    if (!data.builds.some((b) => b.id === target) && !options.force) {
      throw new CosaError('COSA_BUILD_NOT_FOUND', `build ${target} is not in ${wd.builds.file}`, { hint: 'pass --force to tag it anyway' });
    }
    const tag: BuildTag = { name: options.tag, created: rfc3339Now(), target };
    if (options.description !== undefined) tag.description = options.description;
    const tags = data.tags ?? [];
    const i = tags.findIndex((t) => t.name === options.tag);
    if (i >= 0) tags[i] = tag;
    else tags.push(tag);
    data.tags = tags;
    return tag;
  });
  return result;
}

/** Options of {@link deleteTags}: one tag, or all of them. */
export type DeleteTagsOptions = { workdir: WorkdirLike } & ({ tag: string; all?: false } | { all: true; tag?: undefined });

/** `cosa tag delete`: removes one tag (`COSA_TAG_NOT_FOUND` when absent) or all; returns the removed tags. */
export async function deleteTags(options: DeleteTagsOptions): Promise<BuildTag[]> {
  const wd = await openWorkdir(options.workdir);
  const { result } = await wd.builds.update((data) => {
    const tags = data.tags ?? [];
    if (options.all) {
      data.tags = [];
      return tags;
    }
    const removed = tags.filter((t) => t.name === options.tag);
    if (removed.length === 0) throw new CosaError('COSA_TAG_NOT_FOUND', `no tag ${JSON.stringify(options.tag)} in ${wd.builds.file}`);
    data.tags = tags.filter((t) => t.name !== options.tag);
    return removed;
  });
  return result;
}
