import { createHash } from 'node:crypto';
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
