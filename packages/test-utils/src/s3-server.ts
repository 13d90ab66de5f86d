import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Options of {@link startS3Server}. */
export interface S3ServerOptions {
  /** Buckets to create before the server answers (default `['builds']`). */
  buckets?: string[];
  /**
   * Honour `If-Match` / `If-None-Match` on PUT and CompleteMultipartUpload as AWS S3 does
   * (412 PreconditionFailed, 404 NoSuchKey for If-Match on a missing key). Default true; false
   * gives plain s3rver, which ignores them.
   */
  conditionalWrites?: boolean;
  /** Where s3rver keeps objects (default: a temp dir removed by `stop()`). */
  directory?: string;
}

/** Counters kept by the server process (PUT bodies are counted by their Content-Length). */
export interface S3ServerStats {
  putRequests: number;
  putBytes: number;
  getRequests: number;
  conditionalRejects: number;
}

/** A running S3 test server (s3rver in a child process, on 127.0.0.1). */
export interface S3Server {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The directory holding the objects. */
  directory: string;
  /** Settings for an `S3Client` that talks to this server (path style, WHEN_REQUIRED checksums). */
  clientConfig: {
    region: string;
    endpoint: string;
    forcePathStyle: true;
    credentials: { accessKeyId: string; secretAccessKey: string };
    requestChecksumCalculation: 'WHEN_REQUIRED';
    responseChecksumValidation: 'WHEN_REQUIRED';
  };
  /** Environment for CLI tools (awscli, the cosa CLI): credentials, region and endpoint. */
  env: Record<string, string>;
  /** Reads the server's counters; `reset` zeroes them after reading. */
  stats(reset?: boolean): Promise<S3ServerStats>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts s3rver 3.7.1 in a child process (Node with `--openssl-legacy-provider`, so listing
 * with paging works) behind a request hook that honours conditional writes.
 */
export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const buckets = options.buckets ?? ['builds'];
  const ownDir = options.directory === undefined;
  const directory = options.directory ?? (await mkdtemp(join(tmpdir(), 'cosa-s3rver-')));
  const script = fileURLToPath(new URL('./_s3-child.mjs', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [script, directory, options.conditionalWrites === false ? '0' : '1', ...buckets], {
    env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => {
      rl.close();
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch (e) {
        reject(e);
      }
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}: ${stderr}`)));
    child.once('error', reject);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    if (ownDir) await rm(directory, { recursive: true, force: true });
  };
  return {
    endpoint,
    port,
    region: 'us-east-1',
    ...credentials,
    directory,
    clientConfig: {
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    },
    env: {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: endpoint,
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    },
    async stats(reset = false) {
      const res = await fetch(`${endpoint}/__cosa/stats`, { method: reset ? 'POST' : 'GET' });
      return (await res.json()) as S3ServerStats;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
