/**
 * Every error the SDK throws is a {@link CosaError} with a stable `code` that callers match on.
 * Only the CLI turns a code into a message and an exit status.
 */

/** Stable error codes. New codes are added here, never renamed. */
export type CosaErrorCode =
  | 'COSA_SCHEMA_INVALID'
  | 'COSA_SCHEMA_PARSE'
  | 'COSA_SCHEMA_VERSION'
  | 'COSA_CONFIG_MISSING'
  | 'COSA_CONFIG_INCLUDE'
  | 'COSA_CONFIG_VARIANT'
  | 'COSA_CONFIG_VARIABLE'
  | 'COSA_CONFIG_UNKNOWN_KEY'
  | 'COSA_WORKDIR_INVALID'
  | 'COSA_WORKDIR_NOT_EMPTY'
  | 'COSA_WORKDIR_LOCKED'
  | 'COSA_BUILD_NOT_FOUND'
  | 'COSA_BUILD_EXISTS'
  | 'COSA_BUILD_ID_INVALID'
  | 'COSA_BUILD_FAILED'
  | 'COSA_BUILD_COMPRESSED'
  | 'COSA_PATH_UNSAFE'
  | 'COSA_TAG_NOT_FOUND'
  | 'COSA_TAG_EXISTS'
  | 'COSA_PRUNE_TAGGED'
  | 'COSA_META_KEY'
  | 'COSA_EXEC_FAILED'
  | 'COSA_EXEC_NOT_FOUND'
  | 'COSA_EXEC_ABORTED'
  | 'COSA_EXEC_TIMEOUT'
  | 'COSA_TOOLS_MISSING'
  | 'COSA_OSTREE_FAILED'
  | 'COSA_COMPOSE_FAILED'
  | 'COSA_COMPOSE_PACKAGE_NOT_FOUND'
  | 'COSA_COMPOSE_MIRROR_UNREACHABLE'
  | 'COSA_IMAGE_FAILED'
  | 'COSA_IMAGE_TOO_SMALL'
  | 'COSA_IMAGE_NO_LOOP'
  | 'COSA_IMAGE_NOT_ROOT'
  | 'COSA_VM_FAILED'
  | 'COSA_VM_TIMEOUT'
  | 'COSA_BOOT_TIMEOUT'
  | 'COSA_PLATFORM_UNKNOWN'
  | 'COSA_STORE_NOT_FOUND'
  | 'COSA_STORE_HTTP_STATUS'
  | 'COSA_STORE_CHECKSUM_MISMATCH'
  | 'COSA_STORE_LOCAL_CHANGES'
  | 'COSA_STORE_URL_INVALID'
  | 'COSA_STORE_CONFLICT'
  | 'COSA_STORE_ARTIFACT_UNKNOWN'
  | 'COSA_META_MERGE_CONFLICT'
  | 'COSA_STORE_READ_ONLY'
  | 'COSA_STORE_REDIRECT_REFUSED'
  | 'COSA_STORE_ABORTED'
  | 'COSA_STORE_UNREACHABLE'
  | 'COSA_STORE_TIMEOUT'
  | 'COSA_WORKDIR_LOCK_LOST'
  | 'COSA_COMPRESS_CHECKSUM_MISMATCH'
  | 'COSA_AWS_FAILED'
  | 'COSA_AWS_IMPORT_FAILED'
  | 'COSA_AWS_TIMEOUT'
  | 'COSA_AWS_AMBIGUOUS'
  | 'COSA_AWS_NO_AMI'
  | 'COSA_AWS_IMAGE_INVALID'
  | 'COSA_USAGE'
  | 'COSA_INTERNAL';

/** Options every CosaError accepts. */
export interface CosaErrorOptions {
  /** A short suggestion for the user, e.g. the command that fixes the problem. */
  hint?: string;
  /** The underlying error. */
  cause?: unknown;
}

/** Base class of every error the SDK throws. */
export class CosaError extends Error {
  readonly code: CosaErrorCode;
  readonly hint?: string;

  constructor(code: CosaErrorCode, message: string, options: CosaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CosaError';
    this.code = code;
    if (options.hint !== undefined) this.hint = options.hint;
  }
}

/** One problem found while validating a document. */
export interface SchemaIssue {
  /** JSON path of the offending value, e.g. `images.qemu.sha256` (empty for the root). */
  path: string;
  message: string;
}

/** A document (file) failed to parse or validate. */
export class SchemaError extends CosaError {
  readonly file: string;
  readonly issues: SchemaIssue[];

  constructor(file: string, issues: SchemaIssue[], options: CosaErrorOptions & { code?: CosaErrorCode } = {}) {
    const first = issues[0];
    const where = first ? (first.path ? `${first.path}: ${first.message}` : first.message) : 'invalid';
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    super(options.code ?? 'COSA_SCHEMA_INVALID', `${file}: ${where}${more}`, options);
    this.name = 'SchemaError';
    this.file = file;
    this.issues = issues;
  }
}

/** An external command exited non-zero (or could not be started). */
export class CommandFailedError extends CosaError {
  readonly command: string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;

  constructor(
    command: string[],
    exitCode: number | undefined,
    stderr: string,
    options: CosaErrorOptions & { code?: CosaErrorCode; message?: string } = {},
  ) {
    const tail = stderr.trim().split('\n').slice(-20).join('\n');
    super(
      options.code ?? 'COSA_EXEC_FAILED',
      options.message ??
        `${command[0] ?? '?'} failed${exitCode === undefined ? '' : ` with exit code ${exitCode}`}: ${command.join(' ')}${tail ? `\n${tail}` : ''}`,
      options,
    );
    this.name = 'CommandFailedError';
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** An HTTP request answered with an unexpected status. The URL never carries secrets. */
export class HttpStatusError extends CosaError {
  readonly url: string;
  readonly status: number;

  constructor(url: string, status: number, options: CosaErrorOptions & { code?: CosaErrorCode } = {}) {
    super(options.code ?? 'COSA_STORE_HTTP_STATUS', `HTTP ${status} for ${url}`, options);
    this.name = 'HttpStatusError';
    this.url = url;
    this.status = status;
  }
}

/** True when `e` is a CosaError with the given code. */
export function isCosaError(e: unknown, code?: CosaErrorCode): e is CosaError {
  return e instanceof CosaError && (code === undefined || e.code === code);
}
