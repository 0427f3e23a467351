import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { ConfigError, StorageError } from '../../src/errors.ts';
import { parseS3Uri, S3Storage } from '../../src/storage/s3-storage.ts';
import { localS3Client, rerunWithOpenSslLegacyProviderIfNeeded, s3rverBucket } from '../support/s3rver.ts';
import { s3StorageSuite } from './s3-storage-suite.ts';
import { storageContract } from './storage-contract.ts';
import { tempDir } from '../support/tmp.ts';

// s3rver's continuation tokens need OpenSSL's legacy provider (DES): re-run this file with it if needed.
rerunWithOpenSslLegacyProviderIfNeeded();

const MiB = 1024 * 1024;

async function s3rverStorage(options: { prefix?: string; partSizeBytes?: number } = {}): Promise<{ storage: S3Storage; client: S3Client; bucket: string }> {
  const { client, bucket } = await s3rverBucket();
  return { storage: new S3Storage({ bucket, client, prefix: options.prefix ?? 'lake/v1', partSizeBytes: options.partSizeBytes }), client, bucket };
}

storageContract('S3Storage (s3rver)', async () => (await s3rverStorage()).storage, {
  conditionalWrites: false,
  skipReason: 's3rver 3.7.1 ignores If-None-Match on PutObject; S3Storage.putIfAbsent is tested against an S3 double in s3-storage.test.ts',
});

s3StorageSuite('S3Storage (s3rver)', s3rverStorage, { deleteObjectsAnswers500: true });

test('parseS3Uri splits bucket and prefix and names bad values', () => {
  assert.deepEqual(parseS3Uri('s3://my-bucket/lake/prod/'), { bucket: 'my-bucket', prefix: 'lake/prod' });
  assert.deepEqual(parseS3Uri('s3://my.bucket.1'), { bucket: 'my.bucket.1', prefix: '' });
  assert.deepEqual(parseS3Uri('s3://my-bucket/'), { bucket: 'my-bucket', prefix: '' });
  const bad: Array<[string, RegExp]> = [
    ['http://my-bucket/x', /S3 URI: "http:\/\/my-bucket\/x" is not valid/],
    ['my-bucket/x', /S3 URI: "my-bucket\/x"/],
    ['s3://', /bucket name: ""/],
    ['s3:///x', /bucket name: ""/],
    ['s3://My_Bucket/x', /bucket name: "My_Bucket"/],
    ['s3://my-bucket/a/../b', /prefix: "a\/..\/b"/],
    ['s3://my-bucket/a//b', /prefix: "a\/\/b"/],
  ];
  for (const [uri, pattern] of bad) {
    assert.throws(() => parseS3Uri(uri), (err: unknown) => err instanceof ConfigError && pattern.test(err.message), uri);
  }
});

test('S3Storage validates its options at construction', () => {
  const ok = new S3Storage({ bucket: 'my-bucket', prefix: '/lake/prod/', region: 'eu-west-1' });
  assert.equal(ok.root, 's3://my-bucket/lake/prod');
  assert.equal(new S3Storage({ bucket: 'my-bucket', region: 'eu-west-1' }).root, 's3://my-bucket');
  const rejects = (options: ConstructorParameters<typeof S3Storage>[0], pattern: RegExp): void => {
    assert.throws(() => new S3Storage(options), (err: unknown) => err instanceof ConfigError && pattern.test(err.message), JSON.stringify({ ...options, client: options.client && '[S3Client]' }));
  };
  rejects({ bucket: 'ab' }, /bucket name: "ab" is not valid/);
  rejects({ bucket: 'x'.repeat(64) }, /bucket name/);
  rejects({ bucket: 'My-Bucket' }, /bucket name: "My-Bucket"/);
  rejects({ bucket: 'my_bucket' }, /bucket name: "my_bucket"/);
  rejects({ bucket: '-bucket' }, /bucket name/);
  rejects({ bucket: 'bucket-' }, /bucket name/);
  rejects({ bucket: 'my..bucket' }, /bucket name: "my\.\.bucket"/);
  rejects({ bucket: '192.168.1.1' }, /bucket name: "192\.168\.1\.1".*IP address/);
  rejects({ bucket: 'xn--bucket' }, /reserved/);
  rejects({ bucket: 'data-s3alias' }, /reserved/);
  rejects({ bucket: 'my-bucket', partSizeBytes: 4 * MiB }, /part size.*4194304.*5 MiB/);
  rejects({ bucket: 'my-bucket', partSizeBytes: 5 * MiB + 0.5 }, /part size/);
  rejects({ bucket: 'my-bucket', prefix: 'a/../b' }, /prefix: "a\/\.\.\/b"/);
  rejects({ bucket: 'my-bucket', endpoint: 'localhost:9000' }, /endpoint: "localhost:9000"/);
  rejects({ bucket: 'my-bucket', region: 'EU West' }, /region: "EU West"/);
  const client = localS3Client('http://127.0.0.1:1');
  after(() => client.destroy());
  rejects({ bucket: 'my-bucket', client, endpoint: 'http://127.0.0.1:9000' }, /endpoint cannot be combined/);
  assert.ok(new S3Storage({ bucket: 'my-bucket', client, partSizeBytes: 5 * MiB }));
});

