/**
 * A reverse proxy on 127.0.0.1 that forwards to a local server (kinesalite, s3rver) and injects faults chosen per
 * request, so the real SDK meets throttling, expired iterators, 5xx and dropped connections in tests.
 *
 * Requests are forwarded unchanged (Host included: the SDK signed it, and s3rver checks signatures); bodies are
 * buffered whole, without a cap, so `decide` can read them (S3 uploads of ~100 MB work, at that memory cost).
 *
 * Error shapes: Kinesis speaks awsJson1_1, whose errors are HTTP 400 with a JSON body {"__type", "message"} and the
 * code also in x-amzn-ErrorType; the SDK takes the code from __type first and cuts anything after ':' or before '#'.
 * S3 errors are XML <Error><Code/><Message/><RequestId/><HostId/></Error>.
 *
 * How SDK v3 (client-kinesis 3.1143, client-s3) takes them, asserted in fault-proxy.test.ts: each surfaces with
 * err.name = the code and $metadata.httpStatusCode; ProvisionedThroughputExceededException, LimitExceededException,
 * SlowDown and 5xx are retried by default (the SDK's throttling and transient lists), ExpiredIteratorException is
 * not; a dropped connection is err.name 'TimeoutError' with code 'ECONNRESET' and no status, retried by default.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * What to do with one request instead of (or before, or after) forwarding it. `name` keys the injected counts.
 * - status: answer with it, not forwarded; drop: close the connection, not forwarded; delayMs: forward late.
 * - dropResponse: forward it (it takes effect) and close the connection once the answer has come back,
 *   without relaying any of it: the lost response that makes retries meet their own earlier success.
 * - truncateBody: forward it, relay the status, the headers (Content-Length included) and the first half
 *   of the body, then close the connection: a body cut mid-way.
 */
export type Fault =
  | { name: string; status: number; headers?: Record<string, string>; body?: string }
  | { name: string; drop: true }
  | { name: string; delayMs: number }
  | { name: string; dropResponse: true }
  | { name: string; truncateBody: true };

/** A request as `decide` sees it; `n` counts requests from 1 in arrival order. */
export interface ProxiedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  n: number;
}

/** Picks a fault for a request, or undefined to forward it as is; may be async (e.g. to call the target itself). */
export type Decide = (req: ProxiedRequest) => Fault | undefined | Promise<Fault | undefined>;

export interface FaultProxy {
  /** e.g. http://127.0.0.1:40123: give it to the SDK client as its endpoint. */
  endpoint: string;
  /** Requests forwarded to the target (delayed ones included), and faults injected by name. */
  stats: { forwarded: number; injected: Record<string, number> };
  /** Replaces the rule for requests that arrive from now on. */
  setDecide(fn: Decide): void;
  /** Closes every connection and the server. Idempotent. */
  stop(): Promise<void>;
}

/** Starts a proxy to `target` (a base URL such as http://127.0.0.1:4567). */
export async function startFaultProxy(target: string, decide: Decide): Promise<FaultProxy> {
  const base = new URL(target);
  const agent = new Agent({ keepAlive: true });
  const stats = { forwarded: 0, injected: {} as Record<string, number> };
  let rule = decide;
  let n = 0;

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const proxied: ProxiedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks), n: ++n };
      void (async () => {
        const fault = await rule(proxied);
        if (fault) stats.injected[fault.name] = (stats.injected[fault.name] ?? 0) + 1;
        if (fault && 'drop' in fault) return req.socket.destroy();
        if (fault && 'status' in fault) {
          const body = Buffer.from(fault.body ?? '');
          res.writeHead(fault.status, { ...fault.headers, 'content-length': String(body.length) });
          return res.end(body);
        }
        if (fault && 'delayMs' in fault) await sleep(fault.delayMs);
        stats.forwarded++;
        const up = httpRequest(
          { agent, protocol: base.protocol, hostname: base.hostname, port: base.port, method: proxied.method, path: proxied.url, headers: req.headers },
          (upRes) => {
            if (fault && 'dropResponse' in fault) {
              upRes.resume();
              upRes.on('end', () => req.socket.destroy());
              upRes.on('error', () => req.socket.destroy());
              return;
            }
            if (fault && 'truncateBody' in fault) {
              const parts: Buffer[] = [];
              upRes.on('data', (c: Buffer) => parts.push(c));
              upRes.on('error', () => req.socket.destroy());
              upRes.on('end', () => {
                const whole = Buffer.concat(parts);
                res.writeHead(upRes.statusCode ?? 502, upRes.headers);
                res.write(whole.subarray(0, Math.floor(whole.length / 2)), () => req.socket.destroy());
              });
              return;
            }
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
            upRes.on('error', () => res.destroy());
          },
        );
        up.on('error', (err) => {
          if (res.headersSent) return res.destroy();
          res.writeHead(502, { 'content-type': 'text/plain' }).end(`fault-proxy: ${err.message}`);
        });
        up.end(proxied.body);
      })().catch((err: unknown) => {
        // A throwing rule is a bug in the test: answer 500 so the SDK call fails visibly.
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(`fault-proxy decide failed: ${String(err)}`);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });

  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats,
    setDecide(fn) {
      rule = fn;
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      });
      return stopped;
    },
  };
}

