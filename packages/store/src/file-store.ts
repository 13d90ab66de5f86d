import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CosaError, HttpStatusError, fsyncDir, withLock } from '@cosa/schema';
import { removeStaleTemps } from '@cosa/schema/internal';
import type { BuildStore, GetOptions, ObjectInfo, PutOptions, PutResult, RequestOptions, StoreObject } from './store.js';
import { abortError, bareEtag, checkKey, countingStream } from './_util.js';
import { Sha256Check } from './_verify.js';

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /** A `file://` URL or a plain (absolute or relative) path. */
  location: string;
}

/**
 * A build store in a local directory (`file:///srv/builds` or `/srv/builds`). Writes are atomic
 * (temp file, fsync, rename); conditional writes are honoured under a lock. The ETag is derived
 * from size, mtime (ns) and inode. User metadata is not kept.
 */
export class FileStore implements BuildStore {
  readonly root: string;
  readonly url: string;
  readonly writable = true;

  constructor(options: FileStoreOptions) {
    const loc = options.location;
    this.root = loc.startsWith('file:') ? fileURLToPath(loc) : resolve(loc);
    this.url = pathToFileURL(this.root).toString();
  }

  urlOf(key: string): string {
    return `${this.url.replace(/\/$/, '')}/${checkKey(key)}`;
  }

  private pathOf(key: string): string {
    return join(this.root, ...checkKey(key).split('/'));
  }

  private async info(path: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await stat(path, { bigint: true });
      if (!st.isFile()) return undefined;
      return { size: Number(st.size), etag: `"${st.size.toString(16)}-${st.mtimeNs.toString(16)}-${st.ino.toString(16)}"`, metadata: {} };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  async head(key: string, _options: RequestOptions = {}): Promise<ObjectInfo | undefined> {
    return this.info(this.pathOf(key));
  }

  async get(key: string, options: GetOptions = {}): Promise<StoreObject | undefined> {
    const path = this.pathOf(key);
    const info = await this.info(path);
    if (!info) return undefined;
    const size = info.size ?? 0;
    const start = Math.min(options.start ?? 0, size);
    const end = Math.min(options.end ?? size - 1, size - 1);
    const body = createReadStream(path, { start, ...(end >= start ? { end } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    return { ...info, body, offset: start, length: Math.max(0, end - start + 1) };
  }

  async put(key: string, body: Readable | Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    const path = this.pathOf(key);
    await mkdir(dirname(path), { recursive: true });
    const write = async (): Promise<PutResult> => {
      if (options.ifMatch !== undefined || options.ifNoneMatch !== undefined) {
        const cur = await this.info(path);
        const ok =
          options.ifNoneMatch === '*'
            ? cur === undefined
            : cur !== undefined && (options.ifMatch === '*' || bareEtag(cur.etag) === bareEtag(options.ifMatch));
        if (!ok) {
          if (body instanceof Readable) body.destroy();
          throw new HttpStatusError(this.urlOf(key), cur === undefined ? 404 : 412, { code: 'COSA_STORE_CONFLICT' });
        }
      }
      const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
      await removeStaleTemps(path); // what a killed writer of this object left
      try {
        const src = body instanceof Readable ? body : Readable.from([body]);
        const check = new Sha256Check(options.sha256, this.urlOf(key));
        await pipeline(src, countingStream(options.onBytes), check, createWriteStream(tmp, { flags: 'wx' }), ...(options.signal ? [{ signal: options.signal }] : []));
        // A body that does not hash to options.sha256 failed the pipeline above: never renamed.
        const fh = await open(tmp, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, path);
        await fsyncDir(dirname(path));
      } catch (e) {
        await rm(tmp, { force: true });
        if (options.signal?.aborted) throw abortError(options.signal, e);
        if (e instanceof CosaError) throw e;
        throw new CosaError('COSA_STORE_UNREACHABLE', `cannot write ${this.urlOf(key)}: ${(e as Error).message}`, { cause: e });
      }
      return { etag: (await this.info(path))?.etag };
    };
    // Conditional writes are checked and done under one lock, so two writers cannot both win.
    return options.ifMatch !== undefined || options.ifNoneMatch !== undefined
      ? withLock(path, write, { what: this.urlOf(key) })
      : write();
  }

  async delete(key: string, _options: RequestOptions = {}): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }
}