// ---------------------------------------------------------------------------------------------
// putIfAbsent and error mapping against an in-process S3 double (s3rver ignores If-None-Match).

interface DoubleRequest {
  method: string;
  key: string;
  query: string;
  ifNoneMatch: string | undefined;
  headers: IncomingHttpHeaders;
}

/**
 * A tiny S3 double (path-style, one bucket) implementing PutObject's documented If-None-Match
 * semantics: `If-None-Match: *` on an existing key answers 412 PreconditionFailed and writes nothing.
 * DeleteObjects checks its integrity header as S3 documents it: Content-MD5 must match the body, and
 * a request with neither Content-MD5 nor an x-amz-checksum-* header is refused.
 * `failures` forces an S3 error for a method and key; DeleteObjects can be made to answer 500.
 */
async function s3Double(): Promise<{
  endpoint: string;
  objects: Map<string, Buffer>;
  requests: DoubleRequest[];
  failures: Map<string, { status: number; code: string }>;
  failDeleteObjects: { on: boolean };
}> {
  const objects = new Map<string, Buffer>();
  const requests: DoubleRequest[] = [];
  const failures = new Map<string, { status: number; code: string }>();
  const failDeleteObjects = { on: false };
  let requestSeq = 0;

  const sendError = (res: ServerResponse, status: number, code: string, message: string, extra = ''): void => {
    const requestId = `REQ${++requestSeq}`;
    res.writeHead(status, { 'content-type': 'application/xml', 'x-amz-request-id': requestId });
    res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}<RequestId>${requestId}</RequestId><HostId>double</HostId></Error>`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://double');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = rest.map((s) => decodeURIComponent(s)).join('/');
    const method = req.method ?? 'GET';
    const ifNoneMatch = req.headers['if-none-match'] as string | undefined;
    requests.push({ method, key, query: url.search, ifNoneMatch, headers: req.headers });
    if (bucket !== 'double-bucket') return sendError(res, 404, 'NoSuchBucket', 'The specified bucket does not exist');
    const forced = failures.get(`${method} ${key}`);
    if (forced) return sendError(res, forced.status, forced.code, `forced ${forced.code}`);

    if (method === 'PUT' && key) {
      if (ifNoneMatch !== undefined && ifNoneMatch !== '*') return sendError(res, 501, 'NotImplemented', 'If-None-Match only supports *');
      // Check and write in one synchronous step: exactly one concurrent creator wins.
      if (ifNoneMatch === '*' && objects.has(key)) {
        return sendError(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', '<Condition>If-None-Match</Condition>');
      }
      objects.set(key, body);
      res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` });
      return void res.end();
    }
    if (method === 'GET' && key) {
      const obj = objects.get(key);
      if (!obj) return sendError(res, 404, 'NoSuchKey', 'The specified key does not exist.', `<Key>${key}</Key>`);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': obj.length });
      return void res.end(obj);
    }
    if (method === 'DELETE' && key) {
      objects.delete(key);
      res.writeHead(204);
      return void res.end();
    }
    if (method === 'POST' && !key && url.searchParams.has('delete')) {
      const md5 = req.headers['content-md5'];
      if (md5 !== undefined && md5 !== createHash('md5').update(body).digest('base64')) {
        return sendError(res, 400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
      }
      if (md5 === undefined && !Object.keys(req.headers).some((h) => h.startsWith('x-amz-checksum-'))) {
        return sendError(res, 400, 'InvalidRequest', 'Missing required header for this request: Content-MD5');
      }
      if (failDeleteObjects.on) {
        // Like s3rver: delete everything asked for, then answer 500 anyway.
        for (const m of body.toString().matchAll(/<Key>([^<]*)<\/Key>/g)) objects.delete(m[1]!);
        return sendError(res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
      }
      for (const m of body.toString().matchAll(/<Key>([^<]*)<\/Key>/g)) objects.delete(m[1]!);
      res.writeHead(200, { 'content-type': 'application/xml' });
      return void res.end('<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>');
    }
    sendError(res, 501, 'NotImplemented', `${method} ${url.pathname}${url.search} is not implemented by the double`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => sendError(res, 500, 'InternalError', err.message));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, objects, requests, failures, failDeleteObjects };
}

