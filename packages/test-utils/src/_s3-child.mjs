// The S3 test server process: s3rver with a request hook in front that honours conditional
// writes (If-Match / If-None-Match on PUT and on CompleteMultipartUpload) as AWS S3 documents
// them, which s3rver itself ignores. Runs in its own Node process, started by s3-server.ts with
// NODE_OPTIONS=--openssl-legacy-provider so ListObjectsV2 paging works (s3rver uses DES tokens).
// argv: <directory> <conditional: "1"|"0"> <bucket>...
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';

const [directory, conditional, ...buckets] = process.argv.slice(2);
const honour = conditional === '1';

const s3 = new S3rver({
  directory,
  silent: true,
  configureBuckets: buckets.map((name) => ({ name })),
});
await s3.configureBuckets();

// s3rver 3.7.1's filesystem store answers a PUT before the object's bytes are on disk (it resolves
// on `end()` of the write stream, not on its 'finish'), so a GET right after a PUT can read a
// short or empty object, which real S3 never serves. Replace putObject with one that waits.
s3.store.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await mkdir(dirname(objectPath), { recursive: true });
  const md5 = createHash('md5');
  let size = 0;
  if (Buffer.isBuffer(object.content)) {
    md5.update(object.content);
    size = object.content.length;
    await writeFile(objectPath, object.content);
  } else {
    const count = new Transform({
      transform(chunk, encoding, callback) {
        md5.update(chunk, encoding);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    await pipeline(object.content, count, createWriteStream(objectPath));
  }
  const digest = md5.digest('hex');
  await this.putMetadata(object.bucket, object.key, object.metadata, digest);
  return { size, md5: digest };
};
const handle = s3.callback();

/** Per-key FIFO locks: the check and the write of one key never interleave with another write or read. */
const tails = new Map();
async function lockKey(id) {
  const prev = tails.get(id) ?? Promise.resolve();
  let release;
  const mine = new Promise((r) => (release = r));
  const tail = prev.then(() => mine);
  tails.set(id, tail);
  await prev;
  return () => {
    release();
    if (tails.get(id) === tail) tails.delete(id);
  };
}

const stats = { putRequests: 0, putBytes: 0, getRequests: 0, conditionalRejects: 0 };

function xmlError(res, status, code, message) {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const stripTag = (t) => t.trim().replace(/^W\//, '').replace(/^"|"$/g, '');

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/__cosa/stats') {
    if (req.method === 'POST') for (const k of Object.keys(stats)) stats[k] = 0;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  const parts = url.pathname.split('/').filter((_, i) => i > 0);
  const bucket = parts.shift();
  const key = parts.map(decodeURIComponent).join('/');
  const isPart = url.searchParams.has('partNumber');
  const isComplete = req.method === 'POST' && url.searchParams.has('uploadId');
  const simple = bucket && key && !isPart && (req.method !== 'POST' || isComplete) && !url.searchParams.has('uploads');
  if (req.method === 'PUT') {
    res.on('finish', () => {
      if (res.statusCode < 300) {
        stats.putRequests++;
        stats.putBytes += Number(req.headers['content-length'] ?? 0);
      }
    });
  } else if (req.method === 'GET') stats.getRequests++;
  if (!simple) return handle(req, res);
  const release = await lockKey(`${bucket}/${key}`);
  res.on('close', release);
  const writing = req.method === 'PUT' || isComplete;
  const ifMatch = req.headers['if-match'];
  const ifNoneMatch = req.headers['if-none-match'];
  if (honour && writing && (ifMatch !== undefined || ifNoneMatch !== undefined)) {
    let etag;
    try {
      etag = (await s3.store.getMetadata(bucket, key)).etag;
    } catch {
      etag = undefined;
    }
    if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
      req.resume();
      return xmlError(res, 501, 'NotImplemented', 'If-None-Match accepts only *');
    }
    if (ifNoneMatch !== undefined && etag !== undefined) {
      stats.conditionalRejects++;
      req.resume();
      return xmlError(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
    }
    if (ifMatch !== undefined) {
      if (etag === undefined) {
        stats.conditionalRejects++;
        req.resume();
        return xmlError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
      }
      const wanted = ifMatch.split(',').map(stripTag);
      if (!wanted.includes('*') && !wanted.includes(stripTag(etag))) {
        stats.conditionalRejects++;
        req.resume();
        return xmlError(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
      }
    }
  }
  handle(req, res);
});
server.keepAliveTimeout = 5_000;
// COSA_S3_LISTEN_HOST: an address of a network namespace the test made (runners in other namespaces reach it).
server.listen(0, process.env.COSA_S3_LISTEN_HOST || '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
process.on('disconnect', () => process.exit(0));
