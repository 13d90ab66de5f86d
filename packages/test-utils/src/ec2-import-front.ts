/**
 * A small HTTP front for moto_server that does what moto cannot: moto 5.2.1 answers
 * ImportSnapshot / DescribeImportSnapshotTasks with 500 and drops RegisterImage's
 * BlockDeviceMappings and BootMode. The front answers those two import calls itself (a task goes
 * pending → active → completed, one step per DescribeImportSnapshotTasks that names it, and then names a
 * snapshot it made in moto with CreateVolume + CreateSnapshot; an object that is not a VMDK ends
 * `deleted` with AWS's message), records every request (so tests can check what moto ignores),
 * can answer chosen requests with a throttling error, and passes everything else to moto.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateSnapshotCommand, CreateVolumeCommand, DeleteVolumeCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startMotoServer, type MotoServer } from './moto-server.js';

/** One request the front saw. */
export interface AwsRequestRecord {
  /** `ec2`, `s3`, … (from the request's signature scope). */
  service: string;
  /** The access key id the request was signed with (not a secret). */
  accessKeyId: string;
  region: string;
  /** The EC2 Action, or the S3 operation (PutObject, UploadPart, HeadObject, …). */
  action: string;
  /** EC2 query parameters (flattened, e.g. `BlockDeviceMapping.1.Ebs.VolumeSize`); S3: the query. */
  params: Record<string, string>;
  method: string;
  path: string;
  /** The status the client got. */
  status: number;
}

/** An import task the front keeps. */
export interface FakeImportTask {
  id: string;
  region: string;
  description: string;
  bucket: string;
  key: string;
  format: string;
  status: 'pending' | 'active' | 'completed' | 'deleted';
  progress?: string;
  statusMessage?: string;
  snapshotId?: string;
  diskImageSize?: number;
  /** The virtual size read from the VMDK header (bytes). */
  virtualSize?: number;
}

