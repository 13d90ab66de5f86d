import { randomBytes } from 'node:crypto';
import { CosaError, HttpStatusError, parseBuildsJson, serializeBuildsJson, type BuildEntry, type BuildsJson, type BuildTag, type OnProgress } from '@cosa/schema';
import type { BuildStore } from './store.js';
import { isCosaConflict, readObjectText } from './_io.js';
import { backoffDelay, retry } from '@cosa/schema/internal';
import { abortError, rfc3339 } from './_util.js';

/**
 * Merges two builds.json documents without losing anything: builds and their arches are a
 * union (`base` order first, new builds placed where `incoming` puts them, so newest stays
 * first), tombstones are a union, tags a union by name (the later `created` wins), other keys of
 * `base` win. `timestamp` is set to now.
 */
export function mergeBuildsJson(base: BuildsJson, incoming: BuildsJson, now: Date = new Date()): BuildsJson {
  const builds: BuildEntry[] = base.builds.map((b) => ({ ...b, arches: [...b.arches] }));
  const byId = new Map(builds.map((b) => [b.id, b]));
  const inc = incoming.builds;
  // Walk incoming newest-last so each new build can be placed before its already-placed successor.
  for (let i = inc.length - 1; i >= 0; i--) {
    const e = inc[i]!;
    const have = byId.get(e.id);
    if (have) {
      for (const a of e.arches) if (!have.arches.includes(a)) have.arches.push(a);
      continue;
    }
    const entry: BuildEntry = { ...e, arches: [...e.arches] };
    const next = inc.slice(i + 1).find((x) => byId.has(x.id));
    let at = 0;
    if (next) at = builds.findIndex((b) => b.id === next.id);
    else {
      const prev = inc.slice(0, i).reverse().find((x) => byId.has(x.id));
      if (prev) at = builds.findIndex((b) => b.id === prev.id) + 1;
    }
    builds.splice(at, 0, entry);
    byId.set(entry.id, entry);
  }
  const out: BuildsJson = { ...incoming, ...base, builds, timestamp: rfc3339(now) };
  const tombs = [...(base['tombstone-builds'] ?? [])];
  for (const t of incoming['tombstone-builds'] ?? []) if (!tombs.some((x) => x.id === t.id)) tombs.push(t);
  if (tombs.length > 0) out['tombstone-builds'] = tombs;
  const tags = new Map<string, BuildTag>();
  for (const t of base.tags ?? []) tags.set(t.name, t);
  for (const t of incoming.tags ?? []) {
    const cur = tags.get(t.name);
    if (!cur || t.created > cur.created) tags.set(t.name, t);
  }
  if (tags.size > 0) out.tags = [...tags.values()];
  return out;
}

const probed = new WeakMap<BuildStore, Promise<boolean>>();

/**
 * Finds out whether a store honours conditional writes: writes a probe object under the
 * prefix with an `If-Match` that cannot match. A store that honours it refuses (412/404);
 * one that ignores it writes the probe, which is then removed. The answer is cached per store.
 */
export function probeConditionalWrites(store: BuildStore, options: { signal?: AbortSignal } = {}): Promise<boolean> {
  let p = probed.get(store);
  if (!p) {
    p = (async () => {
      const key = `.cosa-conditional-probe-${randomBytes(6).toString('hex')}`;
      try {
        await store.put(key, Buffer.from('probe\n'), { ifMatch: '"cosa-probe-never-matches"', contentType: 'text/plain', ...(options.signal ? { signal: options.signal } : {}) });
      } catch (e) {
        if (isCosaConflict(e)) return true;
        // Stores that reject the header instead of ignoring it (400 InvalidRequest, 501 NotImplemented).
        if (e instanceof HttpStatusError && (e.status === 400 || e.status === 501)) return false;
        throw e;
      }
      await store.delete(key).catch(() => {});
      return false;
    })();
    probed.set(store, p);
    p.catch(() => probed.delete(store));
  }
  return p;
}

