import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { readFile } from 'node:fs/promises';
import { CosaError } from '@cosa/schema';

/** Options of {@link createAwsClients}. */
export interface AwsClientOptions {
  /** An AWS config file to read credentials and settings from (like `AWS_CONFIG_FILE`). */
  awsConfigFile?: string;
  /** Profile in the config file (default `AWS_PROFILE` or `default`). */
  profile?: string;
  /**
   * Attempts per request, retries included (default `AWS_MAX_ATTEMPTS`, else 8). Throttling
   * (`RequestLimitExceeded`, `SlowDown`, …), 5xx answers and dropped connections are retried
   * with the SDK's standard backoff.
   */
  maxAttempts?: number;
  /** The environment to read endpoint variables from (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

/**
 * EC2 and S3 clients per region, created on first use and kept. Endpoints, credentials and
 * the default region come only from the SDK's standard chain.
 */
export interface AwsClients {
  /** The EC2 client of `region`. */
  ec2(region: string): EC2Client;
  /** The S3 client of `region`. */
  s3(region: string): S3Client;
  /** The region of the standard chain (`AWS_REGION`, the profile); `COSA_USAGE` when none is set. */
  defaultRegion(): Promise<string>;
  /** Closes every client's sockets. */
  destroy(): void;
}

/**
 * Creates {@link AwsClients}. The SDK resolves endpoints itself: `AWS_ENDPOINT_URL_EC2` /
 * `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, then the profile's `endpoint_url`. When an S3
 * endpoint is set in the environment the S3 client uses path-style addressing, which
 * S3-compatible servers expect. Checksums are computed only when an operation requires them.
 */
export function createAwsClients(options: AwsClientOptions = {}): AwsClients {
  const env = options.env ?? process.env;
  const envAttempts = Number.parseInt(env.AWS_MAX_ATTEMPTS ?? '', 10);
  const maxAttempts = options.maxAttempts ?? (Number.isInteger(envAttempts) && envAttempts > 0 ? envAttempts : 8);
  const common = {
    maxAttempts,
    retryMode: 'standard',
    // No request waits forever: 10 s to connect, 2 min without a byte on the socket.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
    ...(options.profile ? { profile: options.profile } : {}),
    // The default credential chain reads this (like AWS_CONFIG_FILE) without touching process.env.
    ...(options.awsConfigFile ? { configFilepath: options.awsConfigFile } : {}),
  };
  const pathStyle = Boolean(env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL);
  const ec2s = new Map<string, EC2Client>();
  const s3s = new Map<string, S3Client>();
  return {
    ec2(region) {
      let c = ec2s.get(region);
      if (!c) {
        c = new EC2Client({ ...common, region } as EC2ClientConfig);
        ec2s.set(region, c);
      }
      return c;
    },
    s3(region) {
      let c = s3s.get(region);
      if (!c) {
        const config: S3ClientConfig = {
          ...common,
          region,
          requestChecksumCalculation: 'WHEN_REQUIRED',
          responseChecksumValidation: 'WHEN_REQUIRED',
          ...(pathStyle ? { forcePathStyle: true } : {}),
        } as S3ClientConfig;
        c = new S3Client(config);
        s3s.set(region, c);
      }
      return c;
    },
    async defaultRegion() {
      // The SDK reads the region from AWS_CONFIG_FILE but not from a configFilepath option.
      const fromFile = options.awsConfigFile && !env.AWS_REGION ? await regionFromConfig(options.awsConfigFile, options.profile ?? env.AWS_PROFILE ?? 'default') : undefined;
      if (fromFile) return fromFile;
      const probe = new EC2Client({ ...common } as EC2ClientConfig);
      try {
        return await probe.config.region();
      } catch (e) {
        throw new CosaError('COSA_USAGE', 'no AWS region given', { hint: 'pass --region or set AWS_REGION', cause: e });
      } finally {
        probe.destroy();
      }
    },
    destroy() {
      for (const c of [...ec2s.values(), ...s3s.values()]) c.destroy();
      ec2s.clear();
      s3s.clear();
    },
  };
}

/** `region` of a profile in an AWS config file (INI: `[default]`, `[profile NAME]`). */
async function regionFromConfig(file: string, profile: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) section = sec[1]!.trim().replace(/^profile\s+/, '');
    else if (section === profile) {
      const kv = /^region\s*=\s*(\S+)/.exec(line);
      if (kv) return kv[1];
    }
  }
  return undefined;
}