/** A running front (and the moto_server behind it). */
export interface Ec2ImportFront {
  /** `http://127.0.0.1:<port>`: use it as AWS_ENDPOINT_URL. */
  endpoint: string;
  /** moto_server's own endpoint (requests sent there bypass the front and are not recorded). */
  motoEndpoint: string;
  /** Credentials, region and endpoint for the SDK's standard chain. */
  env: Record<string, string>;
  /** Every request, in order. */
  requests: AwsRequestRecord[];
  /** The requests with this action (answered with 2xx unless `all`). */
  calls(action: string, all?: boolean): AwsRequestRecord[];
  /** Answers the next `times` requests with this action with a throttling error (`RequestLimitExceeded` for EC2, `SlowDown` for S3). */
  throttle(action: string, times?: number): void;
  /** While held, import tasks go no further than `active`. */
  holdImports(hold: boolean): void;
  /** The import tasks. */
  tasks(): FakeImportTask[];
  /** Clients that talk to moto directly (not recorded), for a test's own checks and setup. */
  ec2(region?: string): EC2Client;
  s3(): S3Client;
  createBucket(name: string, region?: string): Promise<void>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const CREDS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

function scopeOf(req: IncomingMessage): { service: string; region: string; accessKeyId: string } {
  const m = /Credential=([^/]+)\/\d+\/([^/]+)\/([^/]+)\//.exec(req.headers.authorization ?? '');
  return m ? { accessKeyId: m[1]!, region: m[2]!, service: m[3]! } : { accessKeyId: '', region: 'us-east-1', service: 'unknown' };
}

function s3Action(method: string, url: URL): string {
  const q = url.searchParams;
  const hasKey = url.pathname.split('/').filter(Boolean).length > 1;
  if (method === 'PUT') return q.has('partNumber') ? 'UploadPart' : hasKey ? 'PutObject' : 'CreateBucket';
  if (method === 'POST') return q.has('uploads') ? 'CreateMultipartUpload' : q.has('uploadId') ? 'CompleteMultipartUpload' : 'PostObject';
  if (method === 'HEAD') return hasKey ? 'HeadObject' : 'HeadBucket';
  if (method === 'DELETE') return q.has('uploadId') ? 'AbortMultipartUpload' : hasKey ? 'DeleteObject' : 'DeleteBucket';
  return hasKey ? 'GetObject' : 'ListObjects';
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const el = (name: string, v: string | number | undefined) => (v === undefined ? '' : `<${name}>${xmlEscape(String(v))}</${name}>`);
const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

function taskXml(t: FakeImportTask): string {
  return (
    el('description', t.description) +
    el('importTaskId', t.id) +
    '<snapshotTaskDetail>' +
    el('description', t.description) +
    el('diskImageSize', t.diskImageSize) +
    el('format', t.format) +
    el('progress', t.progress) +
    el('snapshotId', t.snapshotId) +
    el('status', t.status) +
    el('statusMessage', t.statusMessage) +
    `<userBucket>${el('s3Bucket', t.bucket)}${el('s3Key', t.key)}</userBucket>` +
    '</snapshotTaskDetail>'
  );
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The import tasks the front keeps, and what each look at them does. */
class ImportTasks {
  readonly all = new Map<string, FakeImportTask>();
  hold = false;

  constructor(
    private readonly ec2: (region: string) => EC2Client,
    private readonly s3: S3Client,
  ) {}

  create(p: Record<string, string>, region: string): FakeImportTask {
    const t: FakeImportTask = {
      id: `import-snap-${randomBytes(8).toString('hex').slice(0, 17)}`,
      region,
      description: p.Description ?? '',
      bucket: p['DiskContainer.UserBucket.S3Bucket'] ?? '',
      key: p['DiskContainer.UserBucket.S3Key'] ?? '',
      format: (p['DiskContainer.Format'] ?? '').toUpperCase(),
      status: 'pending',
      progress: '0',
      statusMessage: 'pending',
    };
    this.all.set(t.id, t);
    return t;
  }

  /** The tasks of a region (those named, or all); only a look at named tasks moves them on (the resume check lists them all and must not). */
  async describe(ids: string[], region: string): Promise<FakeImportTask[]> {
    const list = [...this.all.values()].filter((t) => t.region === region && (ids.length === 0 || ids.includes(t.id)));
    if (ids.length > 0) for (const t of list) await this.advance(t);
    return list;
  }

  /** One step per look: pending → active (validating) → active (converting) → completed. */
  private async advance(t: FakeImportTask): Promise<void> {
    if (t.status === 'pending') {
      Object.assign(t, { status: 'active', progress: '19', statusMessage: 'validating' });
      await this.inspect(t);
    } else if (t.status === 'active' && t.statusMessage === 'validating') {
      Object.assign(t, { progress: '63', statusMessage: 'converting' });
    } else if (t.status === 'active' && !this.hold) {
      await this.complete(t);
    }
  }

  /** Reads the object's header: a stream-optimized VMDK starts with KDMV and holds its capacity. */
  private async inspect(t: FakeImportTask): Promise<void> {
    try {
      const res = await this.s3.send(new GetObjectCommand({ Bucket: t.bucket, Key: t.key, Range: 'bytes=0-19' }));
      const head = Buffer.from(await res.Body!.transformToByteArray());
      if (head.length < 20 || head.toString('latin1', 0, 4) !== 'KDMV') {
        Object.assign(t, { status: 'deleted', progress: undefined, statusMessage: 'ClientError: Disk validation failed [Unsupported VMDK File Format]' });
        return;
      }
      t.virtualSize = Number(head.readBigUInt64LE(12)) * 512;
      t.diskImageSize = Number(res.ContentRange?.split('/')[1] ?? 0);
    } catch {
      Object.assign(t, { status: 'deleted', progress: undefined, statusMessage: `ClientError: Access Denied or no such object s3://${t.bucket}/${t.key}` });
    }
  }

  /** Makes the snapshot in moto: a volume of the VMDK's virtual size (GiB, rounded up), snapshotted. */
  private async complete(t: FakeImportTask): Promise<void> {
    const c = this.ec2(t.region);
    const size = Math.max(1, Math.ceil((t.virtualSize ?? 1) / 1024 ** 3));
    const vol = await c.send(new CreateVolumeCommand({ Size: size, AvailabilityZone: `${t.region}a` }));
    const snap = await c.send(new CreateSnapshotCommand({ VolumeId: vol.VolumeId!, Description: `Created by AWS-VMImport service for ${t.id}` }));
    await c.send(new DeleteVolumeCommand({ VolumeId: vol.VolumeId! }));
    Object.assign(t, { status: 'completed', progress: undefined, statusMessage: undefined, snapshotId: snap.SnapshotId });
  }
}

/** The front's own answer to the two import calls (undefined for every other request). */
async function answerImport(tasks: ImportTasks, action: string, p: Record<string, string>, region: string): Promise<string | undefined> {
  const requestId = `<requestId>${randomBytes(8).toString('hex')}</requestId>`;
  if (action === 'ImportSnapshot') {
    return `<ImportSnapshotResponse xmlns="${NS}">${requestId}${taskXml(tasks.create(p, region))}</ImportSnapshotResponse>`;
  }
  if (action === 'DescribeImportSnapshotTasks') {
    const ids = Object.entries(p).filter(([k]) => k.startsWith('ImportTaskId')).map(([, v]) => v);
    const items = (await tasks.describe(ids, region)).map((t) => `<item>${taskXml(t)}</item>`).join('');
    return `<DescribeImportSnapshotTasksResponse xmlns="${NS}">${requestId}<importSnapshotTaskSet>${items}</importSnapshotTaskSet></DescribeImportSnapshotTasksResponse>`;
  }
  return undefined;
}

/** What a request is: service, region and signing key from its signature scope, and its action. */
function describeRequest(req: IncomingMessage, body: Buffer): AwsRequestRecord {
  const url = new URL(req.url ?? '/', 'http://front');
  const { service, region, accessKeyId } = scopeOf(req);
  let params: Record<string, string> = Object.fromEntries(url.searchParams);
  let action: string;
  if (service === 's3') action = s3Action(req.method ?? 'GET', url);
  else {
    if ((req.headers['content-type'] ?? '').includes('x-www-form-urlencoded')) params = { ...params, ...Object.fromEntries(new URLSearchParams(body.toString())) };
    action = params.Action ?? 'unknown';
  }
  return { service, accessKeyId, region, action, params, method: req.method ?? 'GET', path: url.pathname, status: 0 };
}

const THROTTLED = {
  s3: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>1</RequestId></Error>',
  ec2: '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>1</RequestID></Response>',
};

/** Passes a request on to moto as it came (moto does not check signatures) and its answer back. */
function proxy(upstream: URL, req: IncomingMessage, body: Buffer, res: ServerResponse, record: AwsRequestRecord): void {
  const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) };
  delete headers['transfer-encoding'];
  const up = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (ur) => {
    record.status = ur.statusCode ?? 0;
    res.writeHead(ur.statusCode ?? 502, ur.headers);
    ur.pipe(res);
  });
  up.on('error', (e) => {
    record.status = 502;
    res.writeHead(502).end(String(e));
  });
  up.end(body);
}

