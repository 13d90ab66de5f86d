// Child process for the concurrency test: inserts builds into one builds.json (and merges into
// one meta.json) as fast as it can. argv: buildsDir prefix count [metaBuild]
import { BuildsDir } from '@cosa/core';

async function main(): Promise<void> {
  const [buildsDir, prefix, countText, metaBuild] = process.argv.slice(2);
  const builds = new BuildsDir(buildsDir!);
  for (let i = 0; i < Number(countText); i++) {
    await builds.insertBuild(`${prefix}.${i}`, 'x86_64');
    if (metaBuild) await builds.mergeMeta(metaBuild, 'x86_64', { pkgdiff: [`${prefix}-${i}`] });
  }
}
main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
