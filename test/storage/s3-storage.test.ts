import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { ConfigError, StorageError } from '../../src/errors.ts';
import { parseS3Uri, S3Storage } from '../../src/storage/s3-storage.ts';
import { localS3Client, rerunWithOpenSslLegacyProviderIfNeeded, s3rverBucket } from '../support/s3rver.ts';
import { tempDir } from '../support/tmp.ts';
import { storageContract } from './storage-contract.ts';

// s3rver's continuation tokens need OpenSSL's legacy provider (DES): re-run this file with it if needed.
rerunWithOpenSslLegacyProviderIfNeeded();

const MiB = 1024 * 1024;

async function s3rverStorage(options: { prefix?: string; partSizeBytes?: number } = {}): Promise<{ storage: S3Storage; client: S3Client; bucket: string }> {
  const { client, bucket } = await s3rverBucket();
  return { storage: new S3Storage({ bucket, client, prefix: options.prefix ?? 'lake/v1', partSizeBytes: options.partSizeBytes }), client, bucket };
}

/** Records the SDK command names `client` sends (and their inputs). */
function recordCommands(client: S3Client): Array<{ command: string; input: Record<string, unknown> }> {
  const seen: Array<{ command: string; input: Record<string, unknown> }> = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      seen.push({ command: context.commandName ?? '?', input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  return seen;
}

async function inPool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

storageContract('S3Storage (s3rver)', async () => (await s3rverStorage()).storage, {
  conditionalWrites: false,
  skipReason: 's3rver 3.7.1 ignores If-None-Match on PutObject; S3Storage.putIfAbsent is tested against an S3 double in s3-storage.test.ts',
});

test('S3Storage keeps every object under its prefix and sees nothing outside it', async () => {
  const { storage, client, bucket } = await s3rverStorage({ prefix: 'lake/v1' });
  assert.equal(storage.root, `s3://${bucket}/lake/v1`);
  assert.equal(storage.localPath('t/x'), undefined);
  await storage.put('t/x', 'x');
  await storage.put('t/./y//z', 'z'); // '.' and empty segments collapse, as under LocalStorage
  await storage.put('t/q/../w', 'w');
  const outside = new S3Storage({ bucket, client, prefix: 'lake' });
  await outside.put('v2/other', 'o');
  await outside.put('v1x/other', 'o');
  const raw = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  assert.deepEqual(
    (raw.Contents ?? []).map((o) => o.Key),
    ['lake/v1/t/w', 'lake/v1/t/x', 'lake/v1/t/y/z', 'lake/v1x/other', 'lake/v2/other'],
  );
  assert.deepEqual((await storage.list('', { recursive: true })).map((o) => o.key), ['t/w', 't/x', 't/y/z']);
  assert.deepEqual((await storage.list('t')).map((o) => o.key), ['t/w', 't/x']);
  assert.deepEqual((await outside.list('')).map((o) => o.key), []);
  await assert.rejects(storage.get('t/../../x'), (err: unknown) => err instanceof StorageError && /outside/.test(err.message));
  await assert.rejects(storage.put('/abs', 'x'), /outside/);
  await assert.rejects(storage.list('..'), /outside/);
  await assert.rejects(storage.delete(['t/x', '../../escape']), /outside/);
  assert.equal((await storage.get('t/x'))!.toString(), 'x', 'a refused delete deletes nothing');
  await assert.rejects(storage.put('t/..', 'x'), /names the root/);
});

test('S3Storage.putFile uploads a 12 MiB file in 5 MiB parts byte-exact and consumes the local file', async () => {
  const { storage, client } = await s3rverStorage({ partSizeBytes: 5 * MiB });
  const commands = recordCommands(client);
  const dir = tempDir('s3put');
  const data = randomBytes(12 * MiB);
  writeFileSync(`${dir}/spooled.parquet`, data);
  await storage.putFile('tbl/dt=2026-01-01/f.parquet', `${dir}/spooled.parquet`);
  assert.equal(existsSync(`${dir}/spooled.parquet`), false, 'the local file is consumed');
  const names = commands.map((c) => c.command);
  assert.equal(names.filter((n) => n === 'CreateMultipartUploadCommand').length, 1);
  assert.equal(names.filter((n) => n === 'UploadPartCommand').length, 3, '5 + 5 + 2 MiB');
  assert.equal(names.filter((n) => n === 'CompleteMultipartUploadCommand').length, 1);
  const back = await storage.get('tbl/dt=2026-01-01/f.parquet');
  assert.equal(back!.length, data.length);
  assert.equal(createHash('sha256').update(back!).digest('hex'), createHash('sha256').update(data).digest('hex'));
  assert.deepEqual(
    (await storage.list('tbl/dt=2026-01-01')).map((o) => [o.key, o.size]),
    [['tbl/dt=2026-01-01/f.parquet', 12 * MiB]],
  );

  // A small file goes up in one PutObject.
  writeFileSync(`${dir}/small`, 'small payload');
  await storage.putFile('tbl/small', `${dir}/small`);
  assert.equal((await storage.get('tbl/small'))!.toString(), 'small payload');
  assert.equal(existsSync(`${dir}/small`), false);
  writeFileSync(`${dir}/empty`, '');
  await storage.putFile('tbl/empty', `${dir}/empty`);
  assert.equal((await storage.get('tbl/empty'))!.length, 0);
  await assert.rejects(storage.putFile('tbl/none', `${dir}/missing`), (err: unknown) => err instanceof StorageError && /missing/.test(err.message));
});

test('S3Storage.list pages through more than 1000 keys, complete and sorted', async () => {
  const { storage, client } = await s3rverStorage();
  const keys = Array.from({ length: 1100 }, (_, i) => `many/k${String((i * 7919) % 1100).padStart(4, '0')}.bin`);
  const deeper = ['many/k0500.bin.d/inner', 'many/sub/deep'];
  await inPool([...keys, ...deeper], 16, (k) => storage.put(k, k));
  const commands = recordCommands(client);

  const expected = [...keys].sort();
  const flat = await storage.list('many');
  assert.equal(flat.length, 1100);
  assert.deepEqual(flat.map((o) => o.key), expected, 'every key once, in order, none from below');
  assert.ok(flat.every((o) => o.size === 'many/k0000.bin'.length && o.mtimeMs > 0));
  const pages = commands.filter((c) => c.command === 'ListObjectsV2Command');
  assert.ok(pages.length >= 2, `paginated (${pages.length} pages)`);
  assert.equal(pages[0]!.input.ContinuationToken, undefined);
  assert.equal(typeof pages[1]!.input.ContinuationToken, 'string');

  const deep = await storage.list('many', { recursive: true });
  assert.deepEqual(deep.map((o) => o.key), [...keys, ...deeper].sort());
  const all = await storage.list('', { recursive: true });
  assert.equal(all.length, 1102);

  await storage.delete([...keys, 'many/never-there']);
  assert.deepEqual((await storage.list('many', { recursive: true })).map((o) => o.key), deeper);
});

test('S3Storage.delete empties nested directories on s3rver (whose DeleteObjects may answer 500 after deleting)', async () => {
  const { storage } = await s3rverStorage();
  const keys = Array.from({ length: 60 }, (_, i) => `t/p=${i % 5}/q=${i % 3}/f${i}.parquet`);
  await inPool(keys, 8, (k) => storage.put(k, 'x'));
  await storage.put('t/keep', 'k');
  await storage.delete(keys);
  assert.deepEqual((await storage.list('t', { recursive: true })).map((o) => o.key), ['t/keep']);
});

test('S3Storage round-trips keys with spaces, unicode, = and %', async () => {
  const { storage, client, bucket } = await s3rverStorage();
  const keys = [
    'odd/with space.txt',
    'odd/ünïcødé ☕ 𝄞.bin',
    'odd/country=Côte d’Ivoire/part=a=b/f.parquet',
    'odd/100%/literal%2Fslash%20.txt',
    'odd/plus+sign & amp.txt',
  ];
  for (const k of keys) await storage.put(k, `body of ${k}`);
  for (const k of keys) assert.equal((await storage.get(k))!.toString(), `body of ${k}`, k);
  assert.deepEqual((await storage.list('odd', { recursive: true })).map((o) => o.key), [...keys].sort());
  assert.deepEqual((await storage.list('odd/100%')).map((o) => o.key), ['odd/100%/literal%2Fslash%20.txt']);
  const raw = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'lake/v1/odd/100%/' }));
  assert.deepEqual((raw.Contents ?? []).map((o) => o.Key), ['lake/v1/odd/100%/literal%2Fslash%20.txt'], 'stored under the literal key');
  await storage.delete(keys);
  assert.deepEqual(await storage.list('odd', { recursive: true }), []);
});

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
}

/**
 * A tiny S3 double (path-style, one bucket) implementing PutObject's documented If-None-Match
 * semantics: `If-None-Match: *` on an existing key answers 412 PreconditionFailed and writes nothing.
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
    requests.push({ method, key, query: url.search, ifNoneMatch });
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
  assert.equal(double.requests.filter((r) => r.method === 'POST').length, 3);
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
