import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** Root of the caches slow tests share on one machine: $COSA_TEST_CACHE or /var/tmp/cosa-test-cache. */
export function testCacheRoot(): string {
  const dir = process.env.COSA_TEST_CACHE ?? '/var/tmp/cosa-test-cache';
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * The workdir `cache/` every slow test that composes the bundled example uses (apt metadata,
 * .debs, base trees, initramfs): the example is bootstrapped once per machine, not per test.
 */
export function testWorkdirCache(): string {
  const dir = join(testCacheRoot(), 'workdir-cache');
  mkdirSync(dir, { recursive: true });
  return dir;
}
