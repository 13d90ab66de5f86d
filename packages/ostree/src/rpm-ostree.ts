/** The rpm-ostree composer (wrapper over `rpm-ostree compose tree`). */
import { CosaError } from '@cosa/schema';
import type { Composer } from './composer.js';

/** Creates the rpm-ostree composer. */
export function createRpmOstreeComposer(): Composer {
  const nope = () => Promise.reject(new CosaError('COSA_COMPOSE_FAILED', 'rpm-ostree composer: not implemented yet'));
  return { name: 'rpm-ostree', version: nope, inputHash: nope, compose: nope, fetch: nope };
}
