/** The dnf composer: RPM treefiles composed with `dnf --installroot` when rpm-ostree is absent. */
import { CosaError } from '@cosa/schema';
import type { Composer } from './composer.js';

/** Creates the dnf composer. */
export function createDnfComposer(): Composer {
  const nope = () => Promise.reject(new CosaError('COSA_COMPOSE_FAILED', 'dnf composer: not implemented yet'));
  return { name: 'dnf', version: nope, inputHash: nope, compose: nope, fetch: nope };
}