function doubleStorage(endpoint: string, maxAttempts = 2): S3Storage {
  const client = localS3Client(endpoint, { maxAttempts });
  after(() => client.destroy());
  return new S3Storage({ bucket: 'double-bucket', prefix: 'p', client });
}

test('S3Storage.putIfAbsent creates once through a conditional PutObject (S3 double with If-None-Match)', async () => {
  const double = await s3Double();
  const s = doubleStorage(double.endpoint);
  assert.equal(await s.putIfAbsent('locks/one', 'first'), true);
  assert.equal(await s.putIfAbsent('locks/one', 'second'), false);
  assert.equal((await s.get('locks/one'))!.toString(), 'first');
  assert.equal(double.objects.get('p/locks/one')!.toString(), 'first');
  const puts = double.requests.filter((r) => r.method === 'PUT');
  assert.deepEqual(puts.map((r) => [r.key, r.ifNoneMatch]), [['p/locks/one', '*'], ['p/locks/one', '*']]);
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => s.putIfAbsent('locks/race', `w${i}`)));
  assert.equal(results.filter(Boolean).length, 1, 'exactly one concurrent creator wins');
  assert.equal(double.objects.get('p/locks/race')!.toString(), `w${results.indexOf(true)}`);
  // A plain put replaces without a condition.
  await s.put('locks/one', 'third');
  assert.equal(double.requests.at(-1)!.ifNoneMatch, undefined);
  assert.equal((await s.get('locks/one'))!.toString(), 'third');

  // 409 ConditionalRequestConflict (a concurrent conditional write in flight) also loses.
  double.failures.set('PUT p/locks/busy', { status: 409, code: 'ConditionalRequestConflict' });
  assert.equal(await s.putIfAbsent('locks/busy', 'x'), false);
  // Other errors are errors.
  double.failures.set('PUT p/locks/denied', { status: 403, code: 'AccessDenied' });
  await assert.rejects(s.putIfAbsent('locks/denied', 'x'), (err: unknown) => err instanceof StorageError && !err.retriable && /AccessDenied/.test(err.message));
});

test('S3Storage maps SDK errors to StorageError naming the key, retriable for 5xx, SlowDown and network errors', async () => {
  const double = await s3Double();
  const s = doubleStorage(double.endpoint, 2);
  double.failures.set('GET p/hot', { status: 503, code: 'SlowDown' });
  await assert.rejects(s.get('hot'), (err: unknown) => {
    assert.ok(err instanceof StorageError);
    assert.equal(err.retriable, true);
    assert.match(err.message, /s3:\/\/double-bucket\/p\/hot/);
    assert.match(err.message, /SlowDown/);
    return true;
  });
  assert.equal(double.requests.filter((r) => r.key === 'p/hot').length, 2, 'the SDK retried (maxAttempts 2)');
  double.failures.set('PUT p/broken', { status: 500, code: 'InternalError' });
  await assert.rejects(s.put('broken', 'x'), (err: unknown) => err instanceof StorageError && err.retriable && /p\/broken/.test(err.message));
  double.failures.set('GET p/secret', { status: 403, code: 'AccessDenied' });
  await assert.rejects(s.get('secret'), (err: unknown) => err instanceof StorageError && !err.retriable && /p\/secret.*AccessDenied/.test(err.message));
  const otherClient = localS3Client(double.endpoint, { maxAttempts: 1 });
  after(() => otherClient.destroy());
  const wrongBucket = new S3Storage({ bucket: 'other-bucket', client: otherClient });
  await assert.rejects(wrongBucket.get('x'), (err: unknown) => err instanceof StorageError && /NoSuchBucket/.test(err.message), 'a missing bucket is not a missing key');

  // Nothing listening: a network error.
  const closed = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
  const offline = doubleStorage(`http://127.0.0.1:${closed}`, 1);
  await assert.rejects(offline.get('k'), (err: unknown) => err instanceof StorageError && err.retriable && /p\/k/.test(err.message));
});

