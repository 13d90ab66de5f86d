import { fileURLToPath } from 'node:url';

export { startS3Server, type S3Server, type S3ServerOptions, type S3ServerStats } from './s3-server.js';
export { startHttpServer, type HttpServer, type HttpServerOptions, type SeenRequest } from './http-server.js';

/** Absolute path of a file under packages/test-utils/fixtures. */
export function fixturePath(...parts: string[]): string {
  return fileURLToPath(new URL(`../fixtures/${parts.join('/')}`, import.meta.url));
}

export { validateWithOriginalSchema } from './original-schema.js';
export { snapshotTree, type TreeSnapshot } from './tree.js';
export { tempWorkdir, tempDir, fakeMeta, writeFakeBuild, TINY_CONFIG, type TempWorkdir, type FakeMetaOptions } from './workdir.js';
export { testCacheRoot, testWorkdirCache } from './cache.js';
export { startMotoServer, type MotoServer } from './moto-server.js';
export { startEc2ImportFront, type Ec2ImportFront, type AwsRequestRecord, type FakeImportTask } from './ec2-import-front.js';
export { makeTestVmdk } from './vmdk.js';
export { startFaultServer, type Fault, type FaultRule, type FaultRequest, type FaultServer, type FaultServerOptions } from './fault-server.js';
export { killAtRandomMoments, type KillRunOptions, type KillRunResult } from './kill-points.js';
export { workdirProblems, storeProblems, fileStoreReader, s3StoreReader, TEMP_NAME, type StoreReader, type S3StoreReader, type WorkdirCheckOptions } from './kill-checks.js';
