/**
 * `@cosa/schema/internal`: what the other cosa packages share with this one but users do not
 * call — the one retry loop, among others. Not covered by semver.
 * @internal
 */
export { retry, nextRetryDelay, backoffDelay, retryMessage, retryWarning, type RetryOptions, type RetryInfo } from './retry.js';
