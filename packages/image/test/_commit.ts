/**
 * A real bootable Debian OSTree commit for the image tests: the bundled example composed by the
 * Debian composer. Its caches (apt metadata, .debs, base tree, initramfs) are the ones every slow
 * test shares under $COSA_TEST_CACHE, so the example is bootstrapped once per machine.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDebianComposer } from '@cosa/ostree';
import { manifestSchema, parseYamlText, validate, withLock } from '@cosa/schema';
import { testWorkdirCache } from '@cosa/test-utils';

export interface TestCommit {
  repo: string;
  ref: string;
  commit: string;
  osname: string;
}

const example = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../examples/debian');
let memo: Promise<TestCommit> | undefined;

/** Composes (or reuses) the example commit into a bare-user repo under the test cache. */
export function debianTestCommit(): Promise<TestCommit> {
  memo ??= (async () => {
    const cacheDir = testWorkdirCache();
    const repo = join(cacheDir, '..', 'image-test-repo');
    const ref = 'cosa-debian/x86_64/stable';
    const manifest = validate(manifestSchema, parseYamlText(await readFile(join(example, 'manifest.yaml'), 'utf8'), 'manifest.yaml'), 'manifest.yaml');
    const r = await withLock(repo, () =>
      createDebianComposer().compose({
        manifest,
        configDir: example,
        files: [join(example, 'manifest.yaml')],
        cacheDir,
        tmpDir: join(cacheDir, '..', 'image-test-tmp'),
        repo,
        arch: 'x86_64',
        version: 'test.0',
        ref,
      }),
    );
    return { repo, ref, commit: r.commit, osname: 'cosa-debian' };
  })();
  return memo;
}