/** The Kinesis operation of a request (`GetRecords` from `X-Amz-Target: Kinesis_20131202.GetRecords`), if any. */
export function kinesisTarget(req: { headers: IncomingHttpHeaders }): string | undefined {
  const t = req.headers['x-amz-target'];
  const value = Array.isArray(t) ? t[0] : t;
  return value?.startsWith('Kinesis_20131202.') ? value.slice('Kinesis_20131202.'.length) : undefined;
}

/** An awsJson1_1 error as Kinesis sends it. */
function kinesisError(name: string, code: string, message: string): Fault {
  return {
    name,
    status: 400,
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-ErrorType': code, 'x-amzn-RequestId': randomUUID() },
    body: JSON.stringify({ __type: code, message }),
  };
}

/** GetRecords / PutRecord(s) over the shard's throughput: 400 ProvisionedThroughputExceededException. */
export function kinesisThrottle(shardId = 'shardId-000000000000', stream = 'stream'): Fault {
  return kinesisError('kinesisThrottle', 'ProvisionedThroughputExceededException', `Rate exceeded for shard ${shardId} in stream ${stream} under account 000000000000.`);
}

/** GetRecords with an iterator older than 5 minutes: 400 ExpiredIteratorException, worded as Kinesis does. */
export function kinesisExpiredIterator(createdAt = new Date(Date.now() - 300_001), now = new Date()): Fault {
  return kinesisError(
    'kinesisExpiredIterator',
    'ExpiredIteratorException',
    `Iterator expired. The iterator was created at time ${amzUtc(createdAt)} while right now it is ${amzUtc(now)} which is further in the future than the tolerated delay of 300000 milliseconds.`,
  );
}

/** Control-plane calls (ListShards, DescribeStream, GetShardIterator) over their rate: 400 LimitExceededException. */
export function kinesisLimitExceeded(stream = 'stream'): Fault {
  return kinesisError('kinesisLimitExceeded', 'LimitExceededException', `Rate exceeded for stream ${stream} under account 000000000000.`);
}

/** An S3 5xx: 500 InternalError or 503 SlowDown, with S3's XML error body. */
export function s3Error(status: 500 | 503): Fault {
  const [code, message] = status === 503 ? ['SlowDown', 'Please reduce your request rate.'] : ['InternalError', 'We encountered an internal error. Please try again.'];
  const requestId = randomBytes(8).toString('hex').toUpperCase();
  return {
    name: `s3${code}`,
    status,
    headers: { 'content-type': 'application/xml', 'x-amz-request-id': requestId },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${requestId}</RequestId><HostId>${randomBytes(24).toString('base64')}</HostId></Error>`,
  };
}

/**
 * The S3 operation of a path-style request (`/bucket/key?query`, as clients with forcePathStyle send
 * them) and its object key (decoded; '' for bucket-level operations). Conditional PutObject
 * (`If-None-Match`) is `PutObjectIfAbsent`.
 */
export function s3Operation(req: { method: string; url: string; headers: IncomingHttpHeaders }): { op: string; bucket: string; key: string } {
  const u = new URL(req.url, 'http://proxy');
  const [, bucket = '', ...rest] = u.pathname.split('/');
  const key = rest.map((s) => decodeURIComponent(s)).join('/');
  const q = u.searchParams;
  const m = req.method.toUpperCase();
  let op: string;
  if (key === '') {
    if (m === 'GET' && q.get('list-type') === '2') op = 'ListObjectsV2';
    else if (m === 'GET' && q.has('uploads')) op = 'ListMultipartUploads';
    else if (m === 'GET') op = 'ListObjects';
    else if (m === 'POST' && q.has('delete')) op = 'DeleteObjects';
    else op = `${m}Bucket`;
  } else if (m === 'PUT') op = q.has('partNumber') ? (req.headers['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart') : req.headers['if-none-match'] ? 'PutObjectIfAbsent' : req.headers['x-amz-copy-source'] ? 'CopyObject' : 'PutObject';
  else if (m === 'POST') op = q.has('uploads') ? 'CreateMultipartUpload' : q.has('uploadId') ? 'CompleteMultipartUpload' : 'PostObject';
  else if (m === 'DELETE') op = q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
  else if (m === 'HEAD') op = 'HeadObject';
  else if (m === 'GET') op = q.has('uploadId') ? 'ListParts' : 'GetObject';
  else op = m;
  return { op, bucket: decodeURIComponent(bucket), key };
}

/** S3's answer to a conditional write whose condition failed: 412 PreconditionFailed, S3's XML error body. */
export function s3PreconditionFailed(name = 's3PreconditionFailed'): Fault {
  const requestId = randomBytes(8).toString('hex').toUpperCase();
  return {
    name,
    status: 412,
    headers: { 'content-type': 'application/xml', 'x-amz-request-id': requestId },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition><RequestId>${requestId}</RequestId><HostId>${randomBytes(24).toString('base64')}</HostId></Error>`,
  };
}

/** Closes the client's connection without an answer (the SDK sees a network error such as ECONNRESET). */
export function dropConnection(): Fault {
  return { name: 'drop', drop: true };
}

/** "Thu Jan 22 01:22:02 UTC 2015", the date format of Kinesis's ExpiredIteratorException message. */
function amzUtc(d: Date): string {
  const [, day, mon, year, time] = /^(\w+), \d+ (\w+) (\d+) (\S+) GMT$/.exec(d.toUTCString())!;
  return `${day} ${mon} ${String(d.getUTCDate()).padStart(2, '0')} ${time} UTC ${year}`;
}