/** Starts moto_server (unless one is given) and the front before it, both on free ports. */
export async function startEc2ImportFront(options: { moto?: MotoServer } = {}): Promise<Ec2ImportFront> {
  const moto = options.moto ?? (await startMotoServer());
  const upstream = new URL(moto.endpoint);
  const requests: AwsRequestRecord[] = [];
  const throttles = new Map<string, number>();
  const ec2s = new Map<string, EC2Client>();
  const ec2 = (region = 'us-east-1') => {
    let c = ec2s.get(region);
    if (!c) ec2s.set(region, (c = new EC2Client({ region, endpoint: moto.endpoint, credentials: CREDS })));
    return c;
  };
  const s3 = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, credentials: CREDS, forcePathStyle: true });
  const tasks = new ImportTasks(ec2, s3);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const record = describeRequest(req, body);
    requests.push(record);
    const left = throttles.get(record.action) ?? 0;
    if (left > 0) {
      throttles.set(record.action, left - 1);
      record.status = 503;
      res.writeHead(503, { 'content-type': 'application/xml' }).end(record.service === 's3' ? THROTTLED.s3 : THROTTLED.ec2);
      return;
    }
    const own = record.service === 'ec2' ? await answerImport(tasks, record.action, record.params, record.region) : undefined;
    if (own === undefined) return proxy(upstream, req, body, res, record);
    record.status = 200;
    res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' }).end(own);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(e));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    for (const c of ec2s.values()) c.destroy();
    s3.destroy();
    if (options.moto === undefined) await moto.stop();
  };
  return {
    endpoint,
    motoEndpoint: moto.endpoint,
    env: {
      AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: endpoint,
    },
    requests,
    calls: (action, all = false) => requests.filter((r) => r.action === action && (all || (r.status >= 200 && r.status < 300))),
    throttle: (action, times = 1) => void throttles.set(action, times),
    holdImports: (h) => void (tasks.hold = h),
    tasks: () => [...tasks.all.values()],
    ec2,
    s3: () => s3,
    async createBucket(name, region = 'us-east-1') {
      await s3.send(new CreateBucketCommand({ Bucket: name, ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as 'eu-west-1' } }) }));
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