/** Options of {@link updateRemoteJson}. */
export interface UpdateRemoteJsonOptions {
  /** Attempts before giving up on conflicts (default 30). */
  maxAttempts?: number;
  /** Cache-Control of the written object (default `max-age=300`). */
  cacheControl?: string;
  /** Canned ACL (S3). */
  acl?: string;
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

/** Options of {@link updateRemoteBuildsJson}. */
export interface UpdateRemoteBuildsOptions extends UpdateRemoteJsonOptions {
  /** Key of the index in the store (default `builds.json`). */
  key?: string;
}

/** What {@link updateRemoteJson} did. */
export interface UpdateRemoteJsonResult<T> {
  /** The document as written. */
  doc: T;
  /** Its exact bytes. */
  text: string;
  /** Writes tried (1 without conflicts). */
  attempts: number;
  /** Whether the store honoured conditional writes (else a warning was emitted). */
  conditional: boolean;
  /** False when `update` found nothing to change (the stored document is returned as is). */
  written: boolean;
}

/** What {@link updateRemoteBuildsJson} did. */
export interface UpdateRemoteBuildsResult {
  /** The document as written. */
  buildsJson: BuildsJson;
  /** Its exact bytes. */
  text: string;
  /** Writes tried (1 without conflicts). */
  attempts: number;
  /** Whether the store honoured conditional writes (else a warning was emitted). */
  conditional: boolean;
}

/** How {@link updateRemoteJson} reads and writes one kind of document. */
export interface RemoteJsonCodec<T> {
  /** Parses the stored text (`url` names it in errors). */
  parse(text: string, url: string): T;
  /** The exact bytes to store. */
  serialize(doc: T): string;
}

/**
 * Read-modify-write of one small JSON object in a store that never loses another writer's
 * update: read it with its ETag, apply `update`, write it back with `If-Match` (`If-None-Match: *`
 * when it did not exist), and on a conflict (412) read, merge and try again after a short
 * jittered backoff, at most `maxAttempts` times (then COSA_STORE_CONFLICT). On a store that
 * ignores conditional writes (probed once) it warns, writes, reads back and repeats while
 * `verify` says the update got lost. On `file://` stores the conditional write is a lock plus an
 * atomic rename. `update` may return `undefined` for "already up to date": nothing is written.
 */
export async function updateRemoteJson<T>(
  store: BuildStore,
  key: string,
  codec: RemoteJsonCodec<T>,
  update: (current: T | undefined) => T | undefined | Promise<T | undefined>,
  verify: (written: T) => boolean,
  options: UpdateRemoteJsonOptions = {},
): Promise<UpdateRemoteJsonResult<T>> {
  const signal = options.signal;
  const conditional = await probeConditionalWrites(store, signal ? { signal } : {});
  if (!conditional) {
    options.onProgress?.({
      type: 'warning',
      message: `${store.url} ignores conditional writes (If-Match); concurrent updates of ${key} may be lost`,
    });
  }
  const url = store.urlOf(key);
  const maxAttempts = options.maxAttempts ?? 30;
  const aborted = { ...(signal ? { signal } : {}), abortError: (cause: unknown) => abortError(signal, cause) };
  // Some S3-compatible servers (s3rver) answer a PUT before the object is on disk, so a read
  // right then can be torn: read again a few times before calling the document invalid.
  const torn = new WeakSet<object>();
  const readCurrent = () =>
    retry(async () => {
      const cur = await readObjectText(store, key, signal);
      try {
        return { cur, current: cur ? codec.parse(cur.text, url) : undefined };
      } catch (e) {
        if (typeof e === 'object' && e !== null) torn.add(e);
        throw e;
      }
    }, { attempts: 4, retryIf: (e) => typeof e === 'object' && e !== null && torn.has(e), ...aborted });
  const once = async (attempt: number): Promise<UpdateRemoteJsonResult<T>> => {
    const { cur, current } = await readCurrent();
    const next = await update(current);
    if (next === undefined) {
      if (cur === undefined || current === undefined) throw new CosaError('COSA_STORE_NOT_FOUND', `${url} does not exist`);
      return { doc: current, text: cur.text, attempts: attempt, conditional, written: false };
    }
    const text = codec.serialize(next);
    await store.put(key, Buffer.from(text), {
      contentType: 'application/json',
      cacheControl: options.cacheControl ?? 'max-age=300',
      ...(options.acl ? { acl: options.acl } : {}),
      ...(conditional ? (cur?.etag ? { ifMatch: cur.etag } : cur ? {} : { ifNoneMatch: '*' as const }) : {}),
      ...(signal ? { signal } : {}),
    });
    if (!conditional) {
      const back = await readObjectText(store, key, signal);
      if (!back || !verify(codec.parse(back.text, url))) throw new CosaError('COSA_STORE_CONFLICT', `${url} changed while writing`);
    }
    return { doc: next, text, attempts: attempt, conditional, written: true };
  };
  try {
    // A conflict means another writer got there first: read, merge and write again, soon.
    return await retry(once, {
      attempts: maxAttempts,
      retryIf: isCosaConflict,
      delayMs: (n) => Math.min(backoffDelay(n), 1_000) / 4,
      onRetry: ({ attempt }) => options.onProgress?.({ type: 'log', line: `${url} changed meanwhile; merging again (attempt ${attempt + 1})` }),
      ...aborted,
    });
  } catch (e) {
    if (isCosaConflict(e) && !signal?.aborted) {
      throw new CosaError('COSA_STORE_CONFLICT', `gave up updating ${url} after ${maxAttempts} conflicting writes`, { cause: e });
    }
    throw e;
  }
}

const buildsCodec: RemoteJsonCodec<BuildsJson> = { parse: (text, url) => parseBuildsJson(text, url), serialize: serializeBuildsJson };

/**
 * Read-modify-write of the remote builds.json that never loses another writer's update
 * ({@link updateRemoteJson} with builds.json's parser and serializer).
 */
export async function updateRemoteBuildsJson(
  store: BuildStore,
  update: (current: BuildsJson | undefined) => BuildsJson | Promise<BuildsJson>,
  verify: (written: BuildsJson) => boolean,
  options: UpdateRemoteBuildsOptions = {},
): Promise<UpdateRemoteBuildsResult> {
  const { key = 'builds.json', ...rest } = options;
  const r = await updateRemoteJson(store, key, buildsCodec, update, verify, rest);
  return { buildsJson: r.doc, text: r.text, attempts: r.attempts, conditional: r.conditional };
}