test('S3Storage.delete falls back to single deletes when DeleteObjects answers 500', async () => {
  const double = await s3Double();
  const s = doubleStorage(double.endpoint, 2);
  for (const k of ['a', 'b', 'c']) await s.put(`d/${k}`, k);
  double.failDeleteObjects.on = true;
  await s.delete(['d/a', 'd/b', 'd/c', 'd/missing']);
  assert.deepEqual([...double.objects.keys()], []);
  const deletes = double.requests.filter((r) => r.method === 'DELETE' || r.method === 'POST');
  assert.equal(deletes.filter((r) => r.method === 'POST').length, 2, 'DeleteObjects tried maxAttempts times');
  assert.deepEqual(deletes.filter((r) => r.method === 'DELETE').map((r) => r.key).sort(), ['p/d/a', 'p/d/b', 'p/d/c', 'p/d/missing']);
  // 2,500 keys go in batches of 1,000.
  double.failDeleteObjects.on = false;
  double.requests.length = 0;
  await s.delete(Array.from({ length: 2500 }, (_, i) => `bulk/${i}`));
  const batches = double.requests.filter((r) => r.method === 'POST');
  assert.equal(batches.length, 3);
  // Content-MD5 (checked by the double) in place of the SDK's CRC32, which S3-compatible services such as Swift's s3api reject.
  for (const r of batches) {
    assert.equal(typeof r.headers['content-md5'], 'string');
    assert.deepEqual(Object.keys(r.headers).filter((h) => h.startsWith('x-amz-checksum-') || h === 'x-amz-sdk-checksum-algorithm'), []);
  }
});

test('S3Storage.putIfAbsent fails, never pretends, on a service without conditional writes (501 NotImplemented, as Swift s3api answers)', async () => {
  const double = await s3Double();
  const s = doubleStorage(double.endpoint, 3);
  double.failures.set('PUT p/locks/l', { status: 501, code: 'NotImplemented' });
  await assert.rejects(s.putIfAbsent('locks/l', 'x'), (err: unknown) => {
    assert.ok(err instanceof StorageError);
    assert.equal(err.retriable, false, 'waiting does not make a server implement conditional writes');
    assert.match(err.message, /s3:\/\/double-bucket\/p\/locks\/l/);
    assert.match(err.message, /does not implement conditional writes \(PutObject with If-None-Match: \*\)/);
    assert.match(err.message, /NotImplemented \(HTTP 501\)/);
    return true;
  });
  assert.equal(double.requests.filter((r) => r.key === 'p/locks/l').length, 1, 'not retried');
  assert.equal(double.objects.has('p/locks/l'), false);
});

test('S3Storage.download streams an object to a file byte-exact with its ETag; a body cut short is a retriable error', async () => {
  const { storage } = await s3rverStorage();
  const dir = tempDir('s3dl');
  const data = randomBytes(3 * MiB + 17);
  await storage.put('t/big.parquet', data);
  const got = await storage.download('t/big.parquet', `${dir}/big`);
  assert.equal(got!.size, data.length);
  assert.equal(got!.etag, (await storage.list('t'))[0]!.etag, 'the ETag the listing shows');
  assert.equal(createHash('sha256').update(readFileSync(`${dir}/big`)).digest('hex'), createHash('sha256').update(data).digest('hex'));
  assert.equal(await storage.download('t/none', `${dir}/none`), undefined);

  // A server that promises 1000 bytes and hangs up after 10.
  const cut = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Length': '1000', ETag: '"abc"', 'Content-Type': 'application/octet-stream' });
    res.write('0123456789');
    setTimeout(() => res.destroy(), 20);
  });
  await new Promise<void>((resolve) => cut.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => cut.close(() => resolve())));
  const s = doubleStorage(`http://127.0.0.1:${(cut.address() as AddressInfo).port}`, 1);
  await assert.rejects(s.download('k', `${dir}/cut`), (err: unknown) => err instanceof StorageError && err.retriable && /p\/k/.test(err.message));
});

test('S3Storage.get reads again when a body is cut short (the SDK does not retry bodies); a body that is always cut is a retriable error', async () => {
  let requests = 0;
  let cutFirst = 2;
  const server = createServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'Content-Length': '20', ETag: '"abc"', 'Content-Type': 'application/octet-stream' });
    if (cutFirst-- > 0) {
      res.write('0123456789');
      setTimeout(() => res.destroy(), 20);
    } else {
      res.end('0123456789abcdefghij');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const s = doubleStorage(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 1);
  assert.equal((await s.get('k'))!.toString(), '0123456789abcdefghij');
  assert.equal(requests, 3, 'two cut bodies, then the whole one');
  cutFirst = 100;
  requests = 0;
  await assert.rejects(s.get('k'), (err: unknown) => err instanceof StorageError && err.retriable && /p\/k: the body was cut off 4 times/.test(err.message));
  assert.equal(requests, 4);
});
