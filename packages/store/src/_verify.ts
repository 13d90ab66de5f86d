import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Transform } from 'node:stream';
import { CosaError } from '@cosa/schema';

/** The error of a body whose bytes do not hash to the sha256 the caller gave. */
export function checksumMismatch(url: string, got: string, expected: string, extra = ''): CosaError {
  return new CosaError('COSA_STORE_CHECKSUM_MISMATCH', `the bytes sent to ${url} have sha256 ${got}, expected ${expected} (the file changed while it was sent?); not published${extra}`, {
    hint: 'the local file was modified after it was described; rebuild or fetch it again',
  });
}

/**
 * A pass-through stream that hashes what flows through it and, when `expected` is given, fails
 * at its end (before its last bytes count as read to the end) when the sha256 differs, so a
 * consumer that commits only after the end of its input never commits a wrong body.
 */
export class Sha256Check extends Transform {
  private readonly hash = createHash('sha256');
  /** The hex digest once the stream has ended. */
  digest: string | undefined;
  /** Set when the end was refused. */
  mismatch: CosaError | undefined;

  constructor(
    private readonly expected: string | undefined,
    private readonly url: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, cb: (e?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: (e?: Error | null) => void): void {
    this.digest = this.hash.digest('hex');
    if (this.expected !== undefined && this.digest !== this.expected) {
      this.mismatch = checksumMismatch(this.url, this.digest, this.expected);
      cb(this.mismatch);
      return;
    }
    cb();
  }
}

/**
 * The hashing thread's program (CommonJS, evaluated): per job, it reads a file's bytes back from
 * 0 up to the offset the writer says are complete, in order, and hashes them.
 */
const HASHER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const jobs = new Map();
const buf = Buffer.allocUnsafe(1 << 20);
parentPort.on('message', (m) => {
  try {
    if (m.open !== undefined) {
      jobs.set(m.id, { fd: openSync(m.open, 'r'), hash: createHash('sha256'), pos: 0 });
      return;
    }
    const j = jobs.get(m.id);
    if (!j) return;
    if (m.drop) {
      closeSync(j.fd);
      jobs.delete(m.id);
      return;
    }
    while (j.pos < m.upTo) {
      const n = readSync(j.fd, buf, 0, Math.min(buf.length, m.upTo - j.pos), j.pos);
      if (n === 0) throw new Error('the file ended at byte ' + j.pos + ' before byte ' + m.upTo);
      j.hash.update(buf.subarray(0, n));
      j.pos += n;
    }
    if (m.end) {
      closeSync(j.fd);
      jobs.delete(m.id);
      parentPort.postMessage({ id: m.id, digest: j.hash.digest('hex'), bytes: j.pos });
    }
  } catch (e) {
    const j = jobs.get(m.id);
    if (j) { try { closeSync(j.fd); } catch {} jobs.delete(m.id); }
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`;

interface HasherThread {
  worker: Worker;
  jobs: number;
  waiting: Map<number, { resolve: (r: { digest: string; bytes: number }) => void; reject: (e: Error) => void }>;
  /** Set when the thread died: its jobs fail, none is given to it. */
  dead?: Error;
}

/** Threads hashing files behind their writers, shared by every download of this process. */
const threads: HasherThread[] = [];
let nextJob = 1;

/** A thread died or is done: its waiting jobs fail with `e`, and it takes no more. */
function retire(t: HasherThread, e: Error): void {
  t.dead ??= e;
  const at = threads.indexOf(t);
  if (at >= 0) threads.splice(at, 1);
  for (const w of t.waiting.values()) w.reject(t.dead);
  t.waiting.clear();
}

/** The least busy hashing thread; a new one while every thread is busy, up to the spare cores. */
function hasherThread(): HasherThread {
  const max = Math.max(1, Math.min(4, availableParallelism() - 1));
  const idlest = threads.reduce<HasherThread | undefined>((best, x) => (!best || x.jobs < best.jobs ? x : best), undefined);
  if (idlest && (idlest.jobs === 0 || threads.length >= max)) return idlest;
  const worker = new Worker(HASHER_SOURCE, { eval: true });
  const t: HasherThread = { worker, jobs: 0, waiting: new Map() };
  worker.on('message', (m: { id: number; digest?: string; bytes?: number; error?: string }) => {
    const w = t.waiting.get(m.id);
    if (!w) return;
    t.waiting.delete(m.id);
    if (t.waiting.size === 0) worker.unref();
    if (m.error !== undefined) w.reject(new Error(m.error));
    else w.resolve({ digest: m.digest!, bytes: m.bytes! });
  });
  worker.on('error', (e) => retire(t, e));
  worker.on('exit', (code) => retire(t, new Error(`the hashing thread exited (${code})`)));
  worker.unref();
  threads.push(t);
  return t;
}

/** One job less on `t`; an idle thread is stopped. */
function release(t: HasherThread): void {
  t.jobs--;
  if (t.jobs === 0 && !t.dead) {
    retire(t, new Error('the hashing thread was stopped'));
    void t.worker.terminate();
  }
}

/** The hashing thread is told of a longer prefix once it has grown by this much (or at the end). */
const HASH_STEP = 4 * 1024 * 1024;

/**
 * The sha256 of a file that is being written, computed behind the writer: the writer calls
 * {@link TrailingHash.advance} with the length of the prefix that is complete (every byte before
 * it written), and a worker thread reads that prefix back (from the page cache: it was just
 * written) and hashes it in order. Hashing takes no time on the writing thread and holds no
 * bytes in memory however far other parts of the file are written ahead of the prefix, and the
 * digest is of the bytes as they are in the file, not as they were received.
 */
export class TrailingHash {
  private readonly id = nextJob++;
  private readonly thread: HasherThread;
  private asked = 0;
  private closed = false;

  constructor(path: string) {
    this.thread = hasherThread();
    this.thread.jobs++;
    this.thread.worker.postMessage({ id: this.id, open: path });
  }

  /** Bytes 0..upTo-1 of the file are written: hash them (in the background, a few MiB at a time). */
  advance(upTo: number): void {
    if (this.closed || upTo < this.asked + HASH_STEP) return;
    this.asked = upTo;
    this.thread.worker.postMessage({ id: this.id, upTo });
  }

  /** Hashes up to `size` (the file's length) and returns the digest and the bytes hashed. */
  async digest(size: number): Promise<{ sha256: string; bytes: number }> {
    if (this.closed) throw new Error('TrailingHash: already closed');
    this.closed = true;
    const t = this.thread;
    try {
      if (t.dead) throw t.dead;
      const done = new Promise<{ digest: string; bytes: number }>((resolve, reject) => t.waiting.set(this.id, { resolve, reject }));
      t.worker.ref();
      t.worker.postMessage({ id: this.id, upTo: Math.max(size, this.asked), end: true });
      const r = await done;
      return { sha256: r.digest, bytes: r.bytes };
    } finally {
      release(t);
    }
  }

  /** Drops the job (after a failure: no digest wanted). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.thread.dead) this.thread.worker.postMessage({ id: this.id, drop: true });
    release(this.thread);
  }
}
